"""CircuitBreaker state machine, driven by an injected clock."""

from __future__ import annotations

import pytest

from core.breaker import CircuitBreaker
from core.providers.base import ErrorKind, ProviderError


class Clock:
    """A manual monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_opens_after_threshold_consecutive_failures(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=3, cool_off_seconds=30, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow() and breaker.retry_in() == 0.0
    breaker.record_failure()
    assert breaker.state == "open"
    assert breaker.allow() is False
    assert breaker.retry_in() == 30.0
    clock.now += 12
    assert breaker.allow() is False and breaker.retry_in() == 18.0


def test_success_resets_the_consecutive_count(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cool_off_seconds=30, clock=clock)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed" and breaker.consecutive_failures == 1


def test_half_open_allows_exactly_one_probe_then_closes_on_success(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_off_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.state == "half_open" and breaker.retry_in() == 0.0
    assert breaker.allow() is True
    assert breaker.allow() is False  # one probe at a time
    assert breaker.retry_in() == 10.0
    breaker.record_success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()


def test_failed_probe_reopens_for_another_cool_off(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cool_off_seconds=10, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 15
    assert breaker.allow() is True
    breaker.record_failure()
    assert breaker.state == "open" and breaker.allow() is False
    assert breaker.retry_in() == 10.0
    clock.now += 10
    assert breaker.state == "half_open" and breaker.allow() is True


def test_record_result_counts_only_retryable_kinds(clock: Clock) -> None:
    breaker = CircuitBreaker(failure_threshold=2, cool_off_seconds=5, clock=clock)
    breaker.record_result(ProviderError(ErrorKind.UNAVAILABLE, "down"))
    breaker.record_result(ProviderError(ErrorKind.CONTENT_POLICY, "no"))  # provider answered
    breaker.record_result(ProviderError(ErrorKind.RATE_LIMITED, "slow"))
    assert breaker.state == "closed"
    breaker.record_result(ProviderError(ErrorKind.UNAVAILABLE, "down"))
    assert breaker.state == "open"
    clock.now += 5
    assert breaker.allow()
    breaker.record_result(RuntimeError("our bug"))  # releases the probe, no verdict
    assert breaker.state == "half_open" and breaker.allow()
    breaker.record_result(None)
    assert breaker.state == "closed"


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0, cool_off_seconds=1)
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=1, cool_off_seconds=-1)
