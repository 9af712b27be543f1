"""The worker loop: claim due jobs with a lease, run their steps, renew and release leases.

On SQLite (one process) the loop also looks at the queue every `config.idle_seconds`.
On PostgreSQL it LISTENs for the NOTIFY that queuing a job sends from any process
(`core.db.notify`), and otherwise sleeps until the next job falls due or a lease
expires (`jobs_db.next_due_in`), at most `config.listen_idle_seconds`.

Claimed jobs stay here while their task runs, each on its own timer; a poll that says
"still running" writes nothing; one UPDATE renews all leases every `lease_seconds / 3`.
Waiting jobs are parked and started in queue order by `Admission.admit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from dataclasses import replace

from core.breaker import CircuitBreaker
from core.db import jobs as jobs_db
from core.db.jobs import LeaseLost, Maker
from core.db.notify import QueueListener, is_postgresql
from core.jobs.admission import Admission
from core.jobs.context import EngineConfig, JobContext
from core.jobs.gate import IdleGate
from core.jobs.outcomes import PARKED
from core.jobs.steps import run_step
from core.models import GenerationState
from core.ports import Publisher
from core.providers.base import ImageProvider
from core.store import ImageStore

log = logging.getLogger(__name__)


class JobEngine:
    """Claims and runs generation jobs; one per process.

    `provider` makes images, `publisher` shows them, `store` keeps them; `owner` names this
    worker in the leases it writes (default: host, pid and a random suffix). Call `start()`
    once, `wake()` after queuing a job in this process, and `stop()` at shutdown (leases are
    released so a restart resumes at once). How it looks at the queue: the module doc."""

    def __init__(
        self,
        sessionmaker: Maker,
        provider: ImageProvider,
        publisher: Publisher,
        store: ImageStore,
        config: EngineConfig | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        config = config or EngineConfig()
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.ctx = JobContext(
            sm=sessionmaker,
            provider=provider,
            publisher=publisher,
            store=store,
            config=config,
            owner=owner,
            admission=Admission(
                sessionmaker,
                config.concurrency,
                config.breaker_failures,
                config.breaker_cooloff_seconds,
                owner,
            ),
            schedule=provider.poll_schedule,
        )
        self._wake = asyncio.Event()
        self._listener: QueueListener | None = None
        bind = sessionmaker.kw.get("bind")
        if is_postgresql(bind):
            url = bind.url.render_as_string(hide_password=False)  # type: ignore[union-attr]
            self._listener = QueueListener(url, self.wake)
        self._loop_task: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._nudges: dict[int, asyncio.Event] = {}  # wakes a job's timer (cancel, lost)
        self._lost: set[int] = set()  # owned jobs whose lease another worker took
        self._admit_due, self._admitted_at = True, 0.0  # admission pass due; last one (s)
        self._sweep_due = False  # look for cancellations of owned jobs at the next turn
        self._stopping = asyncio.Event()  # set by `stop`: no new step, no new claim
        self.claims = 0  # jobs claimed so far (due or admitted), for tests and metrics
        self.gate = IdleGate()  # issue 13: turns and steps wait while requests are answered

    @property
    def owner(self) -> str:
        """The name this worker writes into its leases."""
        return self.ctx.owner

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker guarding this engine's provider."""
        return self.ctx.admission.breaker

    def start(self) -> None:
        """Start the worker loop on the running event loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="job-engine")
            self._renewer = asyncio.create_task(self._renew(), name="job-leases")
            if self._listener is not None:
                self._listener.start()

    def wake(self) -> None:
        """Look for due jobs (and cancellations of owned ones) now, not at the next tick."""
        self._sweep_due = True
        self._wake.set()

    async def stop(self, *, release: bool = True, grace: float = 10.0) -> None:
        """Stop the loop and the running jobs, then release their leases; a second call does
        nothing.

        Jobs waiting on a timer stop at once; the claim loop, the lease renewal and a job in
        the middle of a step finish that step first (`grace` seconds at most, then they are
        cancelled): a task cancelled inside a transaction can leave SQLite's write lock held.
        `release=False` simulates a crash: all is cancelled at once, the leases expire."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        if self._listener is not None:
            await self._listener.stop()
        if release:
            for nudge in (self._wake, *self._nudges.values()):
                nudge.set()
            await _wind_down([self._loop_task, self._renewer], self._jobs, grace)
        tasks = [t for t in (self._loop_task, self._renewer, *self._jobs.values()) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = self._renewer = None
        self._jobs.clear()
        if release:
            await jobs_db.release_all(self.ctx.sm, self.owner)

    async def claim(self) -> int | None:
        """Lease the most overdue claimable job (not run); its id, or None when none is."""
        return await jobs_db.claim(
            self.ctx.sm, self.owner, self.ctx.config.lease_seconds, self._jobs
        )

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.gate.wait()
                await self._turn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job engine: claim failed")
            idle = await self._idle_seconds()
            await _sleep(self._wake, idle)

    async def _turn(self) -> None:
        """One look at the queue: cancellations of owned jobs, due jobs, then admissions."""
        config = self.ctx.config
        if self._sweep_due and self._jobs:
            self._sweep_due = False
            for job_id in await jobs_db.cancel_requested(self.ctx.sm, self.owner):
                self._nudge(job_id)
        room = config.concurrency * 2 + 16 - len(self._jobs)
        while room > 0:
            ids = await jobs_db.claim_many(
                self.ctx.sm, self.owner, config.lease_seconds, self._jobs, min(room, 50)
            )
            self._own(ids)
            room -= len(ids)
            if len(ids) < 50:
                break
        if self._admit_due or time.monotonic() - self._admitted_at > config.listen_idle_seconds:
            self._admit_due = False
            self._admitted_at = time.monotonic()
            self._own(await self.ctx.admission.admit(self.owner, config.lease_seconds))

    def _own(self, ids: list[int]) -> None:
        for job_id in ids:
            self.claims += 1
            self._nudges[job_id] = asyncio.Event()
            self._jobs[job_id] = asyncio.create_task(self._run(job_id, keep=True))
            self._jobs[job_id].add_done_callback(lambda _t, j=job_id: self._done(j))

    async def _idle_seconds(self) -> float:
        """How long to sleep when nothing wakes the loop (seconds)."""
        config = self.ctx.config
        idle = config.idle_seconds
        if self._listener is not None and len(self._jobs) < config.concurrency * 2:
            try:
                due = await jobs_db.next_due_in(self.ctx.sm, self._jobs)
            except Exception:
                log.exception("job engine: cannot read the next due time")
                due = 0.0
            if due is None:
                idle = config.listen_idle_seconds
            else:
                idle = min(max(due, config.idle_seconds / 10), config.listen_idle_seconds)
        breaker = self.ctx.admission.breaker.retry_in()
        return min(idle, breaker) if breaker > 0 else idle

    def _done(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        self._nudges.pop(job_id, None)
        self._lost.discard(job_id)
        self._admit_soon()  # a slot may be free

    def _admit_soon(self) -> None:
        self._admit_due = True
        self._wake.set()

    def _nudge(self, job_id: int) -> None:
        if (nudge := self._nudges.get(job_id)) is not None:
            nudge.set()

    async def _renew(self) -> None:
        """Renew the leases of all owned jobs in one statement every `lease_seconds / 3`;
        jobs whose lease another worker took stop at their next step."""
        lease = self.ctx.config.lease_seconds
        while not await _sleep(self._stopping, lease / 3, clear=False):
            if not self._jobs:
                continue
            owned = set(self._jobs)
            try:
                held = await jobs_db.renew_leases(self.ctx.sm, self.owner, lease, owned)
            except Exception:
                log.exception("job engine: cannot renew leases")
                continue
            for job_id in owned - held:
                if job_id in self._jobs:
                    self._lost.add(job_id)
                    self._nudge(job_id)

    async def run(self, job_id: int) -> None:
        """Run a claimed job's steps while this worker holds its lease, renewing the lease;
        release it with the next due time when a step asks to wait."""
        heartbeat = asyncio.create_task(_heartbeat(self.ctx, job_id))
        try:
            await self._run(job_id, keep=False)
        finally:
            heartbeat.cancel()

    async def _run(self, job_id: int, *, keep: bool) -> None:
        """Run the job's steps. With `keep`, a running task's next poll waits on a timer here
        (the lease kept, renewed by `_renew`); other waits release the job to the queue."""
        ctx = self.ctx
        try:
            job = await jobs_db.load(ctx.sm, job_id)
            while not self._stopping.is_set():
                if job is None or job.lease_owner != self.owner or job_id in self._lost:
                    return
                if job.state not in GenerationState.ACTIVE:
                    await jobs_db.release(ctx.sm, job_id, self.owner, 0)
                    return
                track = ctx.tracks.get(job_id)
                if track is not None:
                    track.keep = track.fresh = False
                await self.gate.wait()
                delay = await run_step(ctx, job)
                if delay is None:
                    return
                track = ctx.tracks.get(job_id)
                timer = keep and track is not None and track.keep
                if not (track is not None and track.fresh):
                    self._admit_soon()  # the step may have freed a slot or parked the job
                if delay == PARKED:
                    await jobs_db.release(ctx.sm, job_id, self.owner, 0)
                    return
                if delay > 0 and not timer:  # retries and waits go back to the queue
                    await jobs_db.release(ctx.sm, job_id, self.owner, delay)
                    return
                if delay > 0 and track is not None:
                    nudged = await _sleep(self._nudges.get(job_id), delay)
                    if track.fresh and not nudged:
                        job = replace(job, polls=track.polls, progress=track.written)
                        continue
                job = await jobs_db.load(ctx.sm, job_id)
        except LeaseLost:
            log.warning("job %s: lease lost to another worker; stopping here", job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error", job_id)
        finally:
            ctx.tracks.pop(job_id, None)
            ctx.admission.reserved.discard(job_id)


async def _wind_down(
    loops: list[asyncio.Task[None] | None], jobs: dict[int, asyncio.Task[None]], grace: float
) -> None:
    """Wait until the `loops` have ended, then the `jobs` (read after, so the ones the loops
    started meanwhile are waited for too), `grace` seconds at most in all."""
    deadline = time.monotonic() + grace

    async def settle(tasks: list[asyncio.Task[None] | None]) -> None:
        pending = [t for t in tasks if t is not None and not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=max(0.0, deadline - time.monotonic()))

    await settle(loops)
    await settle(list(jobs.values()))


async def _heartbeat(ctx: JobContext, job_id: int) -> None:
    """Renew one job's lease every `lease_seconds / 3` until it is lost (`JobEngine.run`)."""
    lease = ctx.config.lease_seconds
    while True:
        await asyncio.sleep(lease / 3)
        try:
            await jobs_db.renew_lease(ctx.sm, job_id, ctx.owner, lease)
        except LeaseLost:
            return


async def _sleep(nudge: asyncio.Event | None, delay: float, *, clear: bool = True) -> bool:
    """Wait `delay` seconds or until `nudge` is set (then cleared, unless `clear` is False);
    True when nudged.

    asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
    (`stop`) that lands as the event is set (a job ending), and the task would run on."""
    if nudge is None:
        await asyncio.sleep(delay)
        return False
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            await nudge.wait()
        if clear:
            nudge.clear()
        return True
    return False
