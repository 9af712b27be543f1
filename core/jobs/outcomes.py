"""How a job ends or waits: retries, failures, cancellation, waiting reasons.

Each outcome is first written (guarded by the lease), then shown through the Publisher
on a best-effort basis: the state is what counts, the display may lag.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from core import metrics
from core.db import jobs as jobs_db
from core.db import sessions as sessions_db
from core.db.jobs import Job
from core.jobs.admission import Wait
from core.jobs.context import JobContext
from core.models import GenerationState
from core.ports import Failure, FailureReason, GenerationView
from core.schedule import retry_delay

log = logging.getLogger(__name__)
S = GenerationState

# The delay `hold` returns: the job is parked until `Admission.admit` starts it.
PARKED = math.inf


async def best_effort(call: Awaitable[Any]) -> None:
    """Await a publisher call whose failure must not undo a state already written."""
    try:
        await call
    except Exception as err:  # the state is already written; the display can lag
        log.warning("publisher call failed after the state was written: %r", err)


async def retry(
    ctx: JobContext,
    job: Job,
    view: GenerationView,
    kind: str,
    detail: str | None,
    retry_after: float | None,
) -> float | None:
    """Count a failed try of `kind` (the provider's `detail` message, its Retry-After in
    seconds); the delay in seconds before the next try, or None when the job failed after
    `max_attempts` tries (FailureReason.GAVE_UP). Raises LeaseLost."""
    attempts = job.attempts + 1
    if attempts >= ctx.config.max_attempts:
        failure = Failure(FailureReason.GAVE_UP, kind, detail, attempts=attempts)
        return await fail(ctx, job, view, failure)
    delay = retry_delay(attempts, retry_after)
    await jobs_db.record_retry(ctx.sm, job.id, ctx.owner, attempts, kind, detail)
    log.info("job %s: attempt %s failed (%s); retrying in %.1fs", job.id, attempts, kind, delay)
    return delay


async def fail(ctx: JobContext, job: Job, view: GenerationView, failure: Failure) -> None:
    """Mark the job failed and say so: in the thread, or (when it never got a thread)
    privately to the requester, discarding the empty session and giving up its task at
    the provider where it can. Raises LeaseLost."""
    await jobs_db.finish(ctx.sm, job.id, ctx.owner, S.FAILED, failure=failure)
    metrics.reached(S.FAILED)
    view = replace(view, state=S.FAILED, failure=failure, error=failure.detail)
    if view.thread_ts:
        await best_effort(ctx.publisher.show_status(view, force=True))
        await best_effort(ctx.publisher.report_failure(view, failure))
    else:  # it never got a thread: tell the requester privately, keep no empty session
        if job.provider_task_id and job.state == S.SUBMITTED:  # submitted before its thread
            await best_effort(ctx.provider.cancel(job.provider_task_id))
        await best_effort(ctx.publisher.tell_requester(view, failure))
        await sessions_db.discard_session(ctx.sm, job.session_id)
    return None


async def cancel(ctx: JobContext, job: Job, view: GenerationView) -> None:
    """Cancel the task at the provider (where it can) and mark the job cancelled; its
    status message, when it has one, says so (none is posted: a cancelled job posts
    nothing new, e.g. after forget-me)."""
    if job.provider_task_id:
        await best_effort(ctx.provider.cancel(job.provider_task_id))
    await jobs_db.finish(ctx.sm, job.id, ctx.owner, S.CANCELLED)
    metrics.reached(S.CANCELLED)
    if view.thread_ts and view.status_ts:
        view = replace(view, state=S.CANCELLED)
        await best_effort(ctx.publisher.show_status(view, force=True))
    return None


async def hold(ctx: JobContext, job: Job, view: GenerationView, wait: Wait) -> float:
    """Keep a queued job waiting and show why in its status message (once per reason and
    number); PARKED: the job is not looked at again until it is admitted."""
    if (view.waiting_reason, view.waiting_number) != (wait.reason, wait.number):
        await jobs_db.write(ctx.sm, job.id, ctx.owner, waiting=wait.reason.value)
        view = replace(view, waiting_reason=wait.reason, waiting_number=wait.number)
        await best_effort(ctx.publisher.show_status(view, force=True))
    return PARKED
