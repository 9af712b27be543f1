"""Assemble the service: settings → database, image store, provider, Bolt app, job engine,
and the aiohttp web application (`POST /slack/events`, `GET /healthz`).

In Socket Mode (`start_socket_mode`) Slack's deliveries arrive over a WebSocket the app
opens with its app-level token instead of `POST /slack/events`; the web application then
serves only `GET /healthz` and keeps the job engine's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.middleware.authorization.async_single_team_authorization import (
    AsyncSingleTeamAuthorization,
)
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import ack_runner, cost, gallery, listeners
from bot.http_guard import MAX_BODY_BYTES, slack_request_guard
from bot.publisher import SlackPublisher
from bot.replay import replay_stored
from bot.runtime import Runtime
from bot.slack_client import retry_handlers, web_client
from bot.worker import job_engine, metrics_page, retention_task
from bot.workspaces import Workspaces, oauth_flow
from core import db, metrics
from core.config import Settings, SettingsError
from core.db import sessions as sessions_db
from core.db.jobs import Maker
from core.intake import Intake
from core.jobs.gate import IdleGate
from core.providers.base import ImageProvider
from core.providers.factory import build_provider
from core.store import open_store

log = logging.getLogger(__name__)


class DropRetriedDeliveries(AsyncMiddleware):
    """A Bolt middleware: Slack redelivers an event (X-Slack-Retry-Num, same event_id) when
    our answer was slow or lost; the first delivery is recorded, the repeats do nothing.
    (A class, not a function: Bolt builds a function middleware's keyword arguments for
    every request; issue 13.)"""

    def __init__(self, sm: Maker) -> None:
        self._sm = sm

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[Any]]
    ) -> BoltResponse | None:
        """Answer 200 with nothing done for a repeated event_id; else go on."""
        event_id = req.body.get("event_id")
        if event_id and not await sessions_db.record_delivery(self._sm, f"event:{event_id}"):
            log.info("ignoring redelivered event %s", event_id)
            return BoltResponse(status=200, body="")
        return await next()


def build_runtime(
    settings: Settings,
    *,
    provider: ImageProvider | None = None,
    owner: str | None = None,
    socket_mode: bool = False,
    auth_test: AsyncSlackResponse | None = None,
    run_jobs: bool = True,
) -> Runtime:
    """Wire the parts from `settings`. Requires SLACK_BOT_TOKEN (or, for OAuth, the three
    SLACK_CLIENT_ID / SLACK_CLIENT_SECRET / SLACK_STATE_SECRET) and SLACK_SIGNING_SECRET.

    `provider` overrides the one IMAGE_PROVIDER names (tests share one across restarts);
    `owner` names this process's job leases. With `socket_mode=True` SLACK_APP_TOKEN is
    required instead of SLACK_SIGNING_SECRET: Socket Mode envelopes are not signed (the
    WebSocket itself was opened with the app-level token), so the runtime then refuses
    to serve `POST /slack/events`.

    `run_jobs=False` (`serve --no-worker`) builds the job engine but never starts it: jobs
    queued here are run by `imagine-bot worker` processes.

    `auth_test` is Slack's answer to the `auth.test` made at start (`bot.doctor.preflight`):
    Bolt then authorizes every request with it instead of calling `auth.test` itself on the
    first request (which, when Slack is unreachable, would fail that request with a 500).
    """
    token = None if settings.oauth else "slack_bot_token"
    if socket_mode:
        settings.require(*filter(None, [token, "slack_app_token"]))
    else:
        settings.require(*filter(None, [token, "slack_signing_secret"]))
    engine = db.create_engine(settings.database_url)
    sm = db.sessionmaker(engine)
    store = open_store(settings)
    provider = provider or build_provider(settings)
    bolt, installations = _bolt_app(settings, engine, auth_test)
    # The job engine's and the listeners' calls go through a paced client of our own
    # (bot.slack_client); Bolt's client serves Bolt itself.
    token = settings.slack_bot_token
    client = web_client(
        settings, None if settings.oauth or token is None else token.get_secret_value()
    )
    publisher = SlackPublisher(client, workspaces=Workspaces(client, installations))
    jobs = job_engine(settings, sm, store, provider, publisher, owner)
    runtime = Runtime(
        settings, engine, sm, store, provider, publisher, jobs, bolt, socket_mode, run_jobs=run_jobs
    )
    runtime.moderator = jobs.ctx.moderator
    if engine.dialect.name == "sqlite":  # one write lock: store first, start after the ack
        runtime.intake = Intake(settings.database_url, cost.policy(settings), jobs.gate)
    runtime.retention = retention_task(settings, sm, store)

    bolt.use(DropRetriedDeliveries(sm))
    listeners.register(bolt, runtime)
    return runtime


def _bolt_app(
    settings: Settings, engine: AsyncEngine, auth_test: AsyncSlackResponse | None
) -> tuple[AsyncApp, AsyncSQLAlchemyInstallationStore | None]:
    """The Bolt app and, in OAuth mode, the installation store (else None). Its client talks
    to SLACK_API_URL with our retry handlers (bot.slack_client: 429s after Retry-After,
    dropped connections for read methods only: a connection dropped after Slack accepted a
    post would post it twice; the job engine retries and finds the tagged message instead)."""
    secret = settings.slack_signing_secret
    signing = secret.get_secret_value() if secret else ""  # Socket Mode: Bolt skips checks
    # Bolt's own signature check is off: `web_app` puts bot/http_guard.py in front of Bolt,
    # which checks every signature before Bolt sees the request (Bolt's would repeat it).
    checked = {"signing_secret": signing, "request_verification_enabled": False}
    if settings.oauth:
        client = web_client(settings)
        flow, installations = oauth_flow(settings, engine, client)
        bolt = AsyncApp(client=client, process_before_response=False, oauth_flow=flow, **checked)
        ack_runner.install(bolt)  # the answer leaves at the ack, not at Bolt's next 10 ms look
        return bolt, installations
    assert settings.slack_bot_token is not None
    bolt = AsyncApp(
        # The token, not a ready client: given a client, Bolt warns "'token' will be unused"
        # whenever SLACK_BOT_TOKEN is in the environment. Its client then gets our base URL.
        token=settings.slack_bot_token.get_secret_value(),
        process_before_response=False,
        **checked,
    )
    bolt.client.base_url = settings.slack_api_url
    bolt.client.retry_handlers = retry_handlers()
    _authorize_once(bolt, auth_test)
    ack_runner.install(bolt)
    return bolt, None


class _AuthTestOnce(AsyncSingleTeamAuthorization):
    """Bolt's single-workspace authorization, whose one `auth.test` (made on the first
    request and cached) is shared by the requests that arrive while it is in flight:
    Bolt's own would call it once per request of a first burst (issue 13)."""

    def __init__(self, auth_test: AsyncSlackResponse | None) -> None:
        super().__init__()
        self.auth_test_result = auth_test
        self._first = asyncio.Lock()

    async def async_process(self, *, req: Any, resp: Any, next: Any) -> BoltResponse:
        if self.auth_test_result is None:
            async with self._first:
                if self.auth_test_result is None:
                    with contextlib.suppress(SlackApiError):  # Bolt answers it (below)
                        self.auth_test_result = await req.context.client.auth_test()
        return await super().async_process(req=req, resp=resp, next=next)


def _authorize_once(bolt: AsyncApp, auth_test: AsyncSlackResponse | None) -> None:
    """Put `_AuthTestOnce` in place of Bolt's single-workspace authorization, with the
    start-up `auth.test` answer when there is one (`bot.doctor.preflight`)."""
    chain = bolt._async_middleware_list  # Bolt has no public hook for this
    for i, middleware in enumerate(chain):
        if isinstance(middleware, AsyncSingleTeamAuthorization):
            chain[i] = _AuthTestOnce(auth_test)


def web_app(
    runtime: Runtime, *, socket_mode: AsyncSocketModeHandler | None = None
) -> web.Application:
    """The aiohttp application: Slack requests, health check, and the job engine's lifetime.

    With a `socket_mode` handler the app connects it at startup (after starting the job
    engine) and closes it at shutdown; `GET /healthz` then also reports the connection and
    there is no `POST /slack/events` (a Socket Mode runtime has no signing secret to check).
    """

    async def slack_events(request: web.Request) -> web.Response:
        bolt_response = await runtime.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    gallery_retries = gallery.GalleryRetries(runtime)
    replaying: set[asyncio.Task[None]] = set()

    async def on_startup(_app: web.Application) -> None:
        _freeze_startup_heap()
        if runtime.run_jobs:  # not for `serve --no-worker`
            runtime.jobs.start()
        if runtime.retention is not None:
            runtime.retention.start()
        gallery_retries.start()  # issue 10: gallery posts a crash interrupted or Slack refused
        # issue 13: requests a stopped process acknowledged and did not start
        replaying.add(asyncio.create_task(replay_stored(runtime), name="replay-stored"))
        runtime.sampler = runtime.sampler or metrics.Sampler(runtime.sessionmaker)
        runtime.sampler.start()
        if socket_mode is not None:
            await socket_mode.connect_async()

    async def on_shutdown(_app: web.Application) -> None:
        if socket_mode is not None:
            await socket_mode.close_async()

    async def on_cleanup(_app: web.Application) -> None:
        for task in replaying:
            task.cancel()
        await gallery_retries.stop()
        await runtime.aclose()

    middlewares = [_foreground(runtime.jobs.gate), *_guards(runtime)]
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY_BYTES)
    if not runtime.socket_mode:
        app.router.add_post("/slack/events", slack_events)
    flow = runtime.bolt.oauth_flow
    if flow is not None:
        oauth = _oauth_handler(flow)
        app.router.add_get(flow.install_path, oauth)
        app.router.add_get(flow.redirect_uri_path, oauth)
    app.router.add_get("/healthz", _healthz(runtime, socket_mode))
    app.router.add_get("/metrics", metrics_page)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app


def _healthz(
    runtime: Runtime, socket_mode: AsyncSocketModeHandler | None
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """`GET /healthz`: 200 with the provider's name while the database answers (and the
    Socket Mode connection is up, in Socket Mode); 503 with the reason otherwise."""

    async def healthz(_request: web.Request) -> web.Response:
        if not await db.ping(runtime.engine):
            return web.json_response({"ok": False, "error": "database unreachable"}, status=503)
        if socket_mode is None:
            return web.json_response({"ok": True, "provider": runtime.provider.name})
        if not await socket_mode.client.is_connected():
            return web.json_response(
                {"ok": False, "error": "socket mode disconnected", "socket_mode": False},
                status=503,
            )
        return web.json_response(
            {"ok": True, "provider": runtime.provider.name, "socket_mode": True}
        )

    return healthz


_frozen = False


def _freeze_startup_heap() -> None:
    """Once per process, when the web app starts: collect, then move every object alive now
    (modules, settings, the ORM's mappers, Bolt) out of the garbage collector's reach
    (`gc.freeze`, https://docs.python.org/3/library/gc.html#gc.freeze). Without it a full
    collection in the middle of a burst of commands walks them all: 80 ms with every
    request waiting (measured, issue 13). Objects made later are collected as usual."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _foreground(gate: IdleGate, path: str = "/slack/events") -> Any:
    """An aiohttp middleware counting the Slack requests being answered in `gate`, so the job
    engine starts no new step while a burst waits for its acks (issue 13, core.jobs.gate)."""

    @web.middleware
    async def foreground(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path != path:
            return await handler(request)
        with gate.busy():
            return await handler(request)

    return foreground


def _guards(runtime: Runtime) -> list[Any]:
    """The aiohttp middlewares in front of Bolt: over HTTP, the signature, size, time-limit
    and parse checks of `bot/http_guard.py`; none in Socket Mode (nothing is signed)."""
    if runtime.socket_mode:
        return []
    secret = runtime.settings.slack_signing_secret
    assert secret is not None
    return [slack_request_guard(secret.get_secret_value())]


def _oauth_handler(flow: AsyncOAuthFlow) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Bolt's OAuth flow over aiohttp: the install link and Slack's redirect back with a
    code."""

    async def oauth(request: web.Request) -> web.Response:
        bolt_request = await to_bolt_request(request)
        if request.path == flow.install_path:
            bolt_response = await flow.handle_installation(bolt_request)
        else:
            bolt_response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(bolt_response)

    return oauth


# Connections the kernel queues before the server accepts them (listen(2)'s backlog, capped
# by net.core.somaxconn). aiohttp's 128 overflows under a burst of Slack requests, and a
# dropped SYN is sent again only after a second (TCP's initial retransmission timeout).
LISTEN_BACKLOG = 1024


async def start_server(runtime: Runtime, host: str, port: int) -> web.AppRunner:
    """Start the web app on host:port (0 = any free port); returns the runner to clean up."""
    runner = web.AppRunner(web_app(runtime), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG).start()
    return runner


async def start_socket_mode(
    runtime: Runtime, host: str, port: int, *, ping_interval: float = 10.0
) -> web.AppRunner:
    """Connect to Slack over Socket Mode and serve `GET /healthz` on host:port.

    Bolt's `AsyncSocketModeHandler` calls `apps.connections.open` through the runtime's
    Web API client (so SLACK_API_URL is honoured) with SLACK_APP_TOKEN, then keeps the
    WebSocket open: it answers Slack's pings, acknowledges each envelope with Bolt's ack
    (a slash command's reply travels as the ack payload) and reconnects when Slack sends
    `disconnect` or the connection goes stale. The first `apps.connections.open` is made
    here so a rejected token stops the start with one line (`SettingsError`) instead of
    retrying forever. Returns the runner; its cleanup closes the socket, then the runtime.
    """
    token = runtime.settings.slack_app_token
    if token is None:
        raise SettingsError("SLACK_APP_TOKEN is required for Socket Mode but not set")
    handler = AsyncSocketModeHandler(
        runtime.bolt, token.get_secret_value(), ping_interval=ping_interval
    )
    try:
        handler.client.wss_uri = await handler.client.issue_new_wss_url()
    except (SlackApiError, aiohttp.ClientError, OSError) as err:
        await handler.close_async()
        reason = err.response.get("error") if isinstance(err, SlackApiError) else str(err)
        raise SettingsError(
            f"SLACK_APP_TOKEN: apps.connections.open failed ({reason or type(err).__name__})"
        ) from None
    runner = web.AppRunner(web_app(runtime, socket_mode=handler), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The port a started runner listens on."""
    return int(runner.addresses[0][1])
