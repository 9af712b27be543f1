"""Assemble the service: settings → database, image store, provider, Bolt app, job engine,
and the aiohttp web application (`POST /slack/events`, `GET /healthz`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.listeners import actions, commands, events
from bot.publisher import SlackPublisher
from core import db, service
from core.config import Settings
from core.engine import EngineConfig, JobEngine
from core.providers.base import ImageProvider
from core.providers.factory import build_provider
from core.store import ImageStore

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Everything one running bot holds; listeners receive it at registration."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    store: ImageStore
    provider: ImageProvider
    publisher: SlackPublisher
    jobs: JobEngine
    bolt: AsyncApp

    async def aclose(self) -> None:
        """Stop the job engine (releasing its leases) and close connections."""
        await self.jobs.stop()
        await self.provider.aclose()
        await self.engine.dispose()


def build_runtime(
    settings: Settings, *, provider: ImageProvider | None = None, owner: str | None = None
) -> Runtime:
    """Wire the parts from `settings`. Requires SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET.

    `provider` overrides the one IMAGE_PROVIDER names (tests share one across restarts);
    `owner` names this process's job leases.
    """
    settings.require("slack_bot_token", "slack_signing_secret")
    assert settings.slack_bot_token and settings.slack_signing_secret
    engine = db.create_engine(settings.database_url)
    sm = db.sessionmaker(engine)
    store = ImageStore(settings.image_store_dir)
    provider = provider or build_provider(settings)
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )
    publisher = SlackPublisher(client)
    jobs = JobEngine(
        sm,
        provider,
        publisher,
        store,
        EngineConfig(
            lease_seconds=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            deadline_seconds=settings.job_deadline_seconds,
            concurrency=settings.provider_concurrency,
            breaker_failures=settings.provider_breaker_failures,
            breaker_cooloff_seconds=settings.provider_breaker_cooloff_seconds,
            prices=settings.image_prices,
        ),
        owner=owner,
    )
    bolt = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=False,
    )
    runtime = Runtime(settings, engine, sm, store, provider, publisher, jobs, bolt)

    @bolt.middleware
    async def drop_retried_deliveries(body: dict[str, Any], next: Any) -> BoltResponse | None:
        """Slack redelivers an event (X-Slack-Retry-Num, same event_id) when our answer was
        slow or lost; the first delivery is recorded, the repeats do nothing."""
        event_id = body.get("event_id")
        if event_id and not await service.record_delivery(sm, f"event:{event_id}"):
            log.info("ignoring redelivered event %s", event_id)
            return BoltResponse(status=200, body="")
        return await next()

    commands.register(bolt, runtime)
    actions.register(bolt, runtime)
    events.register(bolt, runtime)
    return runtime


def web_app(runtime: Runtime) -> web.Application:
    """The aiohttp application: Slack requests, health check, and the job engine's lifetime."""

    async def slack_events(request: web.Request) -> web.Response:
        bolt_response = await runtime.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_request: web.Request) -> web.Response:
        if await db.ping(runtime.engine):
            return web.json_response({"ok": True, "provider": runtime.provider.name})
        return web.json_response({"ok": False, "error": "database unreachable"}, status=503)

    async def on_startup(_app: web.Application) -> None:
        runtime.jobs.start()

    async def on_cleanup(_app: web.Application) -> None:
        await runtime.aclose()

    app = web.Application()
    app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


async def start_server(runtime: Runtime, host: str, port: int) -> web.AppRunner:
    """Start the web app on host:port (0 = any free port); returns the runner to clean up."""
    runner = web.AppRunner(web_app(runtime), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a started runner listens on."""
    return int(runner.addresses[0][1])
