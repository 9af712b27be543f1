"""Unit tests: the poll schedule and the retry backoff."""

from __future__ import annotations

import random

from core.schedule import PollSchedule, backoff, retry_delay


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
