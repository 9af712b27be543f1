"""Persistence of the content policy and privacy features (issue 12): the audit trail.

Functions over an open `AsyncSession` (the use case owns the transaction), plain data in
and out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import AttachmentRow, AuditRow, ImageRow, InputRow, StyleReferenceRow
from core.store import ImageStore


async def audit(
    db: AsyncSession,
    action: str,
    *,
    team_id: str | None = None,
    channel_id: str | None = None,
    user_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append a policy event (`action`: moderation_refused, result_withheld, retention,
    forget_me); `detail` holds codes and counts only, never what a person typed."""
    db.add(
        AuditRow(
            action=action,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            detail=detail or {},
        )
    )


async def audit_events(db: AsyncSession, action: str | None = None) -> list[dict[str, Any]]:
    """The audit trail, oldest first (optionally one `action`): dicts with action, team_id,
    channel_id, user_id, detail and at (UTC epoch seconds)."""
    query = select(AuditRow).order_by(AuditRow.id)
    if action is not None:
        query = query.where(AuditRow.action == action)
    rows = (await db.scalars(query)).all()
    return [
        {
            "action": r.action,
            "team_id": r.team_id,
            "channel_id": r.channel_id,
            "user_id": r.user_id,
            "detail": r.detail,
            "at": r.at,
        }
        for r in rows
    ]


async def path_in_use(db: AsyncSession, path: str) -> bool:
    """Whether any stored image, generation input, attachment or style reference uses the
    image-store file at `path` (the store is content-addressed: rows may share a file)."""
    for column in (ImageRow.path, InputRow.path, AttachmentRow.path, StyleReferenceRow.path):
        if await db.scalar(select(column).where(column == path).limit(1)) is not None:
            return True
    return False


async def delete_unused_files(
    sm: async_sessionmaker[AsyncSession], paths: list[str], store: ImageStore | None = None
) -> int:
    """Delete the image-store files among `paths` that no row uses any more, from `store`
    (None: files on this machine); returns how many were deleted (missing files count as
    deleted). Raises OSError, the store's errors."""
    store = store or ImageStore(Path())
    deleted = 0
    async with sm() as db:
        for path in dict.fromkeys(paths):
            if not await path_in_use(db, path):
                await store.delete(path)
                deleted += 1
    return deleted
