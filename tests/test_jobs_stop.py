"""Shutdown of the job engine (issue 13): a step in progress finishes before the leases are
released, so no transaction is cut in the middle (a cancelled one could leave SQLite's write
lock held past the release); waiting jobs stop at once; a crash stop stays a crash."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import text, update

from core.models import GenerationRow, GenerationState, SessionRow
from core.ports import GenerationView
from tests.fakes.publisher import RecordingPublisher
from tests.jobs_support import Maker, make_engine, queue, row, wait_row

S = GenerationState


class SlowSlack(RecordingPublisher):
    """Opening a thread waits until `go` is set (a Slack call in flight at shutdown)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def open_thread(self, view: GenerationView) -> str:
        self.entered.set()
        await self.go.wait()
        return await super().open_thread(view)


async def test_a_step_in_progress_finishes_and_its_writes_land_before_the_release(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = SlowSlack()
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=60)
    engine.start()
    await asyncio.wait_for(publisher.entered.wait(), 20)
    stopping = asyncio.create_task(engine.stop(grace=60))
    for _ in range(20):  # the stop waits for the step: it cannot be done while Slack is
        await asyncio.sleep(0)
    assert not stopping.done()
    publisher.go.set()
    await asyncio.wait_for(stopping, 30)
    stored = await row(sm, job_id)
    assert stored is not None
    # The step ran to its end: the thread it opened is recorded, the task submitted, and
    # the lease released for the next worker.
    assert stored.state == S.SUBMITTED and stored.provider_task_id
    assert await _thread_ts(sm, stored.session_id) is not None
    assert stored.lease_owner is None
    await _write_now(sm, job_id)


async def test_past_the_grace_a_step_is_cancelled_and_the_lease_still_released(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = SlowSlack()
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher)
    engine.start()
    await asyncio.wait_for(publisher.entered.wait(), 20)
    await asyncio.wait_for(engine.stop(grace=0.1), 30)
    stored = await row(sm, job_id)
    assert stored is not None and stored.lease_owner is None
    assert await _thread_ts(sm, stored.session_id) is None  # cut short in the Slack call
    await _write_now(sm, job_id)


async def test_jobs_waiting_on_their_timers_stop_at_once(sm: Maker, tmp_path: Path) -> None:
    publisher = RecordingPublisher()
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600)
    engine.start()
    await wait_row(sm, job_id, lambda r: r is not None and r.state == S.SUBMITTED)
    started = time.monotonic()
    await asyncio.wait_for(engine.stop(grace=120), 60)
    assert time.monotonic() - started < 60  # far below the grace: nobody waited for it
    stored = await row(sm, job_id)
    assert stored is not None and stored.state == S.SUBMITTED and stored.lease_owner is None


async def test_a_crash_stop_keeps_the_leases_even_when_stop_is_called_again(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = RecordingPublisher()
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600)
    engine.start()
    await wait_row(sm, job_id, lambda r: r is not None and r.state == S.SUBMITTED)
    await engine.stop(release=False)
    await engine.stop()  # the web app's cleanup after a simulated crash
    stored = await row(sm, job_id)
    assert stored is not None and stored.lease_owner == engine.owner


async def _write_now(sm: Maker, job_id: int) -> None:
    """A write on a fresh connection that may wait at most 1 s for SQLite's write lock:
    it fails with "database is locked" if a cut transaction still holds it."""
    async with sm() as s:
        if s.bind.dialect.name == "sqlite":
            await s.execute(text("PRAGMA busy_timeout=1000"))
        await s.execute(update(GenerationRow).where(GenerationRow.id == job_id).values(polls=0))
        await s.commit()


async def _thread_ts(sm: Maker, session_id: int) -> str | None:
    """The session's thread as recorded (None until its root post is stored)."""
    async with sm() as s:
        found = await s.get(SessionRow, session_id)
        return found.thread_ts if found is not None else None
