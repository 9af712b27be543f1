"""Use cases that list work: a session's versions (the History button) and a user's
recent sessions (`/imagine history`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import history as repo
from core.db.history import SessionSummary, VersionSummary
from core.sessions import Conversation, check_target

__all__ = ["SessionHistory", "SessionSummary", "VersionSummary", "recent_sessions", "versions"]


@dataclass(frozen=True)
class SessionHistory:
    """A session's versions, oldest first, and the channel its thread is in."""

    session_id: int
    channel_id: str
    versions: tuple[VersionSummary, ...]


async def versions(
    sm: async_sessionmaker[AsyncSession], generation_id: int, where: Conversation
) -> SessionHistory:
    """Every version of the session `generation_id` belongs to.

    Raises ActionRefused (GONE, or WRONG_CONVERSATION when the session lives in another
    channel or team than `where`: its prompts are not shown there)."""
    async with sm() as db:
        target = await check_target(db, generation_id, where)
        rows = await repo.versions(db, target.session_id)
    return SessionHistory(target.session_id, target.channel_id, tuple(rows))


async def recent_sessions(
    sm: async_sessionmaker[AsyncSession], team_id: str, user_id: str, limit: int = 10
) -> list[SessionSummary]:
    """The user's most recent sessions in a team (newest first) that have a thread."""
    async with sm() as db:
        return await repo.recent_sessions(db, team_id, user_id, limit)
