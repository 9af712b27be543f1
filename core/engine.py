"""The job engine: runs generation jobs durably inside the server process.

A generation row is its own job. States and transitions:

    queued ──submit──▶ submitted ──poll…──▶ completed ──upload+post──▶ posted
       │                   │
       └───────────────────┴──────────────▶ failed | cancelled

A worker loop claims due jobs (`next_attempt_at <= now`, no live lease) by
writing a lease (owner, expiry from the database clock) with a conditional
UPDATE, runs steps while it holds the lease, renews the lease while a step
runs, and writes every transition with `WHERE lease_owner = me`, so a process
that lost its lease cannot overwrite the new owner's work. What has been done
is in the row: the thread ts, the status message ts, the provider task id
(written right after submit returns), the stored images, the uploaded file
ids, the result message ts. A restart therefore resumes: a submitted task is
polled, never submitted again; a finished result is posted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import service
from core.breaker import CircuitBreaker
from core.images import prepare_mask
from core.models import (
    GenerationRow,
    GenerationState,
    ImageRow,
    InputRow,
    SessionRow,
    db_now,
)
from core.ports import ChannelUnreachable, Publisher, PublishError
from core.pricing import PriceTable, estimate_cost
from core.providers.base import (
    ErrorKind,
    GenerationRequest,
    ImageInput,
    ImageProvider,
    ProviderError,
    TaskStatus,
)
from core.schedule import PollSchedule, retry_delay
from core.store import ImageStore

log = logging.getLogger(__name__)

S = GenerationState
T = TypeVar("T")


WAIT_SLOT = "waiting for a free slot at the provider"
WAIT_BREAKER = "the image provider is not answering right now"


class LeaseLost(Exception):
    """Another worker owns the job now; this worker must stop touching it."""


@dataclass(frozen=True)
class EngineConfig:
    """Tunables of the job engine (seconds unless named otherwise).

    lease_seconds: how long a claim lasts without renewal; a dead worker's jobs
        are picked up after this.
    max_attempts: failed tries (provider or Slack errors) before a job fails.
    deadline_seconds: longest time from submit to completion before a job fails.
    concurrency: jobs submitted to the provider at once; more stay queued, in order.
    idle_seconds: how often the loop looks for due jobs when nothing wakes it.
    breaker_failures, breaker_cooloff_seconds: consecutive retryable provider failures that
        open the circuit breaker, and how long new jobs then wait before a probe.
    prices: USD price table per image (core.pricing); None uses the published defaults.
    """

    lease_seconds: float = 60.0
    max_attempts: int = 5
    deadline_seconds: float = 600.0
    concurrency: int = 2
    idle_seconds: float = 0.5
    breaker_failures: int = 5
    breaker_cooloff_seconds: float = 60.0
    prices: PriceTable | None = None


def channel_unreachable_text(reason: str) -> str:
    """What the requester is told when the bot cannot post in the channel."""
    if reason == "not_in_channel":
        return (
            "I can't post in this channel because I'm not a member. "
            "Invite me with `/invite @imagine` (or mention me and choose *Add to channel*), "
            "then run `/imagine` again."
        )
    if reason in ("channel_not_found", "is_archived"):
        return (
            "I can't see this channel (it may be private, archived or a DM I'm not part of). "
            "Add me to a channel with `/invite @imagine` and run `/imagine` there."
        )
    return f"I couldn't post in this channel ({reason}). Ask an admin to check my permissions."


class JobEngine:
    """Claims and runs generation jobs; one per process.

    `provider` makes images, `publisher` shows them, `store` keeps them. Call
    `start()` once, `wake()` after queuing a job (it is also found by polling),
    and `stop()` at shutdown (leases are released so a restart resumes at once).
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: ImageProvider,
        publisher: Publisher,
        store: ImageStore,
        config: EngineConfig | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        self.sm = sessionmaker
        self.provider = provider
        self.publisher = publisher
        self.store = store
        self.config = config or EngineConfig()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.schedule: PollSchedule = getattr(provider, "poll_schedule", PollSchedule())
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._submitting = 0  # provider.submit calls in flight in this process
        self.breaker = CircuitBreaker(
            self.config.breaker_failures, self.config.breaker_cooloff_seconds
        )

    # ── lifecycle ────────────────────────────────────────────────────────────

    def start(self) -> None:
        """Start the worker loop on the running event loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="job-engine")

    def wake(self) -> None:
        """Look for due jobs now instead of at the next idle tick."""
        self._wake.set()

    async def stop(self, *, release: bool = True) -> None:
        """Stop the loop and the running steps; release their leases unless `release` is False
        (False simulates a crash: the leases then expire)."""
        tasks = [t for t in (self._loop_task, *self._jobs.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._jobs.clear()
        if release:
            async with self.sm.begin() as db:
                await db.execute(
                    update(GenerationRow)
                    .where(GenerationRow.lease_owner == self.owner)
                    .values(lease_owner=None, lease_expires_at=None)
                )

    async def _loop(self) -> None:
        while True:
            try:
                while len(self._jobs) < self.config.concurrency * 2:
                    job_id = await self._claim()
                    if job_id is None:
                        break
                    self._jobs[job_id] = asyncio.create_task(self._run(job_id))
                    self._jobs[job_id].add_done_callback(lambda _t, j=job_id: self._done(j))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job engine: claim failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.idle_seconds)
            self._wake.clear()

    def _done(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        self._wake.set()  # a slot is free

    async def _claim(self) -> int | None:
        """Take the lease on the most overdue claimable job; None when there is none."""
        async with self.sm.begin() as db:
            claimable = or_(
                GenerationRow.lease_owner.is_(None), GenerationRow.lease_expires_at < db_now()
            )
            job_id = await db.scalar(
                select(GenerationRow.id)
                .where(
                    GenerationRow.state.in_(S.ACTIVE),
                    GenerationRow.next_attempt_at <= db_now(),
                    claimable,
                    GenerationRow.id.not_in(list(self._jobs)),
                )
                .order_by(GenerationRow.next_attempt_at, GenerationRow.id)
                .limit(1)
            )
            if job_id is None:
                return None
            result = await db.execute(
                update(GenerationRow)
                .where(GenerationRow.id == job_id, claimable)
                .values(
                    lease_owner=self.owner,
                    lease_expires_at=db_now() + self.config.lease_seconds,
                )
            )
            return job_id if result.rowcount == 1 else None

    # ── guarded writes ───────────────────────────────────────────────────────

    async def _write(self, job_id: int, **values: Any) -> None:
        """Update the job row if this worker still holds its lease; else raise LeaseLost."""
        async with self.sm.begin() as db:
            await self._write_in(db, job_id, **values)

    async def _write_in(self, db: AsyncSession, job_id: int, **values: Any) -> None:
        values = values or {"lease_owner": self.owner}  # nothing to change: just check the lease
        result = await db.execute(
            update(GenerationRow)
            .where(GenerationRow.id == job_id, GenerationRow.lease_owner == self.owner)
            .values(**values)
        )
        if result.rowcount != 1:
            raise LeaseLost(job_id)

    async def _release(self, job_id: int, delay: float, **values: Any) -> None:
        await self._write(
            job_id,
            lease_owner=None,
            lease_expires_at=None,
            next_attempt_at=db_now() + delay,
            **values,
        )

    async def _heartbeat(self, job_id: int) -> None:
        while True:
            await asyncio.sleep(self.config.lease_seconds / 3)
            try:
                await self._write(job_id, lease_expires_at=db_now() + self.config.lease_seconds)
            except LeaseLost:
                return

    # ── running a job ────────────────────────────────────────────────────────

    async def _run(self, job_id: int) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job_id))
        try:
            while True:
                async with self.sm() as db:
                    row = await db.get(GenerationRow, job_id)
                if row is None or row.lease_owner != self.owner:
                    return
                if row.state not in S.ACTIVE:
                    await self._release(job_id, 0)
                    return
                delay = await self._step(row)
                if delay is None:
                    return
                if delay > 0:
                    await self._release(job_id, delay)
                    return
        except LeaseLost:
            log.warning("job %s: lease lost to another worker; stopping here", job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error", job_id)
        finally:
            heartbeat.cancel()

    async def _step(self, row: GenerationRow) -> float | None:
        """Run the step for the row's state. Returns seconds until the next step
        (0 = go on now) or None when the job left the engine (terminal or deleted)."""
        try:
            if row.cancel_requested and row.state != S.COMPLETED:
                return await self._cancel(row)
            if row.state == S.QUEUED:
                return await self._submit(row)
            if row.state == S.SUBMITTED:
                return await self._poll(row)
            return await self._post(row)
        except (LeaseLost, asyncio.CancelledError):
            raise
        except ChannelUnreachable as err:
            text = channel_unreachable_text(err.reason)
            view = await service.get_view(self.sm, row.id)
            await self._best_effort(self.publisher.tell_requester(view, text))
            return await self._fail(row, text, err.reason)
        except ProviderError as err:
            log.warning("job %s: provider error %s: %s", row.id, err.kind, err.detail or err)
            if err.kind.retryable:
                return await self._retry(row, err.message, err.retry_after, err.kind.value)
            return await self._fail(row, err.message, err.kind.value)
        except PublishError as err:
            log.warning("job %s: publish failed: %s", row.id, err)
            text = "Slack did not accept a message."
            return await self._retry(row, text, err.retry_after, "publish")
        except Exception:
            log.exception("job %s: step %s crashed", row.id, row.state)
            return await self._retry(row, "Something went wrong on our side.", None, "internal")

    async def _retry(
        self, row: GenerationRow, message: str, retry_after: float | None, kind: str
    ) -> float | None:
        attempts = row.attempts + 1
        if attempts >= self.config.max_attempts:
            return await self._fail(
                row,
                f"{message} I gave up after {attempts} tries; "
                "click *Regenerate* or run `/imagine` again in a few minutes.",
                kind,
            )
        delay = retry_delay(attempts, retry_after)
        await self._write(row.id, attempts=attempts, error=message, error_kind=kind)
        log.info("job %s: attempt %s failed (%s); retrying in %.1fs", row.id, attempts, kind, delay)
        return delay

    async def _fail(self, row: GenerationRow, message: str, kind: str) -> None:
        await self._write(
            row.id,
            state=S.FAILED,
            error=message,
            error_kind=kind,
            finished_at=db_now(),
            lease_owner=None,
            lease_expires_at=None,
        )
        view = await service.get_view(self.sm, row.id)
        if view.thread_ts:
            await self._best_effort(self.publisher.show_status(view, force=True))
            await self._best_effort(self.publisher.report_failure(view, message))
        else:  # it never got a thread: tell the requester privately, keep no empty session
            text = f"I couldn't start your image. {message}"
            await self._best_effort(self.publisher.tell_requester(view, text))
            await service.discard_session(self.sm, row.session_id)
        return None

    async def _cancel(self, row: GenerationRow) -> None:
        if row.provider_task_id:
            await self._best_effort(self.provider.cancel(row.provider_task_id))
        await self._write(
            row.id,
            state=S.CANCELLED,
            finished_at=db_now(),
            lease_owner=None,
            lease_expires_at=None,
        )
        view = await service.get_view(self.sm, row.id)
        if view.thread_ts:
            await self._best_effort(self.publisher.show_status(view, force=True))
        return None

    async def _best_effort(self, call: Awaitable[Any]) -> None:
        try:
            await call
        except Exception as err:  # the state is already written; the display can lag
            log.warning("publisher call failed after the state was written: %r", err)

    # ── the steps ────────────────────────────────────────────────────────────

    async def _submit(self, row: GenerationRow) -> float | None:
        view = await service.get_view(self.sm, row.id)
        if view.thread_ts is None:
            try:
                thread_ts = await self.publisher.open_thread(view)
            except ChannelUnreachable as err:
                await self._best_effort(
                    self.publisher.tell_requester(view, channel_unreachable_text(err.reason))
                )
                await service.discard_session(self.sm, row.session_id)
                log.info("job %s: channel unreachable (%s); session discarded", row.id, err.reason)
                return None
            async with self.sm.begin() as db:
                await self._write_in(db, row.id)
                await db.execute(
                    update(SessionRow)
                    .where(SessionRow.id == row.session_id)
                    .values(thread_ts=thread_ts)
                )
            view = await service.get_view(self.sm, row.id)
        if view.status_ts is None:
            status_ts = await self.publisher.show_status(view, force=True)
            await self._write(row.id, status_ts=status_ts)

        ahead = await self._ahead_in_session(row)
        if ahead is not None:
            await self._wait(row, f"queued behind v{ahead} in this thread")
            return 0.5
        if await self._at_capacity(row):
            await self._wait(row, WAIT_SLOT)
            return 1.0
        if not self.breaker.allow():
            await self._wait(row, WAIT_BREAKER)
            return max(1.0, self.breaker.retry_in())

        request = await self._request(row)
        self._submitting += 1
        try:
            submission = await self._provider_call(self.provider.submit(request))
        finally:
            self._submitting -= 1
        await self._write(
            row.id,
            provider_task_id=submission.task_id,
            state=S.SUBMITTED,
            submitted_at=db_now(),
            model=request.model,
            polls=0,
            progress=0,
            waiting=None,
        )
        log.info("job %s: submitted as task %s", row.id, submission.task_id)
        if submission.status is not None:
            return await self._handle_status(row, submission.status)
        return self.schedule.first_delay()

    async def _poll(self, row: GenerationRow) -> float | None:
        async with self.sm() as db:
            elapsed = await db.scalar(
                select(db_now() - GenerationRow.submitted_at).where(GenerationRow.id == row.id)
            )
        if elapsed is not None and elapsed > self.config.deadline_seconds:
            minutes = max(1, round(self.config.deadline_seconds / 60))
            return await self._fail(
                row,
                f"The provider did not finish within {minutes} minute"
                f"{'s' if minutes > 1 else ''}. Click *Regenerate* to try again.",
                "deadline",
            )
        assert row.provider_task_id is not None
        request = await self._request(row)
        status = await self._provider_call(self.provider.poll(row.provider_task_id, request))
        return await self._handle_status(row, status)

    async def _provider_call(self, call: Awaitable[T]) -> T:
        """Await a provider call and tell the circuit breaker how it went."""
        try:
            result = await call
        except BaseException as err:
            self.breaker.record_result(err)
            raise
        self.breaker.record_result(None)
        return result

    async def _ahead_in_session(self, row: GenerationRow) -> int | None:
        """The version of an older generation of the same session that is still running
        (versions in one thread run in the order they were asked for), or None."""
        async with self.sm() as db:
            return await db.scalar(
                select(func.min(GenerationRow.version)).where(
                    GenerationRow.session_id == row.session_id,
                    GenerationRow.state.in_(S.ACTIVE),
                    GenerationRow.id < row.id,
                )
            )

    async def _at_capacity(self, row: GenerationRow) -> bool:
        """True when the provider already runs `concurrency` tasks, or an older job should
        start first: jobs start in the order they were queued. Older jobs that are not
        ready (in backoff) or wait for their own thread do not hold the line."""
        async with self.sm() as db:
            running = await db.scalar(
                select(func.count()).where(
                    GenerationRow.provider == row.provider,
                    GenerationRow.state == S.SUBMITTED,
                )
            )
            older_first = await db.scalar(
                select(func.count()).where(
                    GenerationRow.provider == row.provider,
                    GenerationRow.state == S.QUEUED,
                    GenerationRow.id < row.id,
                    GenerationRow.cancel_requested.is_(False),
                    or_(
                        GenerationRow.waiting.in_((WAIT_SLOT, WAIT_BREAKER)),
                        and_(
                            GenerationRow.waiting.is_(None),
                            GenerationRow.next_attempt_at <= db_now(),
                        ),
                    ),
                )
            )
        return (running or 0) + self._submitting >= self.config.concurrency or bool(older_first)

    async def _wait(self, row: GenerationRow, reason: str) -> None:
        """Keep a queued job waiting and say why in its status message (once per reason)."""
        if row.waiting != reason:
            await self._write(row.id, waiting=reason)
            view = await service.get_view(self.sm, row.id)
            await self._best_effort(self.publisher.show_status(view, force=True))

    async def _handle_status(self, row: GenerationRow, status: TaskStatus) -> float | None:
        if status.state == "running":
            polls = row.polls + 1
            await self._write(row.id, polls=polls, progress=status.progress)
            if status.progress != row.progress:
                view = await service.get_view(self.sm, row.id)
                await self._best_effort(self.publisher.show_status(view))
            return self.schedule.next_delay(polls)
        if status.state == "failed":
            error = status.error or ProviderError(
                ErrorKind.TASK_FAILED, "The provider could not make this image."
            )
            log.warning("job %s: task failed: %s", row.id, error.detail or error.message)
            return await self._fail(row, error.message, error.kind.value)
        if not status.images:
            return await self._fail(row, "The provider returned no image.", "task_failed")
        blobs = [await self.store.put(image.data) for image in status.images]
        params = service.params_of(row)
        cost = estimate_cost(
            self.config.prices,
            self._model(row) or row.provider,
            status.size or f"{blobs[0].width}x{blobs[0].height}",
            params.quality,
            len(blobs),
        )
        async with self.sm.begin() as db:
            await self._write_in(
                db,
                row.id,
                state=S.COMPLETED,
                progress=100,
                completed_at=db_now(),
                latency_seconds=db_now() - GenerationRow.created_at,
                note=status.note,
                usage=status.usage or None,
                cost_usd=cost,
            )
            for index, blob in enumerate(blobs):
                db.add(
                    ImageRow(
                        generation_id=row.id,
                        index=index,
                        sha256=blob.sha256,
                        path=str(blob.path),
                        width=blob.width,
                        height=blob.height,
                        mime=blob.mime,
                        bytes=blob.bytes,
                    )
                )
        return 0

    async def _post(self, row: GenerationRow) -> float | None:
        view = await service.get_view(self.sm, row.id)
        if any(image.file_id is None for image in view.images):
            file_ids = await self.publisher.upload_images(view)
            async with self.sm.begin() as db:
                await self._write_in(db, row.id)
                for index, file_id in file_ids.items():
                    await db.execute(
                        update(ImageRow)
                        .where(ImageRow.generation_id == row.id, ImageRow.index == index)
                        .values(slack_file_id=file_id)
                    )
            view = await service.get_view(self.sm, row.id)
        if row.cancel_requested:
            return await self._cancel(row)  # stored, not posted
        result_ts = await self.publisher.post_result(view)
        await self._write(
            row.id,
            state=S.POSTED,
            result_ts=result_ts,
            finished_at=db_now(),
            error=None,
            lease_owner=None,
            lease_expires_at=None,
        )
        await self._best_effort(
            self.publisher.show_status(await service.get_view(self.sm, row.id), force=True)
        )
        log.info("job %s: posted", row.id)
        return None

    async def _request(self, row: GenerationRow) -> GenerationRequest:
        """The provider request of a job: its prompt (with the refinement chain), parameters,
        and the input images (base first, then references; the mask sized to the base)."""
        params = service.params_of(row)
        async with self.sm() as db:
            inputs = (
                await db.scalars(
                    select(InputRow)
                    .where(InputRow.generation_id == row.id)
                    .order_by(InputRow.position)
                )
            ).all()
        references = tuple(
            ImageInput(Path(i.path), i.mime) for i in inputs if i.role in ("base", "reference")
        )
        mask = None
        for item in inputs:
            if item.role != "mask":
                continue
            base = next((i for i in inputs if i.role == "base"), None)
            size = (base.width, base.height) if base else (row.width, row.height)
            path = Path(item.path)
            if (item.width, item.height) != size:  # the base changed since the mask was posted
                data = await self.store.read(path)
                prepared = await asyncio.to_thread(prepare_mask, data, item.label, size)
                path = (await self.store.put(prepared.data)).path
            mask = ImageInput(path, "image/png")
        return GenerationRequest(
            prompt=row.provider_prompt or row.prompt,
            width=row.width,
            height=row.height,
            aspect_ratio=params.aspect_ratio,
            n=params.n,
            seed=row.seed,
            negative_prompt=params.negative_prompt,
            quality=params.quality,
            model=self._model(row),
            references=references,
            mask=mask,
        )

    def _model(self, row: GenerationRow) -> str | None:
        """The model the job uses: its own (--model, IMAGE_MODEL) or the provider's default."""
        return row.model or getattr(self.provider, "model", None)
