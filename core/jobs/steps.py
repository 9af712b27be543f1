"""The steps of a job, by state: submit (open the thread, admission, submit), poll, post.

`run_step` loads the job's view once, runs the step of its state and turns what went
wrong into an outcome: a retry (provider unavailable or rate limited, the platform did not
accept a message, a bug of ours), a failure (the provider refused, the channel cannot be
reached) or nothing (the lease was lost: another worker owns the job).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from core import logs, metrics
from core.db import effects, views
from core.db import jobs as jobs_db
from core.db import sessions as sessions_db
from core.db.jobs import Job, LeaseLost
from core.jobs import cache, outcomes, policy
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
from core.providers.base import GenerationRequest, ProviderError, TaskStatus
from core.schedule import expected_finish, next_poll, observed_duration, progress_bucket

log = logging.getLogger(__name__)
S = GenerationState


async def run_step(ctx: JobContext, job: Job) -> float | None:
    """Run the step for the job's state. Returns seconds until the next step (0 = go on
    now; `outcomes.PARKED` = not before it is admitted) or None when the job left the engine
    (terminal or deleted). Raises LeaseLost."""
    logs.bind(session_id=job.session_id, generation_id=job.id)  # issue 13: on every log line
    try:
        if job.state == S.SUBMITTED and not job.cancel_requested:
            return await poll(ctx, job, None)  # reads the view only when it shows something
        view = await views.get_view(ctx.sm, job.id)
        job = replace(job, cancel_requested=job.cancel_requested or view.cancel_requested)
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
        metrics.provider_error(job.provider, err.kind.value)
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
    told and the session discarded)."""
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
        await jobs_db.set_thread(ctx.sm, job.id, ctx.owner, job.session_id, thread_ts)
        view = replace(view, thread_ts=thread_ts)
    if view.status_ts is None:
        shown = view

        async def show() -> str:
            return str(await ctx.publisher.show_status(shown, force=True))

        status_ts = await post_once(ctx, job, view, Effect.STATUS, show)
        await jobs_db.set_status_ts(ctx.sm, job.id, ctx.owner, status_ts)
        view = replace(view, status_ts=status_ts)
    return view


async def submit(ctx: JobContext, job: Job, view: GenerationView) -> float | None:
    """Queued: open the thread, wait for admission, submit the task and store its id."""
    opened = await open_thread(ctx, job, view)
    if opened is None:
        return None
    if await cache.reuse(ctx, job, await _request(ctx, job)):  # issue 11: no provider call
        return 0
    async with ctx.admission.slot(job) as wait:
        if wait is not None:
            return await outcomes.hold(ctx, job, opened, wait)
        request = await _request(ctx, job)
        submission = await ctx.admission.call(ctx.provider.submit(request))
        await jobs_db.mark_submitted(ctx.sm, job.id, ctx.owner, submission.task_id, request.model)
        ctx.tracks[job.id] = PollTrack(time.monotonic(), request)
    await metrics.submitted(ctx.sm, job.id)
    log.info("job %s: submitted as task %s", job.id, submission.task_id)
    job = replace(job, state=S.SUBMITTED, polls=0, progress=0, model=request.model)
    if submission.status is not None:
        view = replace(opened, state=S.SUBMITTED, progress=0, waiting_reason=None)
        return await handle_status(ctx, job, view, submission.status)
    ctx.tracks[job.id].keep = True
    return _next_poll(ctx, job, ctx.tracks[job.id])


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
    assert job.provider_task_id is not None and track.request is not None
    track.asked = track.elapsed()
    status = await ctx.admission.call(ctx.provider.poll(job.provider_task_id, track.request))
    return await handle_status(ctx, job, view, status)


def _next_poll(ctx: JobContext, job: Job, track: PollTrack) -> float:
    """Seconds to the next poll: near the expected finish (core.schedule.next_poll)."""
    elapsed = track.elapsed()
    durations = ctx.durations.of(job.provider, job.model)
    expected = expected_finish(durations, elapsed, track.reported)
    return next_poll(
        ctx.schedule,
        elapsed=elapsed,
        polls=track.polls,
        expected=expected,
        probe=track.reported < 5,  # probes teach durations; progress needs none
    )


async def _running(ctx: JobContext, job: Job, view: GenerationView | None, progress: int) -> float:
    """The task still runs: remember the poll; write and show the progress only when it
    reached a new step (core.schedule.progress_bucket). Seconds to the next poll."""
    track = ctx.tracks.setdefault(job.id, PollTrack(time.monotonic()))
    track.polls += 1
    track.reported = progress
    track.last_running = track.elapsed()
    if progress_bucket(progress) != progress_bucket(track.written):
        await jobs_db.write(ctx.sm, job.id, ctx.owner, polls=track.polls, progress=progress)
        track.written = progress
        view = view or await views.get_view(ctx.sm, job.id)
        await best_effort(ctx.publisher.show_status(replace(view, progress=progress)))
    track.keep = track.fresh = True
    return _next_poll(ctx, job, track)


def _learn(ctx: JobContext, job: Job) -> None:
    """Remember how long the completed task took, when the polls say it precisely."""
    track = ctx.tracks.get(job.id)
    if track is None:
        return
    known = bool(ctx.durations.of(job.provider, job.model))
    # Done when asked: the answer's own time (rendering, downloads) is not the task's.
    seconds = observed_duration(track.last_running, track.asked, ctx.schedule.near, known=known)
    if seconds is not None:
        ctx.durations.add(job.provider, job.model, seconds)


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
        metrics.provider_error(job.provider, kind)
        failure = Failure(FailureReason.PROVIDER, kind, error.message if error else None)
        return await outcomes.fail(ctx, job, view, failure)
    _learn(ctx, job)
    if not status.images:
        failure = Failure(FailureReason.NO_IMAGE, "task_failed")
        return await outcomes.fail(ctx, job, view, failure)
    blobs = [await ctx.store.put(image.data) for image in status.images]
    if await policy.withhold_flagged(ctx, job, view, blobs):
        return None
    cost = estimate_cost(
        ctx.config.prices,
        ctx.model(job.model) or job.provider,
        status.size or f"{blobs[0].width}x{blobs[0].height}",
        job.params.quality,
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
    await metrics.completed(ctx.sm, job.id, job.provider, cost)
    return 0


async def post(ctx: JobContext, job: Job, view: GenerationView) -> float | None:
    """Completed: share the images that are not up yet (the publisher returns once they are
    visible in the thread), then post the result message; each exactly once. A job whose
    cancellation was asked for (before the step, or during the upload: read again then) is
    cancelled instead: its images are stored, not posted."""
    if job.cancel_requested:
        return await outcomes.cancel(ctx, job, view)  # stored, not posted
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
    inputs = await jobs_db.inputs(ctx.sm, job.id)
    return await build_request(job, inputs, ctx.store, ctx.model(job.model))
