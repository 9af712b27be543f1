"""Read models of a session's versions and of a user's recent sessions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db.views import parent_label
from core.models import ApprovalRow, GenerationRow, ImageRow, SessionRow


@dataclass(frozen=True)
class VersionSummary:
    """One version of a session. `approved` holds (image index 0-based, user id) pairs."""

    generation_id: int
    version: int
    kind: str
    state: str
    requested_by: str
    prompt: str
    instruction: str | None
    parent_label: str | None
    result_ts: str | None
    approved: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class SessionSummary:
    """One of a user's recent sessions; `created_at` in UTC epoch seconds."""

    session_id: int
    channel_id: str
    thread_ts: str
    prompt: str
    versions: int
    created_at: float


async def versions(db: AsyncSession, session_id: int) -> list[VersionSummary]:
    """Every version of a session, oldest first."""
    rows = (
        await db.scalars(
            select(GenerationRow)
            .where(GenerationRow.session_id == session_id)
            .order_by(GenerationRow.version)
        )
    ).all()
    out = []
    for row in rows:
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
                await parent_label(db, row.parent_image_id),
                row.result_ts,
                tuple((int(i), str(u)) for i, u in approvals),
            )
        )
    return out


async def recent_sessions(
    db: AsyncSession, team_id: str, user_id: str, limit: int
) -> list[SessionSummary]:
    """The user's most recent sessions (newest first) that have a thread."""
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
