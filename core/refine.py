"""Use cases of the refinement loop: replies refine, thread images become references,
masks repaint, "Refine this" picks the base, Cancel stops a run, history lists versions.

Each function is one transaction over plain data, like core.service.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.flags import Params
from core.models import (
    ApprovalRow,
    AttachmentRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    InputRow,
    SessionRow,
    db_now,
)
from core.ports import GenerationView
from core.prompts import compose_prompt
from core.service import GenerationGone, load_view, new_seed, retry_version_race
from core.store import StoredBlob

MAX_INPUTS = 5  # images sent with one generation, the base image included (DESIGN.md)
S = GenerationState


@dataclass(frozen=True)
class SessionRef:
    """A session as the Slack side needs it."""

    session_id: int
    team_id: str
    channel_id: str
    thread_ts: str
    owner_user_id: str


@dataclass(frozen=True)
class BaseImage:
    """The image the next refinement edits: its label ("v2 image 1"), size and params."""

    image_id: int
    generation_id: int
    label: str
    width: int
    height: int
    params: Params


async def find_session(
    sm: async_sessionmaker[AsyncSession], channel_id: str, thread_ts: str
) -> SessionRef | None:
    """The imagine session whose thread this is, or None (not ours: ignore it)."""
    async with sm() as db:
        row = await db.scalar(
            select(SessionRow).where(
                SessionRow.channel_id == channel_id, SessionRow.thread_ts == thread_ts
            )
        )
    if row is None or row.thread_ts is None:
        return None
    return SessionRef(row.id, row.team_id, row.channel_id, row.thread_ts, row.owner_user_id)


async def _base(db: AsyncSession, session_id: int) -> tuple[ImageRow, GenerationRow] | None:
    session = await db.get(SessionRow, session_id)
    assert session is not None
    image = await db.get(ImageRow, session.base_image_id) if session.base_image_id else None
    if image is None:
        image = await db.scalar(
            select(ImageRow)
            .join(GenerationRow, GenerationRow.id == ImageRow.generation_id)
            .where(GenerationRow.session_id == session_id, GenerationRow.state == S.POSTED)
            .order_by(GenerationRow.version.desc(), ImageRow.index)
            .limit(1)
        )
    if image is None:
        return None
    generation = await db.get(GenerationRow, image.generation_id)
    assert generation is not None
    return image, generation


async def _first_generation(db: AsyncSession, session_id: int) -> GenerationRow | None:
    """The session's v1 (its original prompt and parameters)."""
    return await db.scalar(
        select(GenerationRow)
        .where(GenerationRow.session_id == session_id)
        .order_by(GenerationRow.version)
        .limit(1)
    )


def _label(generation: GenerationRow, image: ImageRow) -> str:
    return f"v{generation.version} image {image.index + 1}"


async def current_base(sm: async_sessionmaker[AsyncSession], session_id: int) -> BaseImage | None:
    """The session's current base image, or None before any image was posted."""
    async with sm() as db:
        found = await _base(db, session_id)
        if found is None:
            return None
        image, generation = found
        return BaseImage(
            image.id,
            generation.id,
            _label(generation, image),
            image.width,
            image.height,
            Params(**generation.params),
        )


async def session_params(sm: async_sessionmaker[AsyncSession], session_id: int) -> Params:
    """The parameters a reply's flags start from: the session's first version's (a reply's
    flags change only its own generation), with the base image's aspect ratio (an edit
    keeps the picture's shape)."""
    async with sm() as db:
        first = await _first_generation(db, session_id)
    params = Params(**first.params) if first else Params()
    base = await current_base(sm, session_id)
    if base is not None:
        params = replace(params, aspect_ratio=base.params.aspect_ratio)
    return params


async def add_attachment(
    sm: async_sessionmaker[AsyncSession],
    session_id: int,
    *,
    role: str,
    name: str,
    blob: StoredBlob,
    posted_by: str,
    slack_file_id: str | None,
) -> None:
    """Keep an image posted in the thread for the next refinement (role reference | mask)."""
    async with sm.begin() as db:
        db.add(
            AttachmentRow(
                session_id=session_id,
                role=role,
                name=name,
                slack_file_id=slack_file_id,
                posted_by=posted_by,
                sha256=blob.sha256,
                path=str(blob.path),
                mime=blob.mime,
                width=blob.width,
                height=blob.height,
            )
        )


async def pending_attachments(sm: async_sessionmaker[AsyncSession], session_id: int) -> int:
    """How many posted images wait for the next refinement."""
    async with sm() as db:
        return int(
            await db.scalar(
                select(func.count()).where(
                    AttachmentRow.session_id == session_id,
                    AttachmentRow.used_by_generation_id.is_(None),
                )
            )
            or 0
        )


@dataclass(frozen=True)
class RefineOutcome:
    """A queued refinement: its id and version, what it starts from and what it uses."""

    generation_id: int
    version: int
    base_label: str | None
    used: tuple[str, ...]
    dropped: tuple[str, ...]
    mask: str | None


async def _instruction_chain(db: AsyncSession, generation: GenerationRow | None) -> list[str]:
    chain: list[str] = []
    while generation is not None:
        if generation.kind == "refine" and generation.instruction:
            chain.append(generation.instruction)
        parent_id = generation.parent_generation_id
        generation = await db.get(GenerationRow, parent_id) if parent_id else None
    return chain[::-1]


@retry_version_race
async def refine(
    sm: async_sessionmaker[AsyncSession],
    session_id: int,
    *,
    user_id: str,
    instruction: str,
    params: Params,
    provider: str,
    model: str | None,
) -> RefineOutcome:
    """Queue a new version that edits the session's current base with `instruction`.

    Takes the images posted since the last refinement: the base counts as one of at most
    MAX_INPUTS images, the newest references win, the newest mask is used; every waiting
    attachment is marked as taken (used or dropped), so the next reply starts clean.
    """
    async with sm.begin() as db:
        session = await db.get(SessionRow, session_id)
        if session is None:
            raise GenerationGone(session_id)
        found = await _base(db, session_id)
        base_image, base_gen = found if found else (None, None)
        first = base_gen or await _first_generation(db, session_id)
        original = first.prompt if first else instruction
        chain = [*await _instruction_chain(db, base_gen), instruction]
        waiting = (
            await db.scalars(
                select(AttachmentRow)
                .where(
                    AttachmentRow.session_id == session_id,
                    AttachmentRow.used_by_generation_id.is_(None),
                )
                .order_by(AttachmentRow.id.desc())
            )
        ).all()
        references = [a for a in waiting if a.role == "reference"]
        masks = [a for a in waiting if a.role == "mask"]
        slots = MAX_INPUTS - (1 if base_image else 0)
        used, dropped = references[:slots][::-1], references[slots:][::-1]
        mask = masks[0] if masks else None
        dropped += masks[1:]

        last = await db.scalar(
            select(func.max(GenerationRow.version)).where(GenerationRow.session_id == session_id)
        )
        width, height = params.size()
        data = asdict(params)
        data.pop("seed")
        generation = GenerationRow(
            session_id=session_id,
            version=(last or 0) + 1,
            kind="refine",
            requested_by=user_id,
            parent_generation_id=base_gen.id if base_gen else None,
            parent_image_id=base_image.id if base_image else None,
            prompt=original,
            instruction=instruction,
            provider_prompt=compose_prompt(original, chain, has_base=base_image is not None),
            params=data,
            seed=params.seed if params.seed is not None else new_seed(),
            width=width,
            height=height,
            provider=provider,
            model=params.model or model,
        )
        db.add(generation)
        await db.flush()

        position = 0
        base_label = None
        if base_image is not None and base_gen is not None:
            base_label = _label(base_gen, base_image)
            db.add(
                InputRow(
                    generation_id=generation.id,
                    role="base",
                    position=0,
                    label=base_label,
                    path=base_image.path,
                    mime=base_image.mime,
                    width=base_image.width,
                    height=base_image.height,
                )
            )
            position = 1
        for offset, item in enumerate([*used, *([mask] if mask else [])]):
            db.add(
                InputRow(
                    generation_id=generation.id,
                    role=item.role,
                    position=position + offset,
                    label=item.name,
                    path=item.path,
                    mime=item.mime,
                    width=item.width,
                    height=item.height,
                )
            )
        for item in waiting:
            item.used_by_generation_id = generation.id
        generation.inputs_note = _inputs_note(base_label, used, dropped, mask)
        return RefineOutcome(
            generation.id,
            generation.version,
            base_label,
            tuple(a.name for a in used),
            tuple(a.name for a in dropped),
            mask.name if mask else None,
        )


def _inputs_note(
    base: str | None,
    used: list[AttachmentRow],
    dropped: list[AttachmentRow],
    mask: AttachmentRow | None,
) -> str | None:
    if not used and not dropped and not mask:
        return None
    parts = []
    if used:
        parts.append("References: " + ", ".join(a.name for a in used))
    if mask:
        parts.append(f"mask: {mask.name} (transparent area repainted)")
    if dropped:
        parts.append(
            f"not used ({MAX_INPUTS} images at most, {'base included, ' if base else ''}"
            "newest kept): " + ", ".join(a.name for a in dropped)
        )
    return "; ".join(parts) + "."


async def pick_base(
    sm: async_sessionmaker[AsyncSession], generation_id: int, index: int
) -> tuple[SessionRef, str]:
    """Make image `index` of a generation the session's base ("Refine this").

    Returns the session and the image's label. Raises GenerationGone.
    """
    async with sm.begin() as db:
        image = await db.scalar(
            select(ImageRow).where(ImageRow.generation_id == generation_id, ImageRow.index == index)
        )
        generation = await db.get(GenerationRow, generation_id)
        if image is None or generation is None:
            raise GenerationGone(generation_id)
        session = await db.get(SessionRow, generation.session_id)
        assert session is not None and session.thread_ts is not None
        session.base_image_id = image.id
        ref = SessionRef(
            session.id,
            session.team_id,
            session.channel_id,
            session.thread_ts,
            session.owner_user_id,
        )
        return ref, _label(generation, image)


@dataclass(frozen=True)
class CancelOutcome:
    """What a Cancel click did: `allowed` (requester or session owner), whether the
    generation was still running, and the generation as it is now."""

    allowed: bool
    running: bool
    view: GenerationView


async def request_cancel(
    sm: async_sessionmaker[AsyncSession], generation_id: int, user_id: str
) -> CancelOutcome:
    """Ask the engine to cancel a running generation. Only its requester or the session's
    owner may. The engine cancels at the provider where it can; a result that still comes
    in is stored but not posted. Raises GenerationGone."""
    async with sm.begin() as db:
        view = await load_view(db, generation_id)
        allowed = user_id in (view.requested_by, view.owner_user_id)
        running = view.state in S.ACTIVE
        if allowed and running:
            await db.execute(
                update(GenerationRow)
                .where(GenerationRow.id == generation_id)
                .values(cancel_requested=True, next_attempt_at=db_now())
            )
        return CancelOutcome(allowed, running, view)


@dataclass(frozen=True)
class VersionSummary:
    """One line of a session's history."""

    generation_id: int
    version: int
    kind: str
    state: str
    requested_by: str
    prompt: str
    instruction: str | None
    parent_label: str | None
    result_ts: str | None
    approved: tuple[str, ...]  # "image 1 by <user>"


async def history(sm: async_sessionmaker[AsyncSession], session_id: int) -> list[VersionSummary]:
    """Every version of a session, oldest first."""
    async with sm() as db:
        rows = (
            await db.scalars(
                select(GenerationRow)
                .where(GenerationRow.session_id == session_id)
                .order_by(GenerationRow.version)
            )
        ).all()
        out = []
        for row in rows:
            parent_label = None
            if row.parent_image_id:
                image = await db.get(ImageRow, row.parent_image_id)
                parent = await db.get(GenerationRow, image.generation_id) if image else None
                if image and parent:
                    parent_label = _label(parent, image)
            approvals = (
                await db.execute(
                    select(ImageRow.index, ApprovalRow.user_id)
                    .join(ApprovalRow, ApprovalRow.image_id == ImageRow.id)
                    .where(ImageRow.generation_id == row.id)
                    .order_by(ImageRow.index)
                )
            ).all()
            out.append(
                VersionSummary(
                    row.id,
                    row.version,
                    row.kind,
                    row.state,
                    row.requested_by,
                    row.prompt,
                    row.instruction,
                    parent_label,
                    row.result_ts,
                    tuple(f"image {i + 1} by <@{u}>" for i, u in approvals),
                )
            )
        return out


@dataclass(frozen=True)
class SessionSummary:
    """One of a user's recent sessions."""

    session_id: int
    channel_id: str
    thread_ts: str
    prompt: str
    versions: int
    created_at: float


async def recent_sessions(
    sm: async_sessionmaker[AsyncSession], team_id: str, user_id: str, limit: int = 10
) -> list[SessionSummary]:
    """The user's most recent sessions (newest first) that have a thread."""
    async with sm() as db:
        rows = (
            await db.execute(
                select(
                    SessionRow.id,
                    SessionRow.channel_id,
                    SessionRow.thread_ts,
                    SessionRow.created_at,
                    func.min(GenerationRow.prompt),
                    func.count(GenerationRow.id),
                )
                .join(GenerationRow, GenerationRow.session_id == SessionRow.id)
                .where(
                    SessionRow.team_id == team_id,
                    SessionRow.owner_user_id == user_id,
                    SessionRow.thread_ts.is_not(None),
                )
                .group_by(SessionRow.id)
                .order_by(SessionRow.created_at.desc(), SessionRow.id.desc())
                .limit(limit)
            )
        ).all()
    return [SessionSummary(r[0], r[1], r[2], r[4], r[5], r[3]) for r in rows]
