"""`imagine-bot worker`: the job engine alone, beside any number of web processes.

A worker needs the database, the image store, the provider and a Slack Web API client for
its publisher (posting threads, uploading images); it serves no HTTP and has no Bolt app,
so it needs SLACK_BOT_TOKEN but not SLACK_SIGNING_SECRET. On PostgreSQL workers on any
machine share the queue (`FOR UPDATE SKIP LOCKED` claims) and are woken by NOTIFY.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.doctor import preflight, slack_client
from bot.publisher import SlackPublisher
from core import db
from core.config import Settings
from core.jobs import EngineConfig, JobEngine
from core.providers.base import ImageProvider
from core.providers.factory import build_provider
from core.store import ImageStore

log = logging.getLogger(__name__)


def engine_config(settings: Settings) -> EngineConfig:
    """The job engine's tunables from the settings (JOB_*, PROVIDER_*, IMAGE_PRICES)."""
    return EngineConfig(
        lease_seconds=settings.job_lease_seconds,
        max_attempts=settings.job_max_attempts,
        deadline_seconds=settings.job_deadline_seconds,
        concurrency=settings.provider_concurrency,
        breaker_failures=settings.provider_breaker_failures,
        breaker_cooloff_seconds=settings.provider_breaker_cooloff_seconds,
        prices=settings.image_prices,
    )


def build_worker(
    settings: Settings, *, provider: ImageProvider | None = None, owner: str | None = None
) -> tuple[JobEngine, ImageStore]:
    """A JobEngine (not started) wired from `settings`: its own database engine, image store,
    provider (or `provider`) and a Slack publisher over SLACK_BOT_TOKEN at SLACK_API_URL.
    Raises SettingsError when SLACK_BOT_TOKEN is missing."""
    sm = db.sessionmaker(db.create_engine(settings.database_url))
    store = ImageStore(settings.image_store_dir)
    publisher = SlackPublisher(slack_client(settings))
    jobs = JobEngine(
        sm,
        provider or build_provider(settings),
        publisher,
        store,
        engine_config(settings),
        owner=owner,
    )
    return jobs, store


async def run_worker(settings: Settings) -> None:
    """Check the database and the token (`preflight`), then run the engine until SIGINT or
    SIGTERM; on the way out its leases are released so another worker resumes at once."""
    await preflight(settings)
    jobs, _store = build_worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    jobs.start()
    log.info("worker %s running (provider: %s)", jobs.owner, jobs.ctx.provider.label)
    try:
        await stop.wait()
    finally:
        await jobs.stop()
        await jobs.ctx.provider.aclose()
        bind = jobs.ctx.sm.kw.get("bind")
        if bind is not None:
            await bind.dispose()
