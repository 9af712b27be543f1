"""The intake's inbox (core.intake, issue 13): requests stored before their ack."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import InboxRow


async def add_all(db: AsyncSession, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Store requests as (token, request JSON), in this order (one INSERT)."""
    now = time.time()
    values = [{"token": token, "request": request, "received_at": now} for token, request in rows]
    await db.execute(insert(InboxRow), values)


async def pending(db: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Every stored request as (token, request JSON), in arrival order."""
    rows = await db.execute(select(InboxRow.token, InboxRow.request).order_by(InboxRow.seq))
    return [(token, request) for token, request in rows]


async def remove(db: AsyncSession, tokens: Sequence[str]) -> None:
    """Remove these requests (started, refused, or failed)."""
    if tokens:
        await db.execute(delete(InboxRow).where(InboxRow.token.in_(tokens)))
