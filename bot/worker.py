"""`imagine-bot worker`: the job engine (and the daily retention sweep), beside any number
of web processes.

A worker needs the database, the image store, the provider and a Slack Web API client for
its publisher (posting threads, uploading images); it serves no HTTP and has no Bolt app,
so it needs SLACK_BOT_TOKEN but not SLACK_SIGNING_SECRET. On PostgreSQL workers on any
machine share the queue (`FOR UPDATE SKIP LOCKED` claims) and are woken by NOTIFY.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from bot.doctor import preflight
from bot.home_refresh import HomeRefresher
from bot.publisher import SlackPublisher
from bot.routing import RoutedPublisher
from bot.slack_client import web_client
from bot.workspaces import Workspaces, oauth_flow
from core import db, metrics
from core.config import Settings
from core.db.jobs import Maker
from core.jobs import EngineConfig, JobEngine
from core.moderation import Moderator
from core.privacy import RetentionTask
from core.providers.base import ImageProvider
from core.providers.factory import build_provider
from core.store import ImageStore, open_store

log = logging.getLogger(__name__)


@dataclass
class Worker:
    """What an `imagine-bot worker` process runs: its job engine (with the image store it
    writes to), the daily retention sweep (RETENTION_DAYS; `retention_task`) and the
    sampler of the in-flight gauge (core.metrics)."""

    jobs: JobEngine
    store: ImageStore
    retention: RetentionTask
    sampler: metrics.Sampler

    def start(self) -> None:
        """Start the job engine, the retention sweep and the metrics sampler."""
        self.jobs.start()
        self.retention.start()
        self.sampler.start()

    async def stop(self) -> None:
        """Stop them (the engine releases its leases) and close the Slack client, the
        provider, the moderation client and the database connections."""
        await self.sampler.stop()
        await self.retention.stop()
        await self.jobs.stop()
        if isinstance(self.jobs.ctx.publisher, RoutedPublisher):
            await self.jobs.ctx.publisher.base.aclose()
        await self.jobs.ctx.provider.aclose()
        if self.jobs.ctx.moderator is not None:
            await self.jobs.ctx.moderator.aclose()
        bind = self.jobs.ctx.sm.kw.get("bind")
        if bind is not None:
            await bind.dispose()


def build_worker(
    settings: Settings, *, provider: ImageProvider | None = None, owner: str | None = None
) -> Worker:
    """A Worker (not started) wired from `settings`: its own database engine, image store,
    provider (or `provider`), a Slack publisher over SLACK_BOT_TOKEN at SLACK_API_URL, and
    the retention sweep. Raises SettingsError when SLACK_BOT_TOKEN is missing (and OAuth
    is not set)."""
    if not settings.oauth:
        settings.require("slack_bot_token")
    engine = db.create_engine(settings.database_url)
    sm = db.sessionmaker(engine)
    store = open_store(settings)
    # As in `serve`: a paced client (bot.slack_client); in OAuth mode each workspace's token
    # from its install.
    token = settings.slack_bot_token
    client = web_client(
        settings, None if settings.oauth or token is None else token.get_secret_value()
    )
    installations = oauth_flow(settings, engine, client)[1] if settings.oauth else None
    publisher = SlackPublisher(client, workspaces=Workspaces(client, installations))
    jobs = job_engine(settings, sm, store, provider or build_provider(settings), publisher, owner)
    return Worker(jobs, store, retention_task(settings, sm, store), metrics.Sampler(sm))


def retention_task(settings: Settings, sm: Maker, store: ImageStore) -> RetentionTask:
    """The daily retention sweep (RETENTION_DAYS; not started) of a `serve` or `worker`
    process, deleting files from `store`: the one place it is built. Every such process
    sweeps; a sweep is idempotent, so several processes on one database only repeat work
    that finds nothing left."""
    return RetentionTask(sm, settings.retention_days, store=store)


def job_engine(
    settings: Settings,
    sm: Maker,
    store: ImageStore,
    provider: ImageProvider,
    publisher: SlackPublisher,
    owner: str | None,
) -> JobEngine:
    """The job engine of a `serve` or `worker` process (not started): JOB_*/PROVIDER_*
    settings, each generation's Slack calls bound to its workspace (`RoutedPublisher`),
    and the content policy for MODERATION_RESULTS."""
    jobs = JobEngine(
        sm,
        provider,
        RoutedPublisher(publisher),
        store,
        EngineConfig.from_settings(settings),
        owner=owner,
    )
    jobs.ctx.moderator = Moderator.from_settings(settings)
    publisher.home_changes = HomeRefresher(sm, publisher, settings.home_refresh_seconds)
    metrics.watch_breaker(provider.name, lambda: jobs.ctx.admission.breaker.state)
    return jobs


async def metrics_page(_request: web.Request) -> web.Response:
    """`GET /metrics`: every metric (core.metrics) in Prometheus' text format."""
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


async def start_metrics_server(port: int, host: str = "0.0.0.0") -> web.AppRunner:
    """Serve `GET /metrics` alone on host:port (the worker's METRICS_PORT); the runner to
    clean up."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def run_worker(settings: Settings) -> None:
    """Check the database and the token (`preflight`), then run the engine and the
    retention sweep until SIGINT or SIGTERM; on the way out the engine's leases are
    released so another worker resumes at once. With METRICS_PORT set, `GET /metrics` is
    served on that port meanwhile."""
    await preflight(settings)
    worker = build_worker(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker.start()
    port = settings.metrics_port
    runner = await start_metrics_server(port) if port else None
    log.info("worker %s running (provider: %s)", worker.jobs.owner, worker.jobs.ctx.provider.label)
    try:
        await stop.wait()
    finally:
        if runner is not None:
            await runner.cleanup()
        await worker.stop()
