"""The worker loop: claim due jobs with a lease, run their steps, renew and release leases."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid

from core.breaker import CircuitBreaker
from core.db import jobs as jobs_db
from core.db.jobs import LeaseLost, Maker
from core.db.notify import QueueListener, is_postgresql
from core.jobs.admission import Admission
from core.jobs.context import EngineConfig, JobContext
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
    released so a restart resumes at once).

    On SQLite (one process) the loop also looks at the queue every `config.idle_seconds`.
    On PostgreSQL it LISTENs for the NOTIFY that queuing a job sends from any process
    (`core.db.notify`), and otherwise sleeps until the next job falls due or a lease
    expires (`jobs_db.next_due_in`), at most `config.listen_idle_seconds`.
    """

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
        self.ctx = JobContext(
            sm=sessionmaker,
            provider=provider,
            publisher=publisher,
            store=store,
            config=config,
            owner=owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            admission=Admission(
                sessionmaker,
                config.concurrency,
                config.breaker_failures,
                config.breaker_cooloff_seconds,
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
        self._jobs: dict[int, asyncio.Task[None]] = {}

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
            if self._listener is not None:
                self._listener.start()

    def wake(self) -> None:
        """Look for due jobs now instead of at the next idle tick."""
        self._wake.set()

    async def stop(self, *, release: bool = True) -> None:
        """Stop the loop and the running steps; release their leases unless `release` is False
        (False simulates a crash: the leases then expire)."""
        if self._listener is not None:
            await self._listener.stop()
        tasks = [t for t in (self._loop_task, *self._jobs.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self._jobs.clear()
        if release:
            await jobs_db.release_all(self.ctx.sm, self.owner)

    async def claim(self) -> int | None:
        """Take the lease on the most overdue claimable job; its id, or None when there is
        none. The job is not run (the loop does that)."""
        return await jobs_db.claim(
            self.ctx.sm, self.owner, self.ctx.config.lease_seconds, self._jobs
        )

    async def _loop(self) -> None:
        while True:
            try:
                while len(self._jobs) < self.ctx.config.concurrency * 2:
                    job_id = await self.claim()
                    if job_id is None:
                        break
                    self._jobs[job_id] = asyncio.create_task(self.run(job_id))
                    self._jobs[job_id].add_done_callback(lambda _t, j=job_id: self._done(j))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job engine: claim failed")
            idle = await self._idle_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=idle)
            self._wake.clear()

    async def _idle_seconds(self) -> float:
        """How long to sleep when nothing wakes the loop (seconds)."""
        config = self.ctx.config
        if self._listener is None or len(self._jobs) >= config.concurrency * 2:
            return config.idle_seconds
        try:
            due = await jobs_db.next_due_in(self.ctx.sm, self._jobs)
        except Exception:
            log.exception("job engine: cannot read the next due time")
            return config.idle_seconds
        if due is None:
            return config.listen_idle_seconds
        return min(max(due, config.idle_seconds / 10), config.listen_idle_seconds)

    def _done(self, job_id: int) -> None:
        self._jobs.pop(job_id, None)
        self._wake.set()  # a slot is free

    async def _heartbeat(self, job_id: int) -> None:
        lease = self.ctx.config.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await jobs_db.renew_lease(self.ctx.sm, job_id, self.owner, lease)
            except LeaseLost:
                return

    async def run(self, job_id: int) -> None:
        """Run a claimed job's steps while this worker holds its lease, renewing the lease;
        release it with the next due time when a step asks to wait."""
        heartbeat = asyncio.create_task(self._heartbeat(job_id))
        try:
            while True:
                job = await jobs_db.load(self.ctx.sm, job_id)
                if job is None or job.lease_owner != self.owner:
                    return
                if job.state not in GenerationState.ACTIVE:
                    await jobs_db.release(self.ctx.sm, job_id, self.owner, 0)
                    return
                delay = await run_step(self.ctx, job)
                if delay is None:
                    return
                if delay > 0:
                    await jobs_db.release(self.ctx.sm, job_id, self.owner, delay)
                    return
        except LeaseLost:
            log.warning("job %s: lease lost to another worker; stopping here", job_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: unexpected error", job_id)
        finally:
            heartbeat.cancel()
