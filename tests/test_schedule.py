"""Unit tests: the poll schedule and the retry backoff."""

from __future__ import annotations

import random
from dataclasses import replace

from core.schedule import (
    PollSchedule,
    RecentDurations,
    backoff,
    expected_finish,
    next_poll,
    observed_duration,
    progress_bucket,
    retry_delay,
)


def test_polls_back_off_to_the_cap_with_bounded_jitter() -> None:
    schedule = PollSchedule(first=5, interval=5, factor=1.25, cap=10, jitter=0.2)
    rng = random.Random(1)
    assert 4.0 <= schedule.first_delay(rng) <= 6.0
    delays = [schedule.next_delay(k, rng) for k in range(20)]
    assert all(4.0 <= d <= 12.0 for d in delays)
    assert all(d >= 8.0 for d in delays[5:])  # reached the 10 s cap (±20 %)
    no_jitter = PollSchedule(first=1, interval=1, factor=2, cap=8, jitter=0)
    assert [no_jitter.next_delay(k) for k in range(5)] == [1, 2, 4, 8, 8]


def test_jitter_spreads_jobs_apart() -> None:
    schedule = PollSchedule(interval=5, jitter=0.2)
    rng = random.Random(7)
    assert len({round(schedule.next_delay(0, rng), 6) for _ in range(10)}) > 5


def test_retry_delay_doubles_from_one_second_and_is_capped() -> None:
    for attempt, base in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 16)]:
        assert base <= retry_delay(attempt) <= base + 1
    assert retry_delay(30) == 60


def test_retry_delay_honours_the_providers_hint() -> None:
    assert retry_delay(1, retry_after=30) == 30
    assert 16 <= retry_delay(5, retry_after=2) <= 17


def test_gallery_backoff_doubles_up_to_the_cap_and_honours_retry_after() -> None:
    delays = [backoff(attempt, 30.0, 3600.0) for attempt in range(1, 10)]
    for attempt, delay in enumerate(delays, start=1):
        base = min(3600.0, 30.0 * 2 ** (attempt - 1))
        assert base <= delay <= min(3600.0, base + 3.0)  # jitter: at most 10% of the first
    assert delays[-1] == 3600.0
    assert backoff(1, 0.2, 0.4, retry_after=5.0) == 5.0


# -- progress-aware polling (issue 13) ------------------------------------------------------

TOAPIS = PollSchedule(first=5.0, interval=5.0, factor=1.25, cap=10.0, near=1.0, far=30.0, early=3.0)


class _Fixed(random.Random):
    """A Random whose `random()` is fixed (0.99: never a probe; 0.0: always one)."""

    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


def test_without_an_estimate_the_plain_schedule_is_kept() -> None:
    rng = random.Random(3)
    no_early = replace(TOAPIS, early=0.0)
    assert 4.0 <= next_poll(no_early, elapsed=0, polls=0, expected=None, rng=rng) <= 6.0
    assert 4.0 <= next_poll(TOAPIS, elapsed=3, polls=1, expected=None, rng=rng) <= 12.0
    plain = PollSchedule(first=1, interval=1, factor=2, cap=8, jitter=0)
    assert next_poll(plain, elapsed=3, polls=2, expected=9.0) == 4  # near 0: never aimed


def test_a_poll_lands_just_after_the_expected_finish() -> None:
    never_probe = _Fixed(0.99)
    # A 3 s task: the first poll comes at 3.5 s, before the plain 5 s.
    assert next_poll(TOAPIS, elapsed=0, polls=0, expected=3.0, rng=never_probe) == 3.5
    # An 8 s task polled at 5 s: the next poll at 8.5 s.
    assert next_poll(TOAPIS, elapsed=5, polls=1, expected=8.0, rng=never_probe) == 3.5
    # A probe lands half a `near` before it instead.
    assert next_poll(TOAPIS, elapsed=5, polls=1, expected=8.0, rng=_Fixed(0.0)) == 2.5
    assert next_poll(TOAPIS, elapsed=5, polls=1, expected=8.0, probe=False, rng=_Fixed(0.0)) == 3.5


def test_with_nothing_known_the_first_poll_comes_after_early_seconds_never_sooner() -> None:
    rng = random.Random(5)
    firsts = [next_poll(TOAPIS, elapsed=0, polls=0, expected=None, rng=rng) for _ in range(200)]
    assert all(3.0 <= delay <= 3.6 for delay in firsts)  # a 3 s task is found done
    assert max(firsts) - min(firsts) > 0.3  # still spread apart
    # A known estimate, not `early`, places the first poll.
    assert next_poll(TOAPIS, elapsed=0, polls=0, expected=8.0, rng=_Fixed(0.99)) >= 4.0


def test_a_cold_3_8_20_s_burst_is_polled_no_more_than_on_the_plain_schedule() -> None:
    """Tasks reporting linear progress, nothing known: the early first poll's progress aims
    the next polls, so each task is found done within `near` of its end with as many polls
    as the plain schedule (5, 11, 19 s: 1, 2 and 3 polls) or fewer."""
    rng = random.Random(11)
    for length, most in ((3.0, 1), (8.0, 2), (20.0, 3)):
        for _ in range(50):
            elapsed = next_poll(TOAPIS, elapsed=0, polls=0, expected=None, rng=rng)
            polls = 1
            while elapsed < length:
                progress = int(100 * elapsed / length)
                expected = expected_finish([], elapsed, progress)
                elapsed += next_poll(
                    TOAPIS, elapsed=elapsed, polls=polls, expected=expected, probe=False, rng=rng
                )
                polls += 1
            assert polls <= most and elapsed - length <= 1.0 + 0.6, (length, polls, elapsed)


def _polls_until(schedule: PollSchedule, expected: float, rng: random.Random) -> list[float]:
    elapsed, times = 5.0, [5.0]
    while elapsed < expected:
        elapsed += next_poll(
            schedule, elapsed=elapsed, polls=len(times), expected=expected, rng=rng
        )
        times.append(elapsed)
    return times


def test_far_from_the_finish_polls_are_sparse_and_land_on_it() -> None:
    rng = _Fixed(0.99)
    # The first poll still comes after `first` (5 s), for the progress it reports.
    assert 4.0 <= next_poll(TOAPIS, elapsed=0, polls=0, expected=300.0, rng=rng) <= 6.0
    times = _polls_until(TOAPIS, 300.0, rng)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert all(gap <= 30.0 * 1.2 for gap in gaps)  # never sparser than `far` (+ jitter)
    assert all(gap <= 10.0 * 1.2 for a, gap in zip(times, gaps[1:], strict=False) if a > 280)
    assert 300.0 < times[-1] <= 301.0  # one poll just after the finish
    assert len(times) <= 16  # the plain schedule polls a 300 s task 31-32 times
    assert 300.0 / len(times) >= 5.0  # sparser than every 5 s on average (ToAPIs' guidance)
    # Far steps are spread later only: a sooner one would leave a gap needing an extra step.
    jittered = [
        next_poll(TOAPIS, elapsed=3, polls=1, expected=20.0, probe=False, rng=random.Random(i))
        for i in range(50)
    ]
    assert all(8.75 <= delay <= 8.75 * 1.2 for delay in jittered)
    # Without `far`, never sparser than the cap.
    capped = _polls_until(replace(TOAPIS, far=0.0), 300.0, rng)
    gaps = [b - a for a, b in zip([0.0, *capped], capped, strict=False)]
    assert all(gap <= 10.0 * 1.2 for gap in gaps) and len(capped) <= 32


def test_little_progress_says_only_how_soon_a_task_can_end() -> None:
    # 1 % after 5 s (whole percents): it cannot end before 250 s.
    assert expected_finish([], 5.0, 1) == 250.0
    assert expected_finish([400.0], 5.0, 1) == 400.0  # recent tasks took longer
    assert next_poll(TOAPIS, elapsed=5, polls=1, expected=250.0, rng=_Fixed(0.99)) > 10.0


def test_a_late_task_is_polled_every_near_seconds_then_backs_off() -> None:
    rng = _Fixed(0.99)
    delays = [next_poll(TOAPIS, elapsed=e, polls=5, expected=20.0, rng=rng) for e in (20.5, 22, 30)]
    assert delays == [1.0, 1.0, 5.0]
    assert next_poll(TOAPIS, elapsed=60, polls=9, expected=20.0, rng=rng) == 10.0  # the cap


def test_the_expected_finish_comes_from_recent_durations_else_progress() -> None:
    assert expected_finish([], 5.0, 0) is None
    assert expected_finish([], 5.0, 25) == 20.0  # linear from the reported progress
    assert expected_finish([], 5.0, 0) is None  # no progress reported
    assert expected_finish([7.0, 8.0, 30.0], 5.0, 0) == 8.0  # the median of recent tasks
    # Before the first poll: one of the shortest (1/8 quantile), so short tasks among
    # longer ones are found done by it.
    mixed = [20.0, 3.0, 8.0, 3.0, 20.0, 8.0, 3.0, 8.0, 20.0]
    assert expected_finish(mixed, 0.0, 0, first=True) == 3.0
    assert expected_finish([1.0, *mixed[:7]], 0.0, 0, first=True) == 3.0  # one outlier
    assert expected_finish(mixed, 0.0, 0) == 8.0
    # The task's own progress wins over the history.
    assert expected_finish([7.0, 8.0, 9.0], 12.0, 60) == 20.0


def test_only_narrow_brackets_teach_a_duration() -> None:
    assert observed_duration(7.5, 8.5, 1.0, known=True) == 8.0
    assert observed_duration(5.0, 8.5, 1.0, known=True) is None  # only "less than 8.5 s"
    assert observed_duration(None, 16.0, 1.0, known=False) == 8.0  # a first, coarse guess


def test_the_providers_own_duration_is_learned_within_the_polls_bracket() -> None:
    # Seen done at 3.4 s, first poll: the provider says 3 s (whole seconds), not 1.7 s.
    assert observed_duration(None, 3.4, 1.0, known=False, reported=3.0) == 3.0
    assert observed_duration(5.0, 8.5, 1.0, known=True, reported=8.0) == 8.0  # wide: still
    # Kept within what the polls saw (clocks and whole seconds differ).
    assert observed_duration(5.0, 8.5, 1.0, known=True, reported=9.0) == 8.5
    assert observed_duration(5.0, 8.5, 1.0, known=True, reported=4.0) == 5.0


def test_recent_durations_keep_the_last_few_per_provider_and_model() -> None:
    durations = RecentDurations(keep=3)
    for seconds in (1.0, 2.0, 3.0, 4.0):
        durations.add("toapis", "m", seconds)
    assert list(durations.of("toapis", "m")) == [2.0, 3.0, 4.0]
    assert list(durations.of("toapis", "other")) == []
    assert not durations.reported("toapis", "m")
    durations.add("toapis", "m", 5.0, reported=True)
    assert durations.reported("toapis", "m") and not durations.reported("toapis", "other")


def test_progress_is_written_only_when_it_reaches_a_new_step() -> None:
    assert [progress_bucket(p) for p in (0, 9, 10, 55, 99, 100, 140)] == [0, 0, 1, 5, 9, 10, 10]


def test_the_toapis_schedule_is_the_one_tested_here() -> None:
    from core.providers.toapis import INFO

    assert INFO.poll_schedule == TOAPIS
