"""App Home lists (issue 10): images waiting for a reviewer, a person's recent sessions and
recently approved images. Named reads over an open `AsyncSession`, plain data out.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    ApprovalRow,
    ChangeRequestRow,
    GalleryPostRow,
    GenerationRow,
    GenerationState,
    HomeSeenRow,
    ImageRow,
    ReviewPolicyRow,
    ReviewVoteRow,
    SessionRow,
    db_now,
)
from core.policy import Policy


@dataclass(frozen=True)
class HomeImage:
    """One image on the Home tab: its ids, version, the words that made it (the refining
    reply, else the prompt), who asked (`requested_by`) and owns the session, where it is
    (channel, thread, result message), its Slack file, and for approved images who
    approved it when (UTC epoch seconds) and its gallery post (channel, ts) if made."""

    image_id: int
    generation_id: int
    index: int
    version: int
    words: str
    requested_by: str
    owner: str
    channel_id: str
    thread_ts: str | None
    result_ts: str | None
    file_id: str | None
    approved_by: str | None = None
    approved_at: float | None = None
    gallery: tuple[str, str] | None = None


@dataclass(frozen=True)
class HomeSession:
    """One of a person's sessions: where it is, its prompt, how many versions, and the
    newest posted version's number and first image file (None before any is posted)."""

    session_id: int
    channel_id: str
    thread_ts: str
    prompt: str
    versions: int
    latest_version: int | None
    latest_file_id: str | None


_IMAGE_COLUMNS = (
    ImageRow.id,
    GenerationRow.id,
    ImageRow.index,
    GenerationRow.version,
    func.coalesce(GenerationRow.instruction, GenerationRow.prompt),
    GenerationRow.requested_by,
    SessionRow.owner_user_id,
    SessionRow.channel_id,
    SessionRow.thread_ts,
    GenerationRow.result_ts,
    ImageRow.slack_file_id,
)


async def team_policies(db: AsyncSession, team_id: str) -> dict[str, Policy]:
    """{channel id: policy} of every channel of the team with a stored review policy."""
    rows = await db.scalars(select(ReviewPolicyRow).where(ReviewPolicyRow.team_id == team_id))
    return {
        row.channel_id: Policy(
            tuple(row.reviewer_users),
            tuple(row.reviewer_groups),
            row.approvals_required,
            row.self_approval,
            row.gallery_channel_id,
        )
        for row in rows
    }


async def waiting_images(
    db: AsyncSession, team_id: str, channel_ids: list[str], viewer: str, limit: int
) -> list[HomeImage]:
    """Posted images in these channels, newest first, that are not approved, have no
    change request and no approval by `viewer` yet (at most `limit`)."""
    if not channel_ids:
        return []
    voted = exists().where(ReviewVoteRow.image_id == ImageRow.id, ReviewVoteRow.user_id == viewer)
    approved = exists().where(ApprovalRow.image_id == ImageRow.id)
    changed = exists().where(
        ChangeRequestRow.generation_id == GenerationRow.id,
        ChangeRequestRow.image_index == ImageRow.index,
    )
    rows = await db.execute(
        select(*_IMAGE_COLUMNS)
        .join(GenerationRow, ImageRow.generation_id == GenerationRow.id)
        .join(SessionRow, GenerationRow.session_id == SessionRow.id)
        .where(
            SessionRow.team_id == team_id,
            SessionRow.channel_id.in_(channel_ids),
            GenerationRow.state == GenerationState.POSTED,
            ~voted,
            ~approved,
            ~changed,
        )
        .order_by(GenerationRow.id.desc(), ImageRow.index)
        .limit(limit)
    )
    return [HomeImage(*row) for row in rows]


async def recent_sessions(
    db: AsyncSession, team_id: str, owner: str, limit: int
) -> list[HomeSession]:
    """`owner`'s newest sessions with a thread (at most `limit`), newest first."""
    sessions = (
        await db.execute(
            select(SessionRow.id, SessionRow.channel_id, SessionRow.thread_ts)
            .where(
                SessionRow.team_id == team_id,
                SessionRow.owner_user_id == owner,
                SessionRow.thread_ts.is_not(None),
            )
            .order_by(SessionRow.id.desc())
            .limit(limit)
        )
    ).all()
    out = []
    for session_id, channel_id, thread_ts in sessions:
        generations = (
            await db.execute(
                select(
                    GenerationRow.id,
                    GenerationRow.version,
                    GenerationRow.prompt,
                    GenerationRow.state,
                )
                .where(GenerationRow.session_id == session_id)
                .order_by(GenerationRow.version)
            )
        ).all()
        if not generations:
            continue
        posted = [g for g in generations if g.state == GenerationState.POSTED]
        latest, file_id = (posted[-1].version, None) if posted else (None, None)
        if posted:
            file_id = await db.scalar(
                select(ImageRow.slack_file_id)
                .where(ImageRow.generation_id == posted[-1].id)
                .order_by(ImageRow.index)
                .limit(1)
            )
        prompt = generations[0].prompt
        out.append(
            HomeSession(
                session_id, channel_id, thread_ts, prompt, len(generations), latest, file_id
            )
        )
    return out


async def recently_approved(
    db: AsyncSession, team_id: str, channel_ids: list[str], limit: int
) -> list[HomeImage]:
    """Approved images in these channels, newest approval first (at most `limit`), with
    their gallery post when it was made."""
    if not channel_ids:
        return []
    rows = await db.execute(
        select(
            *_IMAGE_COLUMNS,
            ApprovalRow.user_id,
            ApprovalRow.approved_at,
            GalleryPostRow.channel_id,
            GalleryPostRow.message_ts,
        )
        .join(ApprovalRow, ApprovalRow.image_id == ImageRow.id)
        .join(GenerationRow, ImageRow.generation_id == GenerationRow.id)
        .join(SessionRow, GenerationRow.session_id == SessionRow.id)
        .outerjoin(
            GalleryPostRow,
            and_(GalleryPostRow.image_id == ImageRow.id, GalleryPostRow.state == "posted"),
        )
        .where(SessionRow.team_id == team_id, SessionRow.channel_id.in_(channel_ids))
        .order_by(ApprovalRow.approved_at.desc(), ApprovalRow.id.desc())
        .limit(limit)
    )
    out = []
    for row in rows:
        *image, by, at, gallery_channel, gallery_ts = row
        gallery = (gallery_channel, gallery_ts) if gallery_channel and gallery_ts else None
        out.append(HomeImage(*image, approved_by=by, approved_at=at, gallery=gallery))
    return out


async def mark_seen(db: AsyncSession, team_id: str, user_id: str) -> None:
    """Record that `user_id` opened the Home tab (insert, or update `seen_at`)."""
    dialect = db.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(HomeSeenRow).values(team_id=team_id, user_id=user_id, seen_at=db_now())
    await db.execute(
        stmt.on_conflict_do_update(
            index_elements=["team_id", "user_id"], set_={"seen_at": db_now()}
        )
    )


async def seen(db: AsyncSession, team_id: str) -> set[str]:
    """The user ids of the team who have opened the Home tab."""
    return set(await db.scalars(select(HomeSeenRow.user_id).where(HomeSeenRow.team_id == team_id)))
