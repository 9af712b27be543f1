"""Admission: when a queued job may go to the provider.

Versions in one thread run in the order they were asked for; a provider runs at most
`concurrency` tasks at once (counting submits in flight in this process), and jobs start
in the order they were queued (a job starts only when a slot is left after the older ones
that are due); while the circuit breaker is open (core.breaker), new jobs
wait. Each hold is a `Wait` with a reason code (core.ports.WaitReason).

A job that must wait is parked (its reason stored, no lease, not claimed when due) instead
of being looked at again and again: `admit` starts parked jobs in queue order when slots
are free, in one query whatever the queue's length. The engine calls it when a slot may
have freed (a job left the provider, a submit ended, a job parked) and every few seconds
as a safety net. Jobs it admits are `reserved`: their slot is counted from the admission
on, and their own check skips the queue order that `admit` already applied.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

from core import metrics
from core.breaker import CircuitBreaker
from core.db import jobs as jobs_db
from core.db.jobs import Job, Maker
from core.ports import WaitReason

T = TypeVar("T")


@dataclass(frozen=True)
class Wait:
    """A job must wait: why (`reason`, with `number` as WaitReason describes) and how many
    seconds until it looks again (`retry_in`)."""

    reason: WaitReason
    number: int | None
    retry_in: float


class Admission:
    """Queue order, capacity and the circuit breaker of one engine (one provider).

    `concurrency`: tasks at the provider at once; `breaker_failures` consecutive retryable
    failures open the breaker for `breaker_cooloff_seconds`.
    """

    def __init__(
        self,
        sm: Maker,
        concurrency: int,
        breaker_failures: int,
        breaker_cooloff_seconds: float,
        owner: str | None = None,
    ) -> None:
        self.sm = sm
        self.owner = owner  # the engine's lease owner: its own claimed jobs keep their places
        self.concurrency = concurrency
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooloff_seconds)
        self.submitting = 0  # provider.submit calls in flight in this process
        self.handed_back = 0  # slots released so far (see `slot`)
        self.reserved: set[int] = set()  # jobs `admit` started that have not submitted yet

    async def admit(self, owner: str, lease_seconds: float) -> list[int]:
        """Lease the parked jobs that may start now to `owner`, oldest first,
        as many as there are free slots (none while the breaker is open); they are
        `reserved` until their submit ends (`slot`) or the engine lets go of them."""
        if self.breaker.retry_in() > 0:
            return []
        taken = self.submitting + len(self.reserved)
        ids = await jobs_db.admit(self.sm, owner, lease_seconds, self.concurrency, taken)
        self.reserved.update(ids)
        return ids

    async def check(self, job: Job) -> Wait | None:
        """None when `job` may be submitted now, else why it waits."""
        if job.id not in self.reserved:
            wait = await self._in_order(job)
            if wait is not None:
                return wait
        if not self.breaker.allow():
            return Wait(WaitReason.BREAKER, None, max(1.0, self.breaker.retry_in()))
        return None

    async def _in_order(self, job: Job) -> Wait | None:
        ahead, running, older_first = await jobs_db.order_and_load(
            self.sm, job.session_id, job.ask.provider, job.id, self.owner
        )
        if ahead is not None:
            return Wait(WaitReason.THREAD, ahead, 0.5)
        # No await from here on: a slot taken by a concurrent step is already counted.
        # Older jobs keep their places: this one goes only when a slot is left after them
        # (a burst starts at once); otherwise it parks and `admit` starts parked jobs in
        # queue order as slots free, in any process (issues 13 and 14).
        busy = running + self.submitting + len(self.reserved)
        if busy + older_first >= self.concurrency:
            return Wait(WaitReason.SLOT, None, 1.0)
        return None

    @contextlib.asynccontextmanager
    async def slot(self, job: Job) -> AsyncIterator[Wait | None]:
        """Admit `job` or say why it waits. Admitted (None), it holds one of the provider's
        slots in this process until the block ends, so concurrent steps that check meanwhile
        see it taken even before the task is stored as submitted."""
        while True:
            handed_back = self.handed_back
            wait = await self.check(job)
            # A slot handed back while the check read the database means the submit it
            # covered is stored now, but the read may predate it: check again.
            if wait is not None or handed_back == self.handed_back:
                break
        if wait is not None:
            yield wait
            return
        self.submitting += 1  # taken in the same step as the check: no await between
        self.reserved.discard(job.id)  # its slot is now counted in `submitting`
        try:
            yield None
        finally:
            self.submitting -= 1
            self.handed_back += 1

    async def call(self, call: Awaitable[T]) -> T:
        """Await a provider call and tell the circuit breaker how it went."""
        try:
            result = await metrics.timed_call(call)  # issue 13: provider latency
        except BaseException as err:
            self.breaker.record_result(err)
            raise
        self.breaker.record_result(None)
        return result
