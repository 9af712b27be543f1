"""A circuit breaker per provider: stop hammering a provider that is down.

States:
- "closed": calls flow; consecutive failures are counted.
- "open": after `failure_threshold` consecutive failures. `allow()` is False until
  `cool_off_seconds` have passed; new jobs stay queued meanwhile.
- "half_open": the cool-off has passed. `allow()` returns True for exactly one probe at a
  time; `record_success()` closes the breaker, `record_failure()` opens it for another
  cool-off.

Only failures that say the provider is struggling count: the engine calls `record_failure()`
for retryable ProviderError kinds (`ErrorKind.retryable`: UNAVAILABLE, RATE_LIMITED) and
`record_success()` for any answer from the provider, including non-retryable errors
(invalid request, content policy, …), which prove it is up. `record_result(err)` does that
classification. It is a plain in-process object, not thread-safe, owned by the engine (one per
provider); its state is not persisted (after a restart the breaker starts closed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from core.providers.base import ProviderError

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive-failure circuit breaker with a cool-off and single half-open probes.

    Args:
        failure_threshold: consecutive failures (>= 1) that open the breaker.
        cool_off_seconds: seconds the breaker stays open before a probe is allowed.
        clock: monotonic clock in seconds (injected in tests).
    """

    def __init__(
        self,
        failure_threshold: int,
        cool_off_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        if cool_off_seconds < 0:
            raise ValueError("cool_off_seconds must be >= 0")
        self.failure_threshold = failure_threshold
        self.cool_off_seconds = cool_off_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None  # set while open or half-open
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        """ "closed", "open" (cooling off) or "half_open" (cool-off over, probing)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.cool_off_seconds:
            return "open"
        return "half_open"

    @property
    def consecutive_failures(self) -> int:
        """Failures recorded since the last success."""
        return self._failures

    def allow(self) -> bool:
        """May a call to the provider start now?

        Closed: always. Open: never. Half-open: True once (the probe), then False until that
        probe reports `record_success()` or `record_failure()`.
        """
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def retry_in(self) -> float:
        """Seconds until `allow()` could return True: 0 when closed or a probe may start now;
        the rest of the cool-off when open; `cool_off_seconds` while a probe is in flight
        (a hint: the probe's outcome decides)."""
        state = self.state
        if state == "closed":
            return 0.0
        if state == "open":
            assert self._opened_at is not None
            return max(0.0, self._opened_at + self.cool_off_seconds - self._clock())
        return float(self.cool_off_seconds) if self._probe_in_flight else 0.0

    def record_success(self) -> None:
        """The provider answered: close the breaker and reset the failure count."""
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        """A retryable failure (UNAVAILABLE / RATE_LIMITED): count it; open the breaker at the
        threshold; a failed half-open probe re-opens it for another cool-off."""
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probe_in_flight = False

    def record_result(self, error: BaseException | None) -> None:
        """Record a call's outcome: None or a non-retryable ProviderError counts as success
        (the provider answered); a retryable ProviderError counts as a failure; any other
        exception is not the provider's fault and only releases a half-open probe."""
        if error is None:
            self.record_success()
        elif isinstance(error, ProviderError):
            if error.kind.retryable:
                self.record_failure()
            else:
                self.record_success()
        else:
            self._probe_in_flight = False
