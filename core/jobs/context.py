"""What every part of the job engine shares: its settings and its collaborators."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from core.config import Settings
from core.db.jobs import Maker
from core.jobs.admission import Admission
from core.moderation import Moderator
from core.ports import Publisher
from core.pricing import PriceTable
from core.providers.base import GenerationRequest, ImageProvider
from core.schedule import PollSchedule, RecentDurations
from core.store import ImageStore

SUBMITS = 8
"""Admission checks one engine runs at once (`JobContext.submit_gate`)."""


@dataclass(frozen=True)
class EngineConfig:
    """Tunables of the job engine (seconds unless named otherwise).

    lease_seconds: how long a claim lasts without renewal; a dead worker's jobs
        are picked up after this.
    max_attempts: failed tries (provider or Slack errors) before a job fails.
    deadline_seconds: longest time from submit to completion before a job fails.
    concurrency: jobs submitted to the provider at once; more stay queued, in order.
    idle_seconds: how often the loop looks for due jobs when nothing wakes it (SQLite).
    listen_idle_seconds: on PostgreSQL, where NOTIFY wakes the loop and it sleeps until the
        next due time, the longest it sleeps anyway (a safety net; issue 14).
    breaker_failures, breaker_cooloff_seconds: consecutive retryable provider failures that
        open the circuit breaker, and how long new jobs then wait before a probe.
    prices: USD price table per image (core.pricing); None uses the published defaults.
    progress_edits_per_second: how many progress steps all running jobs together show
        (and write) per second on average: each job shows a new step at most every
        `running jobs / progress_edits_per_second` seconds. The publisher paces edits
        anyway (Slack: about 50 `chat.update` a minute per workspace), so more would be
        computed and written only to be dropped there.
    """

    lease_seconds: float = 60.0
    max_attempts: int = 5
    deadline_seconds: float = 600.0
    concurrency: int = 2
    idle_seconds: float = 0.5
    listen_idle_seconds: float = 5.0
    breaker_failures: int = 5
    breaker_cooloff_seconds: float = 60.0
    prices: PriceTable | None = None
    progress_edits_per_second: float = 1.0

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        """The tunables as configured: JOB_LEASE_SECONDS, JOB_MAX_ATTEMPTS,
        JOB_DEADLINE_SECONDS, PROVIDER_CONCURRENCY, PROVIDER_BREAKER_FAILURES,
        PROVIDER_BREAKER_COOLOFF_SECONDS and IMAGE_PRICES (idle_seconds keeps its default)."""
        s = settings
        return cls(
            s.job_lease_seconds,
            s.job_max_attempts,
            s.job_deadline_seconds,
            s.provider_concurrency,
            breaker_failures=s.provider_breaker_failures,
            breaker_cooloff_seconds=s.provider_breaker_cooloff_seconds,
            prices=s.image_prices,
        )


@dataclass
class PollTrack:
    """What the engine keeps in memory about a submitted job it polls, so a poll that says
    "still running" reads and writes nothing: the monotonic time of the submit (`since`,
    seconds), the polls done, the progress last reported and last written (percent), when
    the task was last seen running and last asked about (seconds after submit), when its
    progress was last shown, and its provider request."""

    since: float
    request: GenerationRequest | None = None
    polls: int = 0
    reported: int = 0
    written: int = 0
    last_running: float | None = None
    asked: float = 0.0  # seconds after submit when the last poll was sent
    shown_at: float = -math.inf  # monotonic seconds when progress was last written, shown
    keep: bool = False  # the last step submitted or polled: the next poll waits on a timer
    fresh: bool = False  # …and found the task running (the job's row is unchanged)

    def elapsed(self) -> float:
        """Seconds since the task was submitted."""
        return time.monotonic() - self.since


@dataclass
class JobContext:
    """One engine's collaborators: the database (`sm`), the provider, the publisher, the
    image store, its settings, its lease `owner` name and its admission control."""

    sm: Maker
    provider: ImageProvider
    publisher: Publisher
    store: ImageStore
    config: EngineConfig
    owner: str
    admission: Admission
    schedule: PollSchedule = field(default_factory=PollSchedule)
    moderator: Moderator | None = None  # MODERATION_RESULTS checks (core.jobs.policy)
    durations: RecentDurations = field(default_factory=RecentDurations)  # per provider, model
    tracks: dict[int, PollTrack] = field(default_factory=dict)  # submitted jobs, by id
    # Jobs checking admission at once (core.jobs.steps.submit): a burst's jobs check a few
    # at a time instead of all reading the queue together, each read then outdated by the
    # submits that ended meanwhile (Admission.slot checks again).
    submit_gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(SUBMITS))

    def model(self, job_model: str | None) -> str | None:
        """The model a job uses: its own (--model, IMAGE_MODEL) or the provider's default."""
        return job_model or self.provider.model
