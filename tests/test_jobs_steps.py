"""Unit tests of the job engine's steps (submit, poll, post and their outcomes) against the
recording publisher, the local provider and a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from core.db import views
from core.flags import Params
from core.jobs import steps
from core.jobs.request import build_request
from core.models import GenerationState, SessionRow
from core.ports import ChannelUnreachable, Failure, FailureReason, PublishError
from core.store import ImageStore
from tests.fakes.publisher import RecordingPublisher
from tests.jobs_support import Maker, job, make_engine, queue, row, set_row, wait_row

S = GenerationState


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


async def test_a_job_goes_from_queued_to_posted_showing_each_step(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher)
    engine.start()
    try:
        done = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
    assert done is not None and done.lease_owner is None and done.error is None
    methods = [c.method for c in publisher.calls]
    assert methods[:2] == ["open_thread", "show_status"]
    assert methods[-4:] == ["reserve_uploads", "share_uploads", "post_result", "show_status"]
    thread_ts = publisher.of("open_thread")[0].result
    first_status = publisher.of("show_status")[0]
    assert first_status.view.thread_ts == thread_ts and first_status.view.status_ts is None
    assert done.status_ts == first_status.result
    posted = publisher.of("post_result")[0].view
    assert [i.file_id for i in posted.images] == list(
        publisher.of("reserve_uploads")[0].result.values()
    )
    final = publisher.of("show_status")[-1]
    assert final.force and final.view.state == S.POSTED and final.view.result_ts == done.result_ts
    view = await views.get_view(sm, job_id)
    assert view.thread_ts == thread_ts and all(i.file_id for i in view.images)


async def test_an_unreachable_channel_is_told_to_the_requester_as_a_code(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher)
    publisher.fail_next("open_thread", ChannelUnreachable("not_in_channel"))
    assert await engine.claim() == job_id
    await engine.run(job_id)
    [told] = publisher.of("tell_requester")
    assert told.failure == Failure(FailureReason.CHANNEL_UNREACHABLE, "not_in_channel")
    assert await row(sm, job_id) is None  # the session is discarded with its generation
    async with sm() as s:
        assert await s.get(SessionRow, told.view.session_id) is None


async def test_past_the_deadline_the_job_fails_with_the_minutes(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600, deadline_seconds=90)
    assert await engine.claim() == job_id
    await engine.run(job_id)  # opens the thread, submits, releases until the first poll
    await set_row(sm, job_id, submitted_at=0.0, next_attempt_at=0.0)  # submitted long ago
    await wait_row(sm, job_id, lambda r: r is not None and r.lease_owner is None)
    assert await engine.claim() == job_id
    await engine.run(job_id)
    failed = await row(sm, job_id)
    assert failed is not None and failed.state == S.FAILED and failed.error_kind == "deadline"
    [report] = publisher.of("report_failure")
    assert report.failure == Failure(FailureReason.DEADLINE, "deadline", minutes=2)
    assert report.view.state == S.FAILED
    assert (await views.get_view(sm, job_id)).failure == report.failure


async def test_a_task_the_provider_failed_is_a_provider_failure_with_its_message(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600)
    assert await engine.claim() == job_id
    await engine.run(job_id)
    submitted = await job(sm, job_id)
    assert submitted.state == S.SUBMITTED and submitted.provider_task_id
    await engine.ctx.provider.cancel(submitted.provider_task_id)  # the provider drops it
    await set_row(sm, job_id, next_attempt_at=0.0)
    assert await engine.claim() == job_id
    await engine.run(job_id)
    [report] = publisher.of("report_failure")
    assert report.failure == Failure(FailureReason.PROVIDER, "task_failed", "cancelled")
    stored = await row(sm, job_id)
    assert stored is not None and (stored.state, stored.error) == (S.FAILED, "cancelled")


async def test_a_refused_message_is_retried_then_posted_once(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    publisher.fail_next("post_result", PublishError("Slack answered ratelimited", 0.01))
    engine = make_engine(sm, tmp_path, publisher)
    engine.start()
    try:
        done = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
    # One failed try, recorded (the kind stays on the row once it is posted).
    assert done is not None and done.attempts == 1 and done.error_kind == "publish"
    assert len(publisher.of("reserve_uploads")) == 1  # the uploaded files were kept
    assert len(publisher.of("share_uploads")) == 1
    assert [c.result for c in publisher.of("post_result")][-1] == done.result_ts
    assert not publisher.of("report_failure")


async def test_giving_up_before_the_thread_exists_tells_the_requester_and_keeps_nothing(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    publisher.fail_next("open_thread", PublishError("Slack could not be reached"))
    engine = make_engine(sm, tmp_path, publisher, max_attempts=1)
    assert await engine.claim() == job_id
    await engine.run(job_id)
    [told] = publisher.of("tell_requester")
    assert told.failure == Failure(FailureReason.GAVE_UP, "publish", None, attempts=1)
    assert told.view.thread_ts is None
    assert await row(sm, job_id) is None


async def test_a_cancelled_job_is_cancelled_at_its_next_step(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=600)
    assert await engine.claim() == job_id
    await engine.run(job_id)
    await set_row(sm, job_id, cancel_requested=True, next_attempt_at=0.0)
    assert await engine.claim() == job_id
    assert await steps.run_step(engine.ctx, await job(sm, job_id)) is None
    stored = await row(sm, job_id)
    assert stored is not None and stored.state == S.CANCELLED and stored.lease_owner is None
    last = publisher.of("show_status")[-1]
    assert last.force and last.view.state == S.CANCELLED


async def test_a_version_cancelled_before_its_status_is_shown_posts_nothing(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    """(forget-me cancels queued versions whose status was never posted: a Cancel click
    always has a status message.) The cancelled job posts no status message of its own."""
    job_id = await queue(sm)
    async with sm.begin() as db:
        await db.execute(update(SessionRow).values(thread_ts="1.000100"))
    await set_row(sm, job_id, cancel_requested=True, next_attempt_at=0.0)
    engine = make_engine(sm, tmp_path, publisher)
    assert await engine.claim() == job_id
    assert await steps.run_step(engine.ctx, await job(sm, job_id)) is None
    stored = await row(sm, job_id)
    assert stored is not None and stored.state == S.CANCELLED
    assert publisher.calls == []


async def test_a_completed_version_cancelled_shares_no_image_and_posts_no_result(
    sm: Maker, tmp_path: Path, publisher: RecordingPublisher
) -> None:
    """Cancelled before its post step: nothing is shared. Cancelled during it (the job the
    step started with is stale): the result message is not posted."""
    first, second = await queue(sm), await queue(sm, "another")
    engine = make_engine(sm, tmp_path, publisher)
    for job_id in (first, second):
        assert await engine.claim() == job_id
        for _ in range(3):  # submit, then poll until the images are stored
            if (await job(sm, job_id)).state != S.COMPLETED:
                await steps.run_step(engine.ctx, await job(sm, job_id))
        assert (await job(sm, job_id)).state == S.COMPLETED
    started = await job(sm, second)
    await set_row(sm, first, cancel_requested=True)
    await set_row(sm, second, cancel_requested=True)
    assert await steps.run_step(engine.ctx, await job(sm, first)) is None
    view = await views.get_view(sm, second)
    assert await steps.post(engine.ctx, started, view) is None  # the cancel came mid-step
    for job_id in (first, second):
        stored = await row(sm, job_id)
        assert stored is not None and stored.state == S.CANCELLED and stored.result_ts is None
    assert [c.view.generation_id for c in publisher.of("reserve_uploads")] == [second]
    assert publisher.of("post_result") == []


async def test_a_loaded_job_carries_the_stored_ask_and_its_request_the_stored_size(
    sm: Maker, tmp_path: Path
) -> None:
    job_id = await queue(sm, "a lighthouse", Params(aspect_ratio="3:2", n=2, seed=7))
    loaded = await job(sm, job_id)
    assert loaded.ask == (await views.get_view(sm, job_id)).ask
    stored = await row(sm, job_id)
    assert stored is not None
    request = await build_request(loaded, [], ImageStore(tmp_path / "images"), "m1")
    assert (request.width, request.height) == (stored.width, stored.height) == (1254, 836)
    assert (request.prompt, request.typed_prompt) == ("a lighthouse", "a lighthouse")
    assert (request.seed, request.n, request.model) == (7, 2, "m1")
