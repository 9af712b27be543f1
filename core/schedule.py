"""When to poll a provider task again, and how long to back off after a failure.

All are pure functions of their arguments plus jitter, so they are unit tested without
sleeping. The plain poll schedule (`PollSchedule.first_delay` / `next_delay`) is the
provider's guidance; `expected_finish` and `next_poll` aim polls at the moment a task is
expected to finish, from the recent durations of tasks on the same provider and model
(`RecentDurations`, kept in memory by the engine) or the task's reported progress:
sparse (every `cap` seconds at most) far from it, one poll just after it, then every `near`
seconds while the task is late, backing off to `cap`.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from tenacity import wait_exponential_jitter


@dataclass(frozen=True)
class PollSchedule:
    """Delays (seconds) between polls of one provider task.

    The first poll comes `first` seconds after submit; poll k (0-based) comes
    `min(cap, interval * factor**k)` seconds after the previous one, spread by
    ±`jitter` (a fraction) so many jobs do not poll in lockstep.

    `near` (seconds, 0 = never) is the spacing of polls around a task's expected finish when
    one is known (`next_poll`): the poll that should find the task done comes `near / 2`
    after it, and a late task is polled every `near` seconds, backing off to `cap`.

    `far` (seconds, 0 = `cap`) is the longest step between polls while an expected finish
    is known and more than `2 * cap` away: a 300 s task is then polled every `far`
    seconds at most (each poll's progress refines the estimate), and every `cap` or less
    in the last `2 * cap` seconds before it.

    `early` (seconds, 0 = `first`) is the first poll while nothing is known of how long the
    provider's tasks take (no recent durations): spread upward only, so a task of `early`
    seconds is found done, and its progress aims the next polls.
    """

    first: float = 1.0  # seconds from submit to the first poll
    interval: float = 1.0  # seconds: the base step, before it grows by `factor`
    factor: float = 1.5  # ratio: each step is this many times the one before
    cap: float = 10.0  # seconds: the longest step
    jitter: float = 0.2  # ± fraction of each delay
    near: float = 0.0  # seconds between polls near the expected finish; 0 = never
    far: float = 0.0  # seconds: the longest step far from the expected finish; 0 = `cap`
    early: float = 0.0  # seconds: the first poll while no durations are known; 0 = `first`

    def first_delay(self, rng: random.Random | None = None) -> float:
        """Seconds from submit to the first poll."""
        return self.spread(self.first, rng)

    def next_delay(self, polls_done: int, rng: random.Random | None = None) -> float:
        """Seconds until the next poll after `polls_done` polls (>= 0)."""
        base = min(self.cap, self.interval * self.factor ** max(0, polls_done))
        return self.spread(base, rng)

    def spread(self, base: float, rng: random.Random | None = None) -> float:
        """`base` seconds spread by ±`jitter` (never below 0)."""
        r = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, base * (1.0 + r))

    def spread_up(self, base: float, rng: random.Random | None = None) -> float:
        """`base` seconds made longer by up to `jitter` (a fraction): never sooner."""
        return max(0.0, base * (1.0 + (rng or random).uniform(0.0, self.jitter)))


PROGRESS_STEP = 10  # percent: a progress report within the same step is not news
PROBE = 0.15  # share of polls aimed just before the expected finish, to learn from


def progress_bucket(progress: int) -> int:
    """The step (0-10) of a progress percentage (0-100); only a new step is written and
    shown."""
    return max(0, min(100, progress)) // PROGRESS_STEP


def expected_finish(
    durations: Sequence[float], elapsed: float, progress: int, *, first: bool = False
) -> float | None:
    """Seconds from submit to the expected completion of a running task, or None when
    nothing is known. `durations`: recent task durations on the same provider and model
    (seconds); `elapsed`: seconds since submit; `progress`: the last reported percentage;
    `first`: no poll was done yet.

    The task's own progress, extrapolated linearly (`elapsed * 100 / progress`, from 5 %
    on), wins; below 5 % (1-4 %, whole percents) it says only that the task cannot end
    before `elapsed * 100 / (progress + 1)`, which is taken unless the typical recent
    duration is later; without progress, that typical duration: their median, or for the
    `first` poll one of the shortest (the 1/8 quantile), so that short tasks among longer
    ones are found done by their first poll (whose progress aims the others' next polls)."""
    if 5 <= progress < 100 and elapsed > 0:
        return elapsed * 100 / progress
    typical = None
    if durations:
        ordered = sorted(durations)
        typical = ordered[len(ordered) // 8] if first else statistics.median(ordered)
    if 1 <= progress < 5 and elapsed > 0:  # too coarse to extrapolate: the earliest end
        return max(elapsed * 100 / (progress + 1), typical or 0.0)
    return typical


def next_poll(
    schedule: PollSchedule,
    *,
    elapsed: float,
    polls: int,
    expected: float | None,
    probe: bool = True,
    rng: random.Random | None = None,
) -> float:
    """Seconds from now (`elapsed` seconds after submit, `polls` polls done) to the next poll.

    Without an `expected` finish (seconds after submit, `expected_finish`) or with
    `schedule.near` 0, the provider's plain schedule (its first poll after `early` seconds,
    spread upward only, when set). With one, the first poll comes at
    the target or after `first` seconds, whichever is sooner; the next lands on the
    target `expected + near / 2` (`expected - near / 2` for a share `PROBE` of polls when
    `probe` is True, so shorter durations are noticed too; pass False when the estimate
    comes from the task's own progress) in equal steps of at most `cap` (of at most half
    the way and `far` while farther than `cap`, spread later only); past the target,
    every `near` seconds, then half the lateness, up to `cap`."""
    rng = rng or random
    if expected is None or schedule.near <= 0:
        if polls == 0 and schedule.early > 0:  # nothing known: a probe, for the progress
            return schedule.spread_up(schedule.early, rng)
        return schedule.first_delay(rng) if polls == 0 else schedule.next_delay(polls, rng)
    half = schedule.near / 2
    target = expected + (-half if probe and rng.random() < PROBE else half)
    gap = target - elapsed
    if polls == 0 and gap > schedule.first:  # the first poll comes as the provider says
        return schedule.first_delay(rng)
    if gap > schedule.cap:  # far: sparse (halfway, at most `far`), landing on the target
        step = max(schedule.cap, min(schedule.far or schedule.cap, gap / 2))
        # Spread later only: a sooner poll would leave more than the steps planned.
        return schedule.spread_up(gap / math.ceil(gap / step), rng)
    if gap > 0:
        return gap
    late = elapsed - expected
    return min(schedule.cap, max(schedule.near, late / 2))


def observed_duration(
    last_running: float | None,
    done_at: float,
    near: float,
    *,
    known: bool,
    reported: float | None = None,
) -> float | None:
    """The duration (seconds) to remember from a task seen running last at `last_running`
    and done at `done_at` (seconds after submit). The provider's own figure (`reported`,
    seconds from its timestamps, e.g. whole seconds) when it has one, kept within that
    bracket; else the middle of the bracket when it is narrow (at most `2 * near`) or when
    nothing is `known` yet, else None (a wide bracket would only say the task took less
    than `done_at`)."""
    low = last_running or 0.0
    if reported is not None and reported >= 0:
        return min(done_at, max(low, reported))
    if done_at - low <= 2 * near or not known:
        return (low + done_at) / 2
    return None


class RecentDurations:
    """The last `keep` observed task durations (seconds) per provider and model, in memory.

    `keep` is large enough that a burst's short tasks are still remembered once its long
    ones (which end last) are done: the first poll aims at one of the shortest."""

    def __init__(self, keep: int = 64) -> None:
        self._keep = keep
        self._by_key: dict[tuple[str, str | None], deque[float]] = {}
        self._reported: dict[tuple[str, str | None], bool] = {}

    def of(self, provider: str, model: str | None) -> Sequence[float]:
        """The durations remembered for `provider` and `model`, oldest first."""
        return self._by_key.get((provider, model), ())

    def reported(self, provider: str, model: str | None) -> bool:
        """Whether the last duration added came from the provider's own figure: then
        durations are learned however late a task is seen done (no probes needed)."""
        return self._reported.get((provider, model), False)

    def add(
        self, provider: str, model: str | None, seconds: float, *, reported: bool = False
    ) -> None:
        """Remember one duration (seconds), forgetting the oldest beyond `keep`; `reported`:
        it is the provider's own figure."""
        key = (provider, model)
        self._by_key.setdefault(key, deque(maxlen=self._keep)).append(seconds)
        self._reported[key] = reported


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
