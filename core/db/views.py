"""The generation view loader: one generation, its session and images as plain data.

`load_view` runs inside an open session (so a use case reads the view in its own
transaction); `get_view` opens a read-only session for callers outside a use case
(the job engine).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import jobs as jobs_db
from core.db import review as review_db
from core.flags import Params
from core.models import ApprovalRow, GenerationRow, ImageRow, SessionRow
from core.ports import Failure, GenerationView, ImageView
from core.providers.registry import provider_label


class GenerationGone(LookupError):
    """The generation (or its image) no longer exists."""


def params_of(row: GenerationRow) -> Params:
    """The Params a generation row was made with (seed included)."""
    return Params.from_stored(row.params, row.seed)


def image_label(version: int, index: int) -> str:
    """How a stored image is named in a thread: "v2 image 1" (`index` is 0-based)."""
    return f"v{version} image {index + 1}"


async def get_view(sm: async_sessionmaker[AsyncSession], generation_id: int) -> GenerationView:
    """The generation as a publisher sees it. Raises GenerationGone."""
    async with sm() as db:
        return await load_view(db, generation_id)


async def parent_label(db: AsyncSession, image_id: int | None) -> str | None:
    """The label ("v2 image 1") of the image a refinement edits, or None."""
    if image_id is None:
        return None
    image = await db.get(ImageRow, image_id)
    parent = await db.get(GenerationRow, image.generation_id) if image else None
    return image_label(parent.version, image.index) if image and parent else None


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
    waiting, waiting_number = await jobs_db.waiting_of(db, row)
    view = GenerationView(
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
        parent_label=await parent_label(db, row.parent_image_id),
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
    return await review_db.with_review(db, view)
