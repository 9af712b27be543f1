"""The steps of a job, by state: submit (admission, submit), poll, post.

A job goes to the provider without waiting for its thread: Slack takes about one
message a second per channel, so a burst's threads take minutes to post while its tasks
could all be running. Once the task is submitted, the root and status messages are posted
(at Slack's pace) while the task is polled on its schedule (`open_while_polling`); a task
that ends meanwhile is acted on once the thread is there, and the result is posted only
into it. A job that must wait for admission opens its thread first, to say why it waits.

`run_step` loads the job's view once, runs the step of its state and turns what went
wrong into an outcome: a retry (provider unavailable or rate limited, the platform did not
accept a message, a bug of ours), a failure (the provider refused, the channel cannot be
reached) or nothing (the lease was lost: another worker owns the job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from core import logs, metrics
from core.db import effects, views
from core.db import jobs as jobs_db
from core.db import refinement as refinement_db
from core.db import sessions as sessions_db
from core.db.jobs import Job, LeaseLost
from core.jobs import cache, outcomes, policy
from core.jobs.admission import Wait
from core.jobs.context import JobContext, PollTrack
from core.jobs.once import post_once, upload_once
from core.jobs.outcomes import best_effort
from core.jobs.request import build_request
from core.models import GenerationState
from core.ports import (
    ChannelUnreachable,
    Effect,
    Failure,
    FailureReason,
    GenerationView,
    PublishError,
)
from core.pricing import estimate_cost
from core.providers.base import GenerationRequest, ProviderError, Submission, TaskStatus
from core.schedule import expected_finish, next_poll, observed_duration, progress_bucket

log = logging.getLogger(__name__)
S = GenerationState
RECHECK = 1.0  # seconds between admission checks of a waiting job while its thread opens


async def run_step(ctx: JobContext, job: Job) -> float | None:
    """Run the step for the job's state. Returns seconds until the next step (0 = go on
    now; `outcomes.PARKED` = not before it is admitted) or None when the job left the engine
    (terminal or deleted). Raises LeaseLost."""
    logs.bind(session_id=job.session_id, generation_id=job.id)  # issue 13: on every log line
    try:
        if job.state == S.SUBMITTED and not job.cancel_requested and job.status_ts:
            return await poll(ctx, job, None)  # reads the view only when it shows something
        view = await views.get_view(ctx.sm, job.id)
        job = replace(job, cancel_requested=job.cancel_requested or view.cancel_requested)
        if job.state == S.SUBMITTED and not job.cancel_requested:  # no thread yet (restart)
            return await open_while_polling(ctx, job, view, 0.0)
        if job.cancel_requested and job.state != S.COMPLETED:
            return await outcomes.cancel(ctx, job, view)
        if job.state == S.QUEUED:
            return await submit(ctx, job, view)
        return await post(ctx, job, view)
    except (LeaseLost, asyncio.CancelledError):
        raise
    except ChannelUnreachable as err:
        failure = Failure(FailureReason.CHANNEL_UNREACHABLE, err.reason)
        view = await views.get_view(ctx.sm, job.id)
        await best_effort(ctx.publisher.tell_requester(view, failure))
        return await outcomes.fail(ctx, job, view, failure)
    except ProviderError as err:
        log.warning("job %s: provider error %s: %s", job.id, err.kind, err.detail or err)
        metrics.provider_error(job.ask.provider, err.kind.value)
        view = await views.get_view(ctx.sm, job.id)
        if err.kind.retryable:
            return await outcomes.retry(
                ctx, job, view, err.kind.value, err.message, err.retry_after
            )
        failure = Failure(FailureReason.PROVIDER, err.kind.value, err.message)
        return await outcomes.fail(ctx, job, view, failure)
    except PublishError as err:
        log.warning("job %s: publish failed: %s", job.id, err)
        view = await views.get_view(ctx.sm, job.id)
        return await outcomes.retry(ctx, job, view, "publish", None, err.retry_after)
    except Exception:
        log.exception("job %s: step %s crashed", job.id, job.state)
        view = await views.get_view(ctx.sm, job.id)
        return await outcomes.retry(ctx, job, view, "internal", None, None)


async def open_thread(ctx: JobContext, job: Job, view: GenerationView) -> GenerationView | None:
    """Post the session's root message and the status message where they are missing;
    the view with both, or None when the channel cannot be reached (the requester is
    told and the session discarded). The status message's intent is recorded with the
    root's ts (one commit less per thread)."""
    recorded = False  # the STATUS intent is recorded already (with the thread)
    if view.thread_ts is None:
        try:
            thread_ts = await post_once(
                ctx, job, view, Effect.ROOT, lambda: ctx.publisher.open_thread(view)
            )
        except ChannelUnreachable as err:
            failure = Failure(FailureReason.CHANNEL_UNREACHABLE, err.reason)
            await best_effort(ctx.publisher.tell_requester(view, failure))
            await sessions_db.discard_session(ctx.sm, job.session_id)
            log.info("job %s: channel unreachable (%s); session discarded", job.id, err.reason)
            return None
        recorded = view.status_ts is None
        then = Effect.STATUS if recorded else None
        await jobs_db.set_thread(ctx.sm, job.id, ctx.owner, job.session_id, thread_ts, then)
        view = replace(view, thread_ts=thread_ts)
    if view.status_ts is None:
        shown = view

        async def show() -> str:
            return str(await ctx.publisher.show_status(shown, force=True))

        if recorded:
            status_ts = await show()
        else:
            status_ts = await post_once(ctx, job, view, Effect.STATUS, show)
        await jobs_db.set_status_ts(ctx.sm, job.id, ctx.owner, status_ts)
        view = replace(view, status_ts=status_ts)
    return view


async def submit(ctx: JobContext, job: Job, view: GenerationView) -> float | None:
    """Queued: wait for admission, submit the task and store its id, then open the thread
    while the task runs (`open_while_polling`). A job that must wait opens its thread (its
    status message says why it waits), looking again every `RECHECK` seconds meanwhile,
    and parks once the thread is open (`outcomes.hold`). A refused submit is told in the
    thread: it is opened before the error is handled."""
    request = await _request(ctx, job)
    if await cache.reuse(ctx, job, request):  # issue 11: no provider call; post opens it
        return 0
    opener: asyncio.Task[GenerationView | None] | None = None
    try:
        while isinstance(submission := await _submit_if_admitted(ctx, job, request), Wait):
            if view.status_ts is not None:
                return await outcomes.hold(ctx, job, view, submission)
            opener = opener or asyncio.create_task(open_thread(ctx, job, view))
            await asyncio.wait([opener], timeout=RECHECK)
            if opener.done():
                if (opened := opener.result()) is None:
                    return None
                view, opener = opened, None
    except ProviderError:  # said in the thread, as when the thread went first
        if await (opener or open_thread(ctx, job, view)) is None:
            return None
        raise
    except BaseException:
        await _stop(opener)
        raise
    await metrics.submitted(ctx.sm, job.id)
    log.info("job %s: submitted as task %s", job.id, submission.task_id)
    job = replace(
        job,
        state=S.SUBMITTED,
        provider_task_id=submission.task_id,
        polls=0,
        progress=0,
        ask=replace(job.ask, model=request.model),
    )
    view = replace(view, state=S.SUBMITTED, progress=0, waiting_reason=None, waiting_number=None)
    if submission.status is not None:  # a synchronous provider: done already
        return await open_while_polling(ctx, job, view, 0.0, opener, submission.status)
    track = ctx.tracks[job.id]
    track.keep = True
    delay = _next_poll(ctx, job, track)
    if view.status_ts is not None:  # opened while it waited
        return delay
    return await open_while_polling(ctx, job, view, delay, opener)


async def _stop(task: asyncio.Task[GenerationView | None] | None) -> None:
    """Cancel a thread opener cut short: a post it left half done is found again by the
    next try (`post_once`)."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _submit_if_admitted(
    ctx: JobContext, job: Job, request: GenerationRequest
) -> Submission | Wait:
    """Submit the task when admission lets it go, storing its id (state submitted) and
    starting its PollTrack; else why it waits. At most `SUBMITS` jobs of the engine check
    admission, or store a submit, at once (`JobContext.submit_gate`); the provider calls
    are not limited (a synchronous provider's submit lasts the whole generation).
    Raises ProviderError, LeaseLost."""
    async with contextlib.AsyncExitStack() as stack:
        async with ctx.submit_gate:  # the slot, once taken, is held until the stack ends
            wait = await stack.enter_async_context(ctx.admission.slot(job))
        if wait is not None:
            return wait
        submission = await ctx.admission.call(ctx.provider.submit(request))
        answered = time.monotonic()  # the task runs by now: not after the waits below
        async with ctx.submit_gate:  # few writers at once: less waiting for SQLite's lock
            await jobs_db.mark_submitted(
                ctx.sm, job.id, ctx.owner, submission.task_id, request.model
            )
        ctx.tracks[job.id] = PollTrack(answered, request)
    return submission


async def open_while_polling(
    ctx: JobContext,
    job: Job,
    view: GenerationView,
    delay: float,
    opener: asyncio.Task[GenerationView | None] | None = None,
    ended: TaskStatus | None = None,
) -> float | None:
    """Submitted, without its status message: open the thread (`open_thread`, at Slack's
    pace; `opener` when it is being opened already) while the task is polled on its
    schedule, the first poll `delay` seconds from now. `view`: the job as it is now. A
    poll that finds the task still running notes its progress (shown once the status
    message is there); a task that ended (`ended`, or found so by a poll) or a passed
    deadline is acted on after the thread is open (`handle_status`, `poll`). Returns
    seconds until the next poll, or None when the job left the engine (the channel cannot
    be reached: the requester is told, the session discarded, the task given up). Raises
    LeaseLost, ProviderError, PublishError, ChannelUnreachable."""
    track = await _track(ctx, job)
    opener = opener or asyncio.create_task(open_thread(ctx, job, view), name=f"thread-{job.id}")
    due = time.monotonic() + delay
    try:
        while not opener.done() and ended is None:
            await asyncio.wait([opener], timeout=max(0.0, due - time.monotonic()))
            if opener.done() or track.elapsed() > ctx.config.deadline_seconds:
                break
            status = await _ask(ctx, job, track)
            if status.state == "running":
                due = time.monotonic() + await _running(ctx, job, None, status.progress)
            else:
                ended = status
        opened = await opener
    except BaseException:
        await _stop(opener)
        raise
    if opened is None:
        return await _forsake(ctx, job)
    track.fresh = False  # the row changed (thread, status message): the next step reads it
    track.keep = True
    now = replace(view, thread_ts=opened.thread_ts, status_ts=opened.status_ts)
    if ended is not None:
        return await handle_status(ctx, job, now, ended)
    if track.elapsed() > ctx.config.deadline_seconds:
        return await poll(ctx, job, now)
    now = replace(now, progress=track.written)
    if opened.state != now.state or progress_bucket(opened.progress) != progress_bucket(
        now.progress
    ):  # posted as it was when the post began
        await best_effort(ctx.publisher.show_status(now))
    return max(0.0, due - time.monotonic())


async def _forsake(ctx: JobContext, job: Job) -> None:
    """The thread of a submitted job could not be opened (its session is discarded): give
    the task up at the provider where it can be."""
    if job.provider_task_id:
        await best_effort(ctx.provider.cancel(job.provider_task_id))
    return None


async def _track(ctx: JobContext, job: Job) -> PollTrack:
    """The job's PollTrack, made on its first poll in this engine (one read of the submit
    time on the database clock, and of its inputs)."""
    track = ctx.tracks.get(job.id)
    if track is None:
        elapsed = await jobs_db.seconds_since_submit(ctx.sm, job.id) or 0.0
        track = PollTrack(time.monotonic() - elapsed, polls=job.polls)
        track.reported = track.written = job.progress
        ctx.tracks[job.id] = track
    if track.request is None:
        track.request = await _request(ctx, job)
    return track


async def poll(ctx: JobContext, job: Job, view: GenerationView | None) -> float | None:
    """Submitted: fail past the deadline, else ask the provider how the task is doing.
    `view` None: read only when something is shown."""
    track = await _track(ctx, job)
    if track.elapsed() > ctx.config.deadline_seconds:
        minutes = max(1, round(ctx.config.deadline_seconds / 60))
        failure = Failure(FailureReason.DEADLINE, "deadline", minutes=minutes)
        view = view or await views.get_view(ctx.sm, job.id)
        return await outcomes.fail(ctx, job, view, failure)
    return await handle_status(ctx, job, view, await _ask(ctx, job, track))


async def _ask(ctx: JobContext, job: Job, track: PollTrack) -> TaskStatus:
    """One poll of the job's task at the provider. Raises ProviderError."""
    assert job.provider_task_id is not None and track.request is not None
    track.asked = track.elapsed()
    return await ctx.admission.call(ctx.provider.poll(job.provider_task_id, track.request))


def _next_poll(ctx: JobContext, job: Job, track: PollTrack) -> float:
    """Seconds to the next poll: near the expected finish (core.schedule.next_poll)."""
    elapsed = track.elapsed()
    durations = ctx.durations.of(job.ask.provider, job.ask.model)
    expected = expected_finish(durations, elapsed, track.reported, first=track.polls == 0)
    return next_poll(
        ctx.schedule,
        elapsed=elapsed,
        polls=track.polls,
        expected=expected,
        # probes teach durations; progress needs none, nor a provider saying how long
        probe=track.reported < 5 and not ctx.durations.reported(job.ask.provider, job.ask.model),
    )


async def _running(ctx: JobContext, job: Job, view: GenerationView | None, progress: int) -> float:
    """The task still runs: remember the poll; write and show the progress only when it
    reached a new step (core.schedule.progress_bucket) and the job's share of
    `progress_edits_per_second` allows (counted from the submit: with 1,000 jobs running,
    one step in 1,000 s each). Seconds to the next poll."""
    track = ctx.tracks.setdefault(job.id, PollTrack(time.monotonic()))
    track.polls += 1
    track.reported = progress
    track.last_running = track.elapsed()
    gap = len(ctx.tracks) / ctx.config.progress_edits_per_second  # seconds, per job
    new_step = progress_bucket(progress) != progress_bucket(track.written)
    if new_step and time.monotonic() - max(track.shown_at, track.since) >= gap:
        await jobs_db.write(ctx.sm, job.id, ctx.owner, polls=track.polls, progress=progress)
        track.written, track.shown_at = progress, time.monotonic()
        view = view or await views.get_view(ctx.sm, job.id)
        if view.status_ts is not None:  # else the thread is being opened: shown after
            await best_effort(ctx.publisher.show_status(replace(view, progress=progress)))
    track.keep = track.fresh = True
    return _next_poll(ctx, job, track)


def _learn(ctx: JobContext, job: Job, took: float | None) -> None:
    """Remember how long the completed task took: as the provider says (`took`, seconds)
    when it does, else when the polls say it precisely."""
    track = ctx.tracks.get(job.id)
    if track is None:
        return
    known = bool(ctx.durations.of(job.ask.provider, job.ask.model))
    # Done when asked: the answer's own time (rendering, downloads) is not the task's.
    seconds = observed_duration(
        track.last_running, track.asked, ctx.schedule.near, known=known, reported=took
    )
    if seconds is not None:
        ctx.durations.add(job.ask.provider, job.ask.model, seconds, reported=took is not None)


async def handle_status(
    ctx: JobContext, job: Job, view: GenerationView | None, status: TaskStatus
) -> float | None:
    """Act on a task's status: note progress, fail, or store the images (completed)."""
    if status.state == "running":
        return await _running(ctx, job, view, status.progress)
    view = view or await views.get_view(ctx.sm, job.id)
    if status.state == "failed":
        error = status.error
        log.warning("job %s: task failed: %s", job.id, error and (error.detail or error.message))
        kind = error.kind.value if error else "task_failed"
        metrics.provider_error(job.ask.provider, kind)
        failure = Failure(FailureReason.PROVIDER, kind, error.message if error else None)
        return await outcomes.fail(ctx, job, view, failure)
    _learn(ctx, job, status.took)
    if not status.images:
        failure = Failure(FailureReason.NO_IMAGE, "task_failed")
        return await outcomes.fail(ctx, job, view, failure)
    blobs = [await ctx.store.put(image.data) for image in status.images]
    if await policy.withhold_flagged(ctx, job, view, blobs):
        return None
    cost = estimate_cost(
        ctx.config.prices,
        ctx.model(job.ask.model) or job.ask.provider,
        status.size or f"{blobs[0].width}x{blobs[0].height}",
        job.ask.params.quality,
        len(blobs),
    )
    await jobs_db.save_results(
        ctx.sm,
        job.id,
        ctx.owner,
        blobs,
        note=status.note,
        usage=status.usage or None,
        cost_usd=cost,
    )
    await metrics.completed(ctx.sm, job.id, job.ask.provider, cost)
    return 0


async def post(ctx: JobContext, job: Job, view: GenerationView) -> float | None:
    """Completed: share the images that are not up yet (the publisher returns once they are
    visible in the thread), then post the result message; each exactly once. The thread is
    opened first where it is missing (a reused result, a restart before it was posted). A job
    whose cancellation was asked for (before the step, or during the upload: read again
    then) is cancelled instead: its images are stored, not posted."""
    if job.cancel_requested:
        return await outcomes.cancel(ctx, job, view)  # stored, not posted
    if view.status_ts is None:
        opened = await open_thread(ctx, job, view)
        if opened is None:
            return None
        view = opened
    view = await upload_once(ctx, job, view)
    if await jobs_db.cancel_asked(ctx.sm, job.id):
        return await outcomes.cancel(ctx, job, view)  # shared, but no result message
    posted = view
    result_ts = await post_once(
        ctx, job, view, Effect.RESULT, lambda: ctx.publisher.post_result(posted)
    )
    await call_reviewers(ctx, job, replace(view, result_ts=result_ts))
    await jobs_db.finish(ctx.sm, job.id, ctx.owner, S.POSTED, result_ts=result_ts)
    metrics.reached(S.POSTED)
    view = replace(view, state=S.POSTED, result_ts=result_ts, error=None)
    await best_effort(ctx.publisher.show_status(view, force=True))
    if view.review.has_reviewers:  # a version now waits for them (their Home lists change)
        await best_effort(ctx.publisher.review_items_changed(view))
    log.info("job %s: posted", job.id)
    return None


async def call_reviewers(ctx: JobContext, job: Job, view: GenerationView) -> None:
    """Mention the channel's reviewers in the thread once per session: the first version
    posted under a policy that names reviewers does it (Effect.MENTION, recorded before it
    is posted; a try whose answer was lost is looked for first). Raises LeaseLost,
    PublishError, ChannelUnreachable."""
    if not view.review.has_reviewers or view.thread_ts is None:
        return
    intent = await effects.get(ctx.sm, job.id, Effect.MENTION)
    if intent is not None and intent.done:
        return

    async def mention() -> str:
        return await ctx.publisher.mention_reviewers(view)

    if intent is None:
        claimed = await jobs_db.claim_session_effect(
            ctx.sm, job.id, ctx.owner, job.session_id, Effect.MENTION
        )
        if not claimed:
            return  # an earlier version of the session called them
        ts = await mention()
    else:
        ts = await post_once(ctx, job, view, Effect.MENTION, mention)
    await jobs_db.effect_done(ctx.sm, job.id, ctx.owner, Effect.MENTION, ts)


async def _request(ctx: JobContext, job: Job) -> GenerationRequest:
    inputs = await refinement_db.generation_inputs(ctx.sm, job.id)
    return await build_request(job, inputs, ctx.store, ctx.model(job.ask.model))
