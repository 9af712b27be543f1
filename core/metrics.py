"""Every Prometheus metric of the service, in one place (issue 13).

The objects live in prometheus_client's default registry (which also carries the
``process_*`` and ``python_*`` collectors), so ``render()`` is what ``GET /metrics`` serves
(https://prometheus.io/docs/instrumenting/exposition_formats/). Counters are per process;
``imagine_jobs_in_flight`` is sampled from the database, so every process reports the
whole queue. Names and labels:

- ``imagine_generations_total{state}``: generations that reached ``state`` here (queued,
  submitted, posted, failed, cancelled).
- ``imagine_jobs_in_flight{state}``: unfinished generations by state (database, every 5 s).
- ``imagine_queue_wait_seconds``: request to provider submit.
- ``imagine_provider_call_seconds{call}``: one provider call (``LocalProvider.submit``…).
- ``imagine_provider_task_seconds{provider}``: submit to completed images.
- ``imagine_provider_errors_total{provider,kind}``: provider errors by ErrorKind value.
- ``imagine_provider_breaker_state{provider}``: 0 closed, 1 half-open, 2 open.
- ``imagine_slack_calls_total{method}``, ``imagine_slack_ratelimited_total{method}``: Web
  API calls made and HTTP 429 answers received, by method.
- ``imagine_status_edits_total{outcome}``: status edits sent, skipped (nothing a person
  would see changed) or superseded (a newer one replaced it before it went out).
- ``imagine_cost_usd_total{provider}``: estimated spend (core.pricing).
- ``imagine_event_loop_lag_seconds``: how late the event loop woke a 0.25 s sleep.

Core code calls the helpers here in one line; nothing here knows Slack's API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from core.db import stats
from core.db.jobs import Maker
from core.models import GenerationState

log = logging.getLogger(__name__)
T = TypeVar("T")

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The exposition format's Content-Type (text format 0.0.4)."""

SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
LAG_SECONDS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
LAG_INTERVAL = 0.25  # seconds slept between event-loop lag samples
SAMPLE_INTERVAL = 5.0  # seconds between database samples of the queue

GENERATIONS = Counter("imagine_generations", "Generations that reached a state", ["state"])
IN_FLIGHT = Gauge("imagine_jobs_in_flight", "Unfinished generations by state (database)", ["state"])
QUEUE_WAIT = Histogram(
    "imagine_queue_wait_seconds", "Seconds from request to provider submit", buckets=SECONDS
)
PROVIDER_CALL = Histogram(
    "imagine_provider_call_seconds", "Seconds one provider call took", ["call"], buckets=SECONDS
)
PROVIDER_TASK = Histogram(
    "imagine_provider_task_seconds",
    "Seconds from submit to completed images",
    ["provider"],
    buckets=SECONDS,
)
PROVIDER_ERRORS = Counter(
    "imagine_provider_errors", "Provider errors by kind", ["provider", "kind"]
)
BREAKER = Gauge(
    "imagine_provider_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open", ["provider"]
)
SLACK_CALLS = Counter("imagine_slack_calls", "Slack Web API calls made", ["method"])
SLACK_RATELIMITED = Counter(
    "imagine_slack_ratelimited", "Slack Web API answers HTTP 429 (rate limited)", ["method"]
)
STATUS_EDITS = Counter(
    "imagine_status_edits", "Status message edits: sent, skipped, superseded", ["outcome"]
)
COST = Counter("imagine_cost_usd", "Estimated provider spend in USD", ["provider"])
LOOP_LAG = Histogram(
    "imagine_event_loop_lag_seconds", "How late the event loop woke a timer", buckets=LAG_SECONDS
)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


def render() -> bytes:
    """The current values of every metric in Prometheus' text format (CONTENT_TYPE)."""
    return generate_latest(REGISTRY)


def reached(state: str) -> None:
    """Count a generation that reached `state` (a GenerationState value)."""
    GENERATIONS.labels(state).inc()


def provider_error(provider: str, kind: str) -> None:
    """Count a provider error of `kind` (an ErrorKind value, or "task_failed")."""
    PROVIDER_ERRORS.labels(provider, kind).inc()


async def timed_call(call: Awaitable[T]) -> T:
    """Await a provider call, observing its seconds under the coroutine's qualified name
    (``ToAPIsProvider.poll``), whether it succeeds or raises."""
    name = str(getattr(call, "__qualname__", "call"))
    started = time.monotonic()
    try:
        return await call
    finally:
        PROVIDER_CALL.labels(name).observe(time.monotonic() - started)


async def submitted(sm: Maker, generation_id: int) -> None:
    """A generation went to the provider: count it and observe its queue wait (one read)."""
    reached(GenerationState.SUBMITTED)
    times = await stats.times(sm, generation_id)
    if times is not None and times.queue_wait is not None:
        QUEUE_WAIT.observe(times.queue_wait)


async def completed(sm: Maker, generation_id: int, provider: str, cost_usd: float | None) -> None:
    """A generation's images are stored: observe the task's seconds at the provider and
    add its estimated cost (USD)."""
    if cost_usd:
        COST.labels(provider).inc(cost_usd)
    times = await stats.times(sm, generation_id)
    if times is not None and times.since_submit is not None:
        PROVIDER_TASK.labels(provider).observe(times.since_submit)


def watch_breaker(provider: str, state: Callable[[], str]) -> None:
    """Report `state()` ("closed", "half_open", "open") as the provider's breaker gauge,
    read at each scrape."""
    BREAKER.labels(provider).set_function(lambda: BREAKER_STATES.get(state(), -1))


class Sampler:
    """Background sampling for the gauges a counter cannot give: the event loop's lag
    (every LAG_INTERVAL seconds) and unfinished jobs by state from the database (every
    SAMPLE_INTERVAL seconds). `start()` in a running loop, `stop()` to end."""

    def __init__(self, sm: Maker | None) -> None:
        self.sm = sm
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the sampling tasks (idempotent)."""
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._lag(), name="metrics-lag")]
            if self.sm is not None:
                self._tasks.append(asyncio.create_task(self._queue(), name="metrics-queue"))

    async def stop(self) -> None:
        """Cancel the sampling tasks and wait for them."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _lag(self) -> None:
        while True:
            started = time.monotonic()
            await asyncio.sleep(LAG_INTERVAL)
            LOOP_LAG.observe(max(0.0, time.monotonic() - started - LAG_INTERVAL))

    async def _queue(self) -> None:
        assert self.sm is not None
        while True:
            try:
                counts = await stats.unfinished_by_state(self.sm)
            except Exception as err:  # a database hiccup: keep the last values
                log.warning("metrics: cannot count the queue: %s", err)
            else:
                for state in GenerationState.ACTIVE:
                    IN_FLIGHT.labels(state).set(counts.get(state, 0))
            await asyncio.sleep(SAMPLE_INTERVAL)
