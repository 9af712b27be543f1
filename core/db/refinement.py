"""Threads, base images, inputs and attachments: the queries and writes of the refinement
loop, as named functions over an open `AsyncSession` that take and return plain data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.jobs import Maker
from core.db.rows import ask_of
from core.db.views import image_label
from core.flags import Params
from core.models import (
    AttachmentRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    InputRow,
    SessionRow,
)
from core.ports import Ask


@dataclass(frozen=True)
class SessionRef:
    """A session with a thread, as the Slack side needs it."""

    session_id: int
    team_id: str
    channel_id: str
    thread_ts: str
    owner_user_id: str


@dataclass(frozen=True)
class StoredImage:
    """An image file in the image store given to a generation, or waiting for one."""

    role: str  # base | reference | mask
    label: str  # how it is named: "v2 image 1", a file name
    path: str  # the file in the image store (`ImageStore.read`)
    mime: str
    width: int  # pixels
    height: int  # pixels
    attachment_id: int | None = None  # set for images posted in the thread


@dataclass(frozen=True)
class BaseImage:
    """The image the next refinement edits: its label ("v2 image 1"), size and params
    (seed included), and its generation's prompt, kind, instruction and parent."""

    image_id: int
    generation_id: int
    label: str
    width: int
    height: int
    params: Params
    image: StoredImage


async def find_session(db: AsyncSession, channel_id: str, thread_ts: str) -> SessionRef | None:
    """The session whose thread this is, or None."""
    row = await db.scalar(
        select(SessionRow).where(
            SessionRow.channel_id == channel_id, SessionRow.thread_ts == thread_ts
        )
    )
    if row is None or row.thread_ts is None:
        return None
    return SessionRef(row.id, row.team_id, row.channel_id, row.thread_ts, row.owner_user_id)


async def session_ref(db: AsyncSession, session_id: int) -> SessionRef | None:
    """A session by id, or None when it is gone or has no thread yet."""
    row = await db.get(SessionRow, session_id)
    if row is None or row.thread_ts is None:
        return None
    return SessionRef(row.id, row.team_id, row.channel_id, row.thread_ts, row.owner_user_id)


async def base_image(db: AsyncSession, session_id: int) -> BaseImage | None:
    """The session's base: the image picked with "Refine this", else the first image of
    the newest posted version; None before any image was posted."""
    session = await db.get(SessionRow, session_id)
    if session is None:
        return None
    image = await db.get(ImageRow, session.base_image_id) if session.base_image_id else None
    if image is None:
        image = await db.scalar(
            select(ImageRow)
            .join(GenerationRow, GenerationRow.id == ImageRow.generation_id)
            .where(
                GenerationRow.session_id == session_id,
                GenerationRow.state == GenerationState.POSTED,
            )
            .order_by(GenerationRow.version.desc(), ImageRow.index)
            .limit(1)
        )
    if image is None:
        return None
    generation = await db.get(GenerationRow, image.generation_id)
    assert generation is not None
    label = image_label(generation.version, image.index)
    stored = StoredImage("base", label, image.path, image.mime, image.width, image.height)
    params = Params.from_stored(generation.params, generation.seed)
    return BaseImage(image.id, generation.id, label, image.width, image.height, params, stored)


async def first_version(db: AsyncSession, session_id: int) -> Ask | None:
    """What the session's v1 asked (its original prompt, its params with the seed), or
    None."""
    row = await db.scalar(
        select(GenerationRow)
        .where(GenerationRow.session_id == session_id)
        .order_by(GenerationRow.version)
        .limit(1)
    )
    return ask_of(row) if row else None


async def prompt_of(db: AsyncSession, generation_id: int) -> str | None:
    """A generation's original prompt."""
    return await db.scalar(select(GenerationRow.prompt).where(GenerationRow.id == generation_id))


async def instruction_chain(db: AsyncSession, generation_id: int | None) -> list[str]:
    """The refining instructions that led to a generation, oldest first."""
    chain: list[str] = []
    row = await db.get(GenerationRow, generation_id) if generation_id else None
    while row is not None:
        if row.kind == "refine" and row.instruction:
            chain.append(row.instruction)
        parent_id = row.parent_generation_id
        row = await db.get(GenerationRow, parent_id) if parent_id else None
    return chain[::-1]


async def image_at(
    db: AsyncSession, generation_id: int, index: int
) -> tuple[ImageRow, GenerationRow] | None:
    """Image `index` (0-based) of a generation with its generation's row, or None when the
    image does not exist."""
    found = (
        await db.execute(
            select(ImageRow, GenerationRow)
            .join(GenerationRow, GenerationRow.id == ImageRow.generation_id)
            .where(ImageRow.generation_id == generation_id, ImageRow.index == index)
        )
    ).first()
    return None if found is None else (found[0], found[1])


async def set_base(db: AsyncSession, generation_id: int, index: int) -> tuple[int, str] | None:
    """Make image `index` of a generation its session's base; returns (session id, label)
    or None when the image does not exist."""
    found = await image_at(db, generation_id, index)
    if found is None:
        return None
    image, generation = found
    session = await db.get(SessionRow, generation.session_id)
    assert session is not None
    session.base_image_id = image.id
    return session.id, image_label(generation.version, image.index)


async def add_attachment(
    db: AsyncSession,
    session_id: int,
    image: StoredImage,
    *,
    sha256: str,
    posted_by: str,
    slack_file_id: str | None,
) -> None:
    """Keep an image posted in the thread (role reference | mask) for the next refinement."""
    db.add(
        AttachmentRow(
            session_id=session_id,
            role=image.role,
            name=image.label,
            slack_file_id=slack_file_id,
            posted_by=posted_by,
            sha256=sha256,
            path=image.path,
            mime=image.mime,
            width=image.width,
            height=image.height,
        )
    )
    await db.flush()


async def waiting_attachments(db: AsyncSession, session_id: int) -> list[StoredImage]:
    """Images posted in the thread and not yet taken by a refinement, newest first."""
    rows = (
        await db.scalars(
            select(AttachmentRow)
            .where(
                AttachmentRow.session_id == session_id,
                AttachmentRow.used_by_generation_id.is_(None),
            )
            .order_by(AttachmentRow.id.desc())
        )
    ).all()
    return [
        StoredImage(a.role, a.name, a.path, a.mime, a.width, a.height, attachment_id=a.id)
        for a in rows
    ]


async def count_waiting(db: AsyncSession, session_id: int) -> int:
    """How many posted images wait for the next refinement."""
    return int(
        await db.scalar(
            select(func.count()).where(
                AttachmentRow.session_id == session_id,
                AttachmentRow.used_by_generation_id.is_(None),
            )
        )
        or 0
    )


async def take_attachments(db: AsyncSession, ids: list[int], generation_id: int) -> None:
    """Mark attachments as taken (used or dropped) by a generation."""
    for row in (await db.scalars(select(AttachmentRow).where(AttachmentRow.id.in_(ids)))).all():
        row.used_by_generation_id = generation_id


async def add_inputs(db: AsyncSession, generation_id: int, images: list[StoredImage]) -> None:
    """Snapshot a generation's input images in order (position 0, 1, …)."""
    for position, item in enumerate(images):
        db.add(
            InputRow(
                generation_id=generation_id,
                role=item.role,
                position=position,
                label=item.label,
                path=item.path,
                mime=item.mime,
                width=item.width,
                height=item.height,
            )
        )


# Built once, values bound when it runs (issue 13: every job's request reads it).
_INPUTS = (
    select(InputRow)
    .where(InputRow.generation_id == bindparam("generation_id"))
    .order_by(InputRow.position)
)


async def inputs(db: AsyncSession, generation_id: int) -> list[StoredImage]:
    """A generation's input images in order (base first, then references, then mask)."""
    rows = (await db.scalars(_INPUTS, {"generation_id": generation_id})).all()
    return [StoredImage(i.role, i.label, i.path, i.mime, i.width, i.height) for i in rows]


async def generation_inputs(sm: Maker, generation_id: int) -> list[StoredImage]:
    """`inputs` in its own transaction (the engine's provider request reads them)."""
    async with sm() as db:
        return await inputs(db, generation_id)
