"""The intake's inbox (core.intake, issue 13): requests stored before their ack."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import InboxRow


async def add_all(db: AsyncSession, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Store requests as (token, request JSON), in this order. SQLite only (the intake's
    database): one INSERT with a VALUES row per request, in the driver's own SQL, because
    SQLAlchemy's multi-row `values()` compiles the statement anew for each size (measured:
    20 ms for 300 rows against 5 ms this way), and this runs before the acks of a burst."""
    if not rows:
        return
    now = time.time()
    values = ", ".join(["(?, ?, ?)"] * len(rows))
    params = tuple(
        value
        for token, request in rows
        for value in (token, json.dumps(request, separators=(",", ":")), now)
    )
    sql = f"INSERT INTO {InboxRow.__tablename__} (token, request, received_at) VALUES {values}"
    await (await db.connection()).exec_driver_sql(sql, params)


async def pending(db: AsyncSession) -> list[tuple[str, dict[str, Any], float]]:
    """Every stored request as (token, request JSON, received_at: UTC epoch seconds), in
    arrival order."""
    rows = await db.execute(
        select(InboxRow.token, InboxRow.request, InboxRow.received_at).order_by(InboxRow.seq)
    )
    return [(token, request, received_at) for token, request, received_at in rows]


async def take(db: AsyncSession, tokens: Sequence[str]) -> set[str]:
    """Remove these requests; returns the tokens of those that were still there (another
    transaction may have taken the others: a process starting what an earlier one left)."""
    if not tokens:
        return set()
    rows = await db.execute(
        delete(InboxRow).where(InboxRow.token.in_(tokens)).returning(InboxRow.token)
    )
    return {token for (token,) in rows}


async def of_person(db: AsyncSession, team_id: str, user_id: str) -> list[str]:
    """The tokens of the stored requests `user_id` made in workspace `team_id`. The inbox
    holds only what is not started yet, so it is read whole; a row without the expected
    shape is nobody's."""
    rows = await db.execute(select(InboxRow.token, InboxRow.request))
    theirs = []
    for token, request in rows:
        session = request.get("session") if isinstance(request, dict) else None
        if isinstance(session, dict) and (session.get("team_id"), session.get("owner")) == (
            team_id,
            user_id,
        ):
            theirs.append(token)
    return theirs
