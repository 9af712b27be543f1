"""A job goes to the provider before its thread is posted (issue 13): Slack posts about
one message a second per channel, so a burst's threads take minutes while its tasks could
all run. The thread still opens (recorded before it is posted), the result waits for it,
and a restart neither submits twice nor posts twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from core.jobs import EngineConfig, JobEngine
from core.models import GenerationRow, GenerationState
from core.ports import ChannelUnreachable, GenerationView
from core.providers.local import LocalProvider
from core.schedule import PollSchedule
from core.store import ImageStore
from tests.fakes.publisher import RecordingPublisher
from tests.jobs_support import Maker, make_engine, queue, row, set_row, wait_row

S = GenerationState


class SlowThreads(RecordingPublisher):
    """A RecordingPublisher whose root posts wait until `opened` is set (Slack's pace)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = asyncio.Event()
        self.waiting = 0  # root posts waiting for `opened`

    async def open_thread(self, view: GenerationView) -> str:
        self.waiting += 1
        self._changed.set()
        await self.opened.wait()
        self.waiting -= 1
        return await super().open_thread(view)


def _provider(engine: object) -> LocalProvider:
    provider = engine.ctx.provider  # type: ignore[attr-defined]
    assert isinstance(provider, LocalProvider)
    return provider


async def test_the_task_is_submitted_before_the_thread_is_posted(sm: Maker, tmp_path: Path) -> None:
    publisher = SlowThreads()
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600)
    engine.start()
    try:
        submitted = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.SUBMITTED)
        assert submitted is not None and submitted.provider_task_id
        assert submitted.status_ts is None and not publisher.of("open_thread")
        await publisher.wait_for(lambda: publisher.waiting == 1)  # the root post waits
        publisher.opened.set()
        shown = await wait_row(sm, job_id, lambda r: r is not None and r.status_ts is not None)
    finally:
        await engine.stop()
    assert shown is not None and shown.state == S.SUBMITTED
    assert [c.method for c in publisher.calls] == ["open_thread", "show_status"]
    assert publisher.of("show_status")[0].view.state == S.SUBMITTED  # no "queued" first
    assert _provider(engine).submitted_task_ids == [submitted.provider_task_id]


async def test_a_task_done_before_its_thread_is_posted_waits_for_the_thread(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = SlowThreads()
    job_id = await queue(sm)
    now = [time.time()]  # the provider's clock: the task ends when the test says so
    engine = JobEngine(
        sm,
        LocalProvider(render_seconds=5, clock=lambda: now[0]),
        publisher=publisher,
        store=ImageStore(tmp_path / "images"),
        config=EngineConfig(idle_seconds=0.05),
    )
    engine.ctx.schedule = PollSchedule(first=0.02, interval=0.02, factor=1.0, jitter=0)
    engine.start()
    try:
        await wait_row(sm, job_id, lambda r: r is not None and r.state == S.SUBMITTED)
        await publisher.wait_for(lambda: publisher.waiting == 1)
        now[0] += 10  # the task is done from here on
        mark = engine.ctx.tracks[job_id].elapsed()
        deadline = time.monotonic() + 20
        while engine.ctx.tracks[job_id].asked <= mark:  # a poll found it done
            assert time.monotonic() < deadline, "never polled once the task was done"
            await asyncio.sleep(0.01)
        assert not publisher.of("post_result") and not publisher.of("reserve_uploads")
        assert (await row(sm, job_id)).state == S.SUBMITTED  # type: ignore[union-attr]
        publisher.opened.set()
        done = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
    assert done is not None
    methods = [c.method for c in publisher.calls]
    assert methods[:2] == ["open_thread", "show_status"]
    assert methods.count("open_thread") == 1 and methods.count("post_result") == 1
    thread_ts = publisher.of("open_thread")[0].result
    assert publisher.of("post_result")[0].view.thread_ts == thread_ts


async def test_a_restart_while_the_thread_is_posted_neither_submits_nor_posts_twice(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = SlowThreads()
    job_id = await queue(sm)
    first = make_engine(sm, tmp_path, publisher, render_seconds=600, owner="first")
    first.start()
    submitted = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.SUBMITTED)
    assert submitted is not None
    await publisher.wait_for(lambda: publisher.waiting == 1)  # the ROOT intent is recorded
    # The process dies mid-post; Slack answers after that.
    shown, second = await _restart_until_status(
        sm, tmp_path, publisher, first, job_id, publisher.opened
    )
    assert shown.provider_task_id == submitted.provider_task_id
    assert _provider(first).submitted_task_ids == [submitted.provider_task_id]
    assert _provider(second).submitted_task_ids == []  # polled, not submitted again
    # The recorded intent makes the new process look for the lost root post first.
    assert [c.method for c in publisher.calls] == ["find_posted", "open_thread", "show_status"]


async def test_an_unreachable_channel_after_the_submit_gives_the_task_up(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = RecordingPublisher()
    publisher.fail_next("open_thread", ChannelUnreachable("not_in_channel"))
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600)
    assert await engine.claim() == job_id
    await engine.run(job_id)
    assert await row(sm, job_id) is None  # the session is discarded with its generation
    [told] = publisher.of("tell_requester")
    assert told.failure is not None and told.failure.kind == "not_in_channel"
    [task_id] = _provider(engine).submitted_task_ids
    status = await _provider(engine).poll(task_id, None)  # type: ignore[arg-type]
    assert status.state == "failed"  # cancelled at the provider


class SlowStatus(RecordingPublisher):
    """A RecordingPublisher whose status posts (not edits) wait until `posted` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.posted_ok = asyncio.Event()
        self.waiting = 0

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        if view.status_ts is None:
            self.waiting += 1
            self._changed.set()
            await self.posted_ok.wait()
            self.waiting -= 1
        return await super().show_status(view, force=force)


async def test_a_restart_before_the_status_post_looks_for_it_then_posts_it_once(
    sm: Maker, tmp_path: Path
) -> None:
    publisher = SlowStatus()
    job_id = await queue(sm)
    first = make_engine(sm, tmp_path, publisher, render_seconds=600, owner="first")
    first.start()
    await publisher.wait_for(lambda: publisher.waiting == 1)  # root posted, status intent kept
    _, second = await _restart_until_status(
        sm, tmp_path, publisher, first, job_id, publisher.posted_ok
    )
    methods = [c.method for c in publisher.calls]
    assert methods == ["open_thread", "find_posted", "show_status"]  # one root, one status
    assert _provider(second).submitted_task_ids == []


async def _restart_until_status(
    sm: Maker,
    tmp_path: Path,
    publisher: RecordingPublisher,
    first: JobEngine,
    job_id: int,
    slack: asyncio.Event,
) -> tuple[GenerationRow, JobEngine]:
    """`first` dies (its leases kept, then run out), then `slack` is set (Slack answers the
    calls held so far); a second worker takes the job on until its status message is
    recorded. The row then, still running its task, and the second worker (stopped)."""
    await first.stop(release=False)
    await set_row(sm, job_id, lease_expires_at=0.0)
    slack.set()
    second = make_engine(sm, tmp_path, publisher, render_seconds=600, owner="second")
    second.start()
    try:
        shown = await wait_row(sm, job_id, lambda r: r is not None and r.status_ts is not None)
    finally:
        await second.stop()
    assert shown is not None and shown.state == S.SUBMITTED
    return shown, second
