"""When to poll a provider task again, and how long to back off after a failure.

Both are pure functions of the attempt number plus jitter, so they are unit
tested without sleeping. The engine writes the resulting due time into the
job row (`next_attempt_at`), so the schedule survives a restart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tenacity import wait_exponential_jitter


@dataclass(frozen=True)
class PollSchedule:
    """Delays (seconds) between polls of one provider task.

    The first poll comes `first` seconds after submit; poll k (0-based) comes
    `min(cap, interval * factor**k)` seconds after the previous one, spread by
    ±`jitter` (a fraction) so many jobs do not poll in lockstep.
    """

    first: float = 1.0
    interval: float = 1.0
    factor: float = 1.5
    cap: float = 10.0
    jitter: float = 0.2

    def first_delay(self, rng: random.Random | None = None) -> float:
        """Seconds from submit to the first poll."""
        return self._spread(self.first, rng)

    def next_delay(self, polls_done: int, rng: random.Random | None = None) -> float:
        """Seconds until the next poll after `polls_done` polls (>= 0)."""
        base = min(self.cap, self.interval * self.factor ** max(0, polls_done))
        return self._spread(base, rng)

    def _spread(self, base: float, rng: random.Random | None) -> float:
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + r))


# Exponential backoff with jitter for failed attempts: 1 s, 2 s, 4 s … capped at 60 s,
# plus up to 1 s of jitter (tenacity's wait_exponential_jitter).
_RETRY_WAIT = wait_exponential_jitter(initial=1, exp_base=2, max=60, jitter=1)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `attempt` (1-based) of a failed step.

    Exponential backoff with jitter (1 s, 2 s, 4 s, … capped at 60 s); when the
    provider sent a retry hint (Retry-After), wait at least that long.
    """

    class _State:  # the part of tenacity's RetryCallState that the wait strategy reads
        attempt_number = max(1, attempt)

    delay = float(_RETRY_WAIT(_State()))  # type: ignore[arg-type]
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def backoff(attempt: int, first: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds before retry number `attempt` (1-based) of something done outside a job (a
    gallery post): `first` doubling per attempt up to `cap`, plus up to 10% of `first` of
    jitter (tenacity's wait_exponential_jitter); at least `retry_after` when the platform
    sent one."""
    wait = wait_exponential_jitter(multiplier=first, exp_base=2, max=cap, jitter=first / 10)

    class _State:  # the part of tenacity's RetryCallState that the wait strategy reads
        attempt_number = max(1, attempt)

    delay = float(wait(_State()))  # type: ignore[arg-type]
    return max(delay, retry_after or 0.0)
