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
from core.providers.base import GenerationRequest, Submission, TaskStatus
from core.providers.local import LocalProvider
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


class OrderedProvider(LocalProvider):
    """The local provider, noting at each submit how many of the burst's older jobs (their
    prompts are "job <index>") were not submitted yet and how many tasks were running."""

    def __init__(self) -> None:
        super().__init__(render_seconds=0)
        self.order: list[int] = []  # queue indexes, in the order they were submitted
        self.running: set[str] = set()  # tasks submitted and not yet polled done
        self.passed: list[tuple[int, int, int]] = []  # (index, older not submitted, running)

    async def submit(self, request: GenerationRequest) -> Submission:
        index = int(request.prompt.removeprefix("job "))
        older = sum(1 for i in range(index) if i not in self.order)
        self.passed.append((index, older, len(self.running)))
        self.order.append(index)
        submission = await super().submit(request)
        self.running.add(submission.task_id)
        return submission

    async def poll(self, task_id: str, request: GenerationRequest) -> TaskStatus:
        status = await super().poll(task_id, request)
        if status.state != "running":
            self.running.discard(task_id)
        return status


@pytest.mark.timeout(240)
async def test_a_burst_starts_in_queue_order_and_no_waiting_job_is_claimed_again(
    database: tuple[Maker, Statements], tmp_path: Path
) -> None:
    sm, statements = database
    for i in range(JOBS):
        await queue(sm, f"job {i}")
    provider = OrderedProvider()
    engine = make_engine(
        sm, tmp_path, RecordingPublisher(), provider=provider, concurrency=CONCURRENCY
    )
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
    assert sorted(provider.order) == list(range(JOBS))  # each submitted once
    # In queue order: a job went only when a slot was left after the older jobs not
    # submitted yet (a burst starts at once; an older job slow to come keeps its place, its
    # slot unused meanwhile, while the other slots go on). Submitting in any other order
    # breaks this: the 50th job first would see 49 older ones waiting.
    out_of_order = [p for p in provider.passed if p[1] + p[2] >= CONCURRENCY]
    assert not out_of_order, f"(queue index, older not submitted, running): {out_of_order}"
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
