"""Side effects recorded before they are made: the intent rows of the exactly-once rule.

Before the engine posts a message or shares files it records an intent (`attempt`); when
the platform answered, the answer is recorded with the state it belongs to (`done`, in the
same transaction as the thread ts, status ts, file ids or result ts). An intent without
`done_at` means "tried, outcome unknown": a restart looks for the tagged message first.
Writes are guarded by the job's lease like every other write of the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import EffectRow, db_now

Maker = async_sessionmaker[AsyncSession]

NO_SYNC = {"synchronize_session": False}
"""Execution options of the engine's UPDATEs (here and in core.db.jobs): no session
synchronisation, as no function holding a loaded row writes to it through them
(https://docs.sqlalchemy.org/en/20/orm/queryguide/dml.html#selecting-a-synchronization-strategy)."""

# Built once, values bound when they run (issue 13, see core.db.jobs).
_THIS = (
    EffectRow.generation_id == bindparam("w_job_id"),
    EffectRow.effect == bindparam("w_effect"),
)
_GET = select(EffectRow).where(*_THIS)
_ATTEMPT = (
    update(EffectRow)
    .where(*_THIS)
    .values(attempts=EffectRow.attempts + 1, file_ids=None, ref=None, done_at=None)
    .execution_options(**NO_SYNC)
)
_RESERVE = (
    update(EffectRow)
    .where(*_THIS)
    .values(file_ids=bindparam("v_file_ids"))
    .execution_options(**NO_SYNC)
)
_DONE = (
    update(EffectRow)
    .where(*_THIS)
    .values(ref=bindparam("v_ref"), done_at=db_now())
    .execution_options(**NO_SYNC)
)


@dataclass(frozen=True)
class Intent:
    """A recorded side effect: `effect` (a core.ports.Effect value), the first try's
    `attempted_at` (UTC epoch seconds, database clock), `attempts`, the reserved
    `file_ids` of an upload ({index: file id}), the platform's `ref` (a message ts) and
    whether it is `done` (the answer was recorded)."""

    effect: str
    attempted_at: float
    attempts: int
    file_ids: dict[int, str]
    ref: str | None
    done: bool


async def get(sm: Maker, job_id: int, effect: str) -> Intent | None:
    """The intent of `effect` for the job, or None when it was never tried."""
    async with sm() as db:
        row = await db.scalar(_GET, {"w_job_id": job_id, "w_effect": effect})
    if row is None:
        return None
    files = {int(index): str(file_id) for index, file_id in (row.file_ids or {}).items()}
    done = row.done_at is not None
    return Intent(row.effect, row.attempted_at, row.attempts, files, row.ref, done)


async def attempt(db: AsyncSession, job_id: int, effect: str) -> None:
    """Record that `effect` is about to be tried (first try: a new row with the database
    time; later tries: one more attempt, reserved file ids dropped). Call inside a
    transaction that checked the lease."""
    result = await db.execute(_ATTEMPT, {"w_job_id": job_id, "w_effect": effect})
    if result.rowcount == 0:
        db.add(EffectRow(generation_id=job_id, effect=effect, attempts=1))


async def reserve(db: AsyncSession, job_id: int, effect: str, file_ids: Mapping[int, str]) -> None:
    """Keep the file ids reserved for an upload before they are shared."""
    files = {str(index): file_id for index, file_id in file_ids.items()}
    await db.execute(_RESERVE, {"w_job_id": job_id, "w_effect": effect, "v_file_ids": files})


async def done(db: AsyncSession, job_id: int, effect: str, ref: str | None) -> None:
    """Record the platform's answer `ref` (a message ts, None for an upload) for `effect`.
    An effect made without a recorded intent gets its row now."""
    result = await db.execute(_DONE, {"w_job_id": job_id, "w_effect": effect, "v_ref": ref})
    if result.rowcount == 0:
        row = EffectRow(generation_id=job_id, effect=effect, attempts=1, ref=ref, done_at=db_now())
        db.add(row)
