"""The job queue under load (issue 13): waiting jobs are parked and started in queue order
when a slot frees, never claimed again while they wait; owned jobs are polled on timers, a
poll that finds nothing new writes nothing, and one statement renews every lease. Real
SQLite database (PostgreSQL too when TEST_DATABASE_URL is set), the local provider and the
recording publisher; statements are counted with SQLAlchemy's cursor events."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from core import db
from core.models import GenerationRow, GenerationState
from tests.fakes.publisher import RecordingPublisher
from tests.jobs_support import Maker, make_engine, queue

S = GenerationState
JOBS = 120  # 300 pass too (about 90 s on a busy 2-core box)
CONCURRENCY = 4


class Statements:
    """Every SQL statement the engine's database runs, in order."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.seen: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement: str, *_args: object) -> None:  # type: ignore[no-untyped-def]
        self.seen.append(" ".join(statement.split()).upper())

    def since(self, mark: int, prefix: str) -> list[str]:
        return [s for s in self.seen[mark:] if s.startswith(prefix)]


@pytest.fixture
async def database(migrated_url: str) -> AsyncIterator[tuple[Maker, Statements]]:
    engine = db.create_engine(migrated_url)
    yield db.sessionmaker(engine), Statements(engine)
    await engine.dispose()


async def _until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _count(sm: Maker, *where: object) -> int:
    async with sm() as s:
        return int(await s.scalar(select(func.count()).select_from(GenerationRow).where(*where)))


@pytest.mark.timeout(240)
async def test_a_burst_starts_in_queue_order_and_no_waiting_job_is_claimed_again(
    database: tuple[Maker, Statements], tmp_path: Path
) -> None:
    sm, statements = database
    ids = [await queue(sm, f"job {i}") for i in range(JOBS)]
    engine = make_engine(sm, tmp_path, RecordingPublisher(), concurrency=CONCURRENCY)
    most_running = 0
    mark = len(statements.seen)
    engine.start()
    try:

        async def all_posted() -> bool:
            nonlocal most_running
            most_running = max(most_running, await _count(sm, GenerationRow.state == S.SUBMITTED))
            return await _count(sm, GenerationRow.state == S.POSTED) == JOBS

        await _until(all_posted, 200, f"{JOBS} jobs posted")
    finally:
        await engine.stop()
    assert most_running <= CONCURRENCY
    # Submitted in the order they were queued.
    async with sm() as s:
        by_task = dict(
            (await s.execute(select(GenerationRow.provider_task_id, GenerationRow.id))).all()
        )
    submitted = [by_task[t] for t in engine.ctx.provider.submitted_task_ids]  # type: ignore[attr-defined]
    assert sorted(submitted) == ids
    # In queue order: jobs admitted together (one per free slot) start at the same moment.
    assert all(abs(pos - ids.index(job_id)) < CONCURRENCY for pos, job_id in enumerate(submitted))
    # Each job is claimed at most twice: once to open its thread (then parked), once when
    # admitted. Looking again and again at waiting jobs would be hundreds of claims each.
    assert engine.claims <= 2 * JOBS
    claims = [s for s in statements.since(0, "UPDATE GENERATIONS SET LEASE_OWNER") if " IN (" in s]
    assert 0 < len(claims) <= 2 * JOBS  # claim statements (each takes a batch)
    ours = "SELECT COUNT(*) AS COUNT_1 FROM GENERATIONS WHERE GENERATIONS.STATE = ?"
    selects = [s for s in statements.since(mark, "SELECT") if s != ours]
    # About 48 per job, all of them the job's own steps (views, effects, inputs, admission);
    # a job waiting 15 s for its turn and looked at every second would add over 100.
    assert len(selects) < 60 * JOBS, f"{len(selects) / JOBS:.1f} SELECT per job"


async def test_a_running_poll_with_no_news_writes_nothing_and_one_statement_renews_all(
    database: tuple[Maker, Statements], tmp_path: Path
) -> None:
    sm, statements = database
    for i in range(5):
        await queue(sm, f"slow {i}")
    # 600 s renders: progress stays under 10 % for a minute, so no poll has news.
    engine = make_engine(
        sm, tmp_path, RecordingPublisher(), render_seconds=600, concurrency=5, lease_seconds=1.5
    )
    engine.start()
    try:

        async def all_submitted() -> bool:  # and their threads opened (after the submit)
            opened = GenerationRow.status_ts.is_not(None)
            return await _count(sm, GenerationRow.state == S.SUBMITTED, opened) == 5

        await _until(all_submitted, 30, "5 tasks submitted, their threads open")
        polls = sum(t.polls for t in engine.ctx.tracks.values())
        mark, started = len(statements.seen), time.monotonic()

        def writes() -> list[str]:
            seen = statements.seen[mark:]
            return [s for s in seen if s.startswith(("UPDATE", "INSERT", "DELETE"))]

        async def polled_and_renewed() -> bool:  # every job polled again, 2 renewals seen
            polled = sum(t.polls for t in engine.ctx.tracks.values()) - polls
            return polled >= 5 and len(writes()) >= 2

        await _until(polled_and_renewed, 60, "polls and lease renewals")
        window, elapsed = writes(), time.monotonic() - started
    finally:
        await engine.stop()
    # The only writes while the tasks were polled were the lease renewals, one statement
    # for all five jobs every lease_seconds / 3 (0.5 s), not one per job.
    assert all(s.startswith("UPDATE GENERATIONS SET LEASE_EXPIRES_AT") for s in window)
    assert all("GENERATIONS.ID" not in s for s in window)
    assert 2 <= len(window) <= elapsed / 0.5 + 2
    leased = await _count(sm, GenerationRow.lease_owner == engine.owner)
    assert leased == 0  # released at stop
