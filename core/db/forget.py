"""Persistence of forget-me (issue 12): what belongs to one person in a workspace, and the
anonymisations `core.forget.forget` makes, as functions over an open `AsyncSession` (the
use case owns the one transaction); plain data in and out. The deletions queue and the
file/row deletions shared with retention are in `core.db.privacy`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.privacy import record_deletions
from core.models import (
    ApprovalRow,
    AttachmentRow,
    AuditRow,
    EffectRow,
    GalleryPostRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    SessionRow,
    StyleRow,
)


async def own_sessions(db: AsyncSession, team_id: str, user_id: str) -> list[int]:
    """The ids of the sessions `user_id` started in workspace `team_id`."""
    found = await db.scalars(
        select(SessionRow.id).where(
            SessionRow.team_id == team_id, SessionRow.owner_user_id == user_id
        )
    )
    return list(found.all())


async def generations_of(
    db: AsyncSession, team_id: str, user_id: str, own: Sequence[int]
) -> list[int]:
    """The ids of the generations of the sessions `own` and of those `user_id` asked for
    elsewhere in workspace `team_id`."""
    asked = select(GenerationRow.id).join(SessionRow, SessionRow.id == GenerationRow.session_id)
    found = await db.scalars(
        asked.where(
            SessionRow.team_id == team_id,
            or_(GenerationRow.session_id.in_(own), GenerationRow.requested_by == user_id),
        )
    )
    return list(found.all())


async def bot_messages(
    db: AsyncSession, own: Sequence[int], generations: Sequence[int]
) -> list[tuple[str, str]]:
    """The bot's messages ((channel id, ts), no repeats) of these sessions and generations:
    the sessions' root messages, the generations' result and status messages."""
    found: list[tuple[str, str]] = []
    roots = await db.execute(
        select(SessionRow.channel_id, SessionRow.thread_ts).where(SessionRow.id.in_(own))
    )
    found += [(c, ts) for c, ts in roots.all() if ts]
    rows = await db.execute(
        select(SessionRow.channel_id, GenerationRow.status_ts, GenerationRow.result_ts)
        .join(SessionRow, SessionRow.id == GenerationRow.session_id)
        .where(GenerationRow.id.in_(generations))
    )
    for channel, status_ts, result_ts in rows.all():
        found += [(channel, ts) for ts in (result_ts, status_ts) if ts]
    return list(dict.fromkeys(found))


async def gallery_messages(db: AsyncSession, generations: Sequence[int]) -> list[tuple[str, str]]:
    """The gallery posts ((gallery channel id, ts)) made of these generations' images
    (`gallery_posts` rows with a message ts). Read before the images are deleted: their
    gallery rows go with them (ON DELETE CASCADE)."""
    rows = await db.execute(
        select(GalleryPostRow.channel_id, GalleryPostRow.message_ts)
        .join(ImageRow, ImageRow.id == GalleryPostRow.image_id)
        .where(ImageRow.generation_id.in_(generations), GalleryPostRow.message_ts.is_not(None))
        .order_by(GalleryPostRow.id)
    )
    return [(channel, str(ts)) for channel, ts in rows.all()]


async def active_generations(db: AsyncSession, generations: Sequence[int]) -> list[int]:
    """The ids among `generations` still in the job engine (queued, submitted, completed
    but not posted: GenerationState.ACTIVE)."""
    found = await db.scalars(
        select(GenerationRow.id).where(
            GenerationRow.id.in_(generations), GenerationRow.state.in_(GenerationState.ACTIVE)
        )
    )
    return list(found.all())


async def anonymise(
    db: AsyncSession, user_id: str, forgotten: str, own: Sequence[int], generations: Sequence[int]
) -> None:
    """Replace `user_id` by `forgotten` where rows stay (generations asked for, sessions
    `own`, styles created), erase the generations' reply URL and error, drop the user id of
    their audit rows, and let go of the threads of `own` with nothing running (replies in
    them are no longer taken)."""
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.id.in_(generations))
        .values(response_url=None, error=None)
    )
    await db.execute(
        update(GenerationRow)
        .where(GenerationRow.requested_by == user_id)
        .values(requested_by=forgotten)
    )
    await db.execute(
        update(SessionRow).where(SessionRow.id.in_(own)).values(owner_user_id=forgotten)
    )
    running = select(GenerationRow.session_id).where(
        GenerationRow.state.in_(GenerationState.ACTIVE)
    )
    await db.execute(
        update(SessionRow)
        .where(SessionRow.id.in_(own), SessionRow.id.not_in(running))
        .values(thread_ts=None)
    )
    await db.execute(
        update(StyleRow).where(StyleRow.created_by == user_id).values(created_by=forgotten)
    )
    await db.execute(update(AuditRow).where(AuditRow.user_id == user_id).values(user_id=None))


async def posted_by_jobs(
    db: AsyncSession, generations: Sequence[int]
) -> tuple[list[tuple[str, str]], list[str]]:
    """What the job engine posted for these generations: messages ((channel id, ts), no
    repeats: the side-effect records' answers (root, status, result, reviewer mention,
    `core.db.effects`) and the generations' status and result ts) and files (file ids: the
    uploads' reserved ids and the images' file ids)."""
    rows = await db.execute(
        select(SessionRow.channel_id, EffectRow.ref, EffectRow.file_ids)
        .join(GenerationRow, GenerationRow.id == EffectRow.generation_id)
        .join(SessionRow, SessionRow.id == GenerationRow.session_id)
        .where(EffectRow.generation_id.in_(generations))
        .order_by(EffectRow.id)
    )
    messages: list[tuple[str, str]] = []
    files: list[str] = []
    for channel, ref, file_ids in rows.all():
        messages += [(channel, ref)] if ref else []
        files += [str(f) for f in (file_ids or {}).values() if f]
    messages += await bot_messages(db, [], generations)
    shared = await db.scalars(
        select(ImageRow.slack_file_id).where(
            ImageRow.generation_id.in_(generations), ImageRow.slack_file_id.is_not(None)
        )
    )
    files += [str(f) for f in shared.all()]
    return list(dict.fromkeys(messages)), list(dict.fromkeys(files))


async def release_threads(db: AsyncSession, generations: Sequence[int], forgotten: str) -> None:
    """Let go of the threads of these generations' sessions that belong to `forgotten` and
    have nothing running (replies in them are no longer taken)."""
    sessions = select(GenerationRow.session_id).where(GenerationRow.id.in_(generations))
    running = select(GenerationRow.session_id).where(
        GenerationRow.state.in_(GenerationState.ACTIVE)
    )
    await db.execute(
        update(SessionRow)
        .where(
            SessionRow.id.in_(sessions),
            SessionRow.owner_user_id == forgotten,
            SessionRow.id.not_in(running),
        )
        .values(thread_ts=None)
    )


async def anonymise_approvals(db: AsyncSession, user_id: str, forgotten: str) -> int:
    """Replace `user_id` by `forgotten` as the approver of images; returns how many."""
    result = await db.execute(
        update(ApprovalRow).where(ApprovalRow.user_id == user_id).values(user_id=forgotten)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def count_images(db: AsyncSession, generations: Sequence[int]) -> int:
    """How many generated images these generations have."""
    found = await db.scalar(select(func.count()).where(ImageRow.generation_id.in_(generations)))
    return int(found or 0)


async def count_attachments(db: AsyncSession, own: Sequence[int], user_id: str) -> int:
    """How many attachments are in the sessions `own` or were posted by `user_id`."""
    found = await db.scalar(
        select(func.count()).where(
            or_(AttachmentRow.session_id.in_(own), AttachmentRow.posted_by == user_id)
        )
    )
    return int(found or 0)


async def record_deletions_apart(
    sm: async_sessionmaker[AsyncSession],
    team_id: str,
    messages: Sequence[tuple[str, str]],
    files: Sequence[str],
) -> None:
    """`core.db.privacy.record_deletions` in a transaction of its own; a concurrent caller
    that recorded the same ones first (the unique key refuses them here) is no error."""
    try:
        async with sm.begin() as db:
            await record_deletions(db, team_id, messages, files)
    except IntegrityError:
        pass  # a concurrent run recorded them first
