"""Admission: when a queued job may go to the provider.

Versions in one thread run in the order they were asked for; a provider runs at most
`concurrency` tasks at once (counting submits in flight in this process), and jobs start
in the order they were queued (a job starts only when a slot is left after the older ones
that are due); while the circuit breaker is open (core.breaker), new jobs
wait. Each hold is a `Wait` with a reason code (core.ports.WaitReason).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

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
    ) -> None:
        self.sm = sm
        self.concurrency = concurrency
        self.breaker = CircuitBreaker(breaker_failures, breaker_cooloff_seconds)
        self.submitting = 0  # provider.submit calls in flight in this process
        self.handed_back = 0  # slots released so far (see `slot`)

    async def check(self, job: Job) -> Wait | None:
        """None when `job` may be submitted now, else why it waits."""
        ahead = await jobs_db.version_ahead_in_session(self.sm, job.session_id, job.id)
        if ahead is not None:
            return Wait(WaitReason.THREAD, ahead, 0.5)
        running, older_first = await jobs_db.provider_load(self.sm, job.provider, job.id)
        # No await from here on: a slot taken by a concurrent step is already counted.
        # Older jobs keep their places: this one goes only when a slot is left after them
        # (so a free provider takes a burst of jobs at once, in any process; issue 14).
        if running + self.submitting + older_first >= self.concurrency:
            return Wait(WaitReason.SLOT, None, 1.0)
        if not self.breaker.allow():
            return Wait(WaitReason.BREAKER, None, max(1.0, self.breaker.retry_in()))
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
        try:
            yield None
        finally:
            self.submitting -= 1
            self.handed_back += 1

    async def call(self, call: Awaitable[T]) -> T:
        """Await a provider call and tell the circuit breaker how it went."""
        try:
            result = await call
        except BaseException as err:
            self.breaker.record_result(err)
            raise
        self.breaker.record_result(None)
        return result
