"""Use cases: each function is one transaction over plain data (ids, strings, Params).

The Slack listeners call these; they never see a database row.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from core.db import jobs as jobs_db
from core.flags import MAX_SEED, Params
from core.models import (
    ApprovalRow,
    DeliveryRow,
    GenerationRow,
    ImageRow,
    InputRow,
    SessionRow,
)
from core.ports import Failure, GenerationView, ImageView

# Two requests in one thread at once may pick the same next version number; the loser's
# transaction hits uq_generations_version and is simply run again.
retry_version_race = retry(
    retry=retry_if_exception_type(IntegrityError),
    stop=stop_after_attempt(5),
    wait=wait_random(0, 0.05),
    reraise=True,
)

PROVIDER_LABELS = {"local": "local preview renderer", "openai": "OpenAI", "toapis": "ToAPIs"}


class GenerationGone(LookupError):
    """The generation (or its image) no longer exists."""


def provider_label(provider: str, model: str | None) -> str:
    """How the UI names a provider: "local preview renderer", "OpenAI gpt-image-1", …"""
    base = PROVIDER_LABELS.get(provider, provider)
    return f"{base} {model}" if model and provider != "local" else base


def new_seed(avoid: int | None = None) -> int:
    """A random seed in [0, 2**32), different from `avoid`."""
    while True:
        seed = secrets.randbelow(MAX_SEED + 1)
        if seed != avoid:
            return seed


def _params_json(params: Params) -> dict[str, object]:
    data = asdict(params)
    data.pop("seed")
    return data


def params_of(row: GenerationRow) -> Params:
    """The Params a generation row was made with (seed included)."""
    return Params(**row.params, seed=row.seed)


async def start_session(
    sm: async_sessionmaker[AsyncSession],
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    prompt: str,
    params: Params,
    provider: str,
    model: str | None,
    response_url: str | None,
) -> int:
    """Record a new session and its first generation (queued) in one transaction.

    The thread does not exist yet: the job engine opens it before submitting.
    Returns the generation id.
    """
    width, height = params.size()
    seed = params.seed if params.seed is not None else new_seed()
    async with sm.begin() as db:
        session = SessionRow(team_id=team_id, channel_id=channel_id, owner_user_id=user_id)
        db.add(session)
        await db.flush()
        generation = GenerationRow(
            session_id=session.id,
            version=1,
            kind="imagine",
            requested_by=user_id,
            prompt=prompt,
            params=_params_json(params),
            seed=seed,
            width=width,
            height=height,
            provider=provider,
            model=params.model or model,
            response_url=response_url,
        )
        db.add(generation)
        await db.flush()
        return generation.id


@retry_version_race
async def regenerate(sm: async_sessionmaker[AsyncSession], generation_id: int, user_id: str) -> int:
    """Queue the same request as `generation_id` with a new seed, as the session's next version
    (a refinement keeps its instruction, base image, references and mask).

    Returns the new generation id. Raises GenerationGone.
    """
    async with sm.begin() as db:
        source = await db.get(GenerationRow, generation_id)
        if source is None:
            raise GenerationGone(generation_id)
        last = await db.scalar(
            select(func.max(GenerationRow.version)).where(
                GenerationRow.session_id == source.session_id
            )
        )
        generation = GenerationRow(
            session_id=source.session_id,
            version=(last or 0) + 1,
            kind="regenerate",
            requested_by=user_id,
            parent_generation_id=source.id,
            parent_image_id=source.parent_image_id,
            prompt=source.prompt,
            instruction=source.instruction,
            provider_prompt=source.provider_prompt,
            inputs_note=source.inputs_note,
            params=dict(source.params),
            seed=new_seed(avoid=source.seed),
            width=source.width,
            height=source.height,
            provider=source.provider,
            model=source.model,
        )
        db.add(generation)
        await db.flush()
        inputs = (
            await db.scalars(select(InputRow).where(InputRow.generation_id == source.id))
        ).all()
        for item in inputs:
            db.add(
                InputRow(
                    generation_id=generation.id,
                    role=item.role,
                    position=item.position,
                    label=item.label,
                    path=item.path,
                    mime=item.mime,
                    width=item.width,
                    height=item.height,
                )
            )
        return generation.id


@dataclass(frozen=True)
class ApprovalOutcome:
    """The result of an Approve click: whether it was new, and the generation as it is now."""

    newly_approved: bool
    approved_by: str
    view: GenerationView


async def approve(
    sm: async_sessionmaker[AsyncSession], generation_id: int, image_index: int, user_id: str
) -> ApprovalOutcome:
    """Record that `user_id` approved image `image_index` of a generation.

    A second approval of the same image changes nothing (the first approver stays).
    Raises GenerationGone when the generation or image does not exist.
    """
    async with sm.begin() as db:
        image = await db.scalar(
            select(ImageRow).where(
                ImageRow.generation_id == generation_id, ImageRow.index == image_index
            )
        )
        if image is None:
            raise GenerationGone(generation_id)
        existing = await db.scalar(select(ApprovalRow).where(ApprovalRow.image_id == image.id))
        newly = existing is None
        if newly:
            try:
                async with db.begin_nested():
                    db.add(ApprovalRow(image_id=image.id, user_id=user_id))
            except IntegrityError:  # a concurrent click won the race
                newly = False
        approver = await db.scalar(
            select(ApprovalRow.user_id).where(ApprovalRow.image_id == image.id)
        )
        view = await load_view(db, generation_id)
        return ApprovalOutcome(newly_approved=newly, approved_by=approver or user_id, view=view)


async def get_view(sm: async_sessionmaker[AsyncSession], generation_id: int) -> GenerationView:
    """The generation as a publisher sees it. Raises GenerationGone."""
    async with sm() as db:
        return await load_view(db, generation_id)


async def load_view(db: AsyncSession, generation_id: int) -> GenerationView:
    """Build a GenerationView inside an open session. Raises GenerationGone."""
    row = await db.get(GenerationRow, generation_id, populate_existing=True)
    if row is None:
        raise GenerationGone(generation_id)
    session = await db.get(SessionRow, row.session_id, populate_existing=True)
    assert session is not None
    images = (
        await db.execute(
            select(ImageRow, ApprovalRow.user_id, ApprovalRow.approved_at)
            .outerjoin(ApprovalRow, ApprovalRow.image_id == ImageRow.id)
            .where(ImageRow.generation_id == generation_id)
            .order_by(ImageRow.index)
        )
    ).all()
    parent_label = None
    if row.parent_image_id is not None:
        parent_image = await db.get(ImageRow, row.parent_image_id)
        parent = await db.get(GenerationRow, parent_image.generation_id) if parent_image else None
        if parent_image and parent:
            parent_label = f"v{parent.version} image {parent_image.index + 1}"
    waiting, waiting_number = await jobs_db.waiting_of(db, row)
    return GenerationView(
        generation_id=row.id,
        session_id=session.id,
        version=row.version,
        kind=row.kind,
        team_id=session.team_id,
        channel_id=session.channel_id,
        thread_ts=session.thread_ts,
        owner_user_id=session.owner_user_id,
        requested_by=row.requested_by,
        prompt=row.prompt,
        params=params_of(row),
        seed=row.seed,
        width=row.width,
        height=row.height,
        provider_label=provider_label(row.provider, row.model),
        state=row.state,
        progress=row.progress,
        status_ts=row.status_ts,
        result_ts=row.result_ts,
        response_url=row.response_url,
        note=row.note,
        error=row.error,
        waiting_reason=waiting,
        waiting_number=waiting_number,
        failure=Failure.from_json(row.failure),
        instruction=row.instruction,
        parent_label=parent_label,
        inputs_note=row.inputs_note,
        cancel_requested=row.cancel_requested,
        images=tuple(
            ImageView(
                image_id=img.id,
                index=img.index,
                path=Path(img.path),
                width=img.width,
                height=img.height,
                mime=img.mime,
                bytes=img.bytes,
                sha256=img.sha256,
                file_id=img.slack_file_id,
                approved_by=approver,
                approved_at=approved_at,
            )
            for img, approver, approved_at in images
        ),
    )


async def record_delivery(sm: async_sessionmaker[AsyncSession], key: str) -> bool:
    """Remember a platform delivery id; False when it was seen before (a retry)."""
    try:
        async with sm.begin() as db:
            db.add(DeliveryRow(key=key))
        return True
    except IntegrityError:
        return False


async def discard_session(sm: async_sessionmaker[AsyncSession], session_id: int) -> None:
    """Delete a session whose thread could never be opened, with its generations."""
    async with sm.begin() as db:
        await db.execute(delete(GenerationRow).where(GenerationRow.session_id == session_id))
        await db.execute(delete(SessionRow).where(SessionRow.id == session_id))
