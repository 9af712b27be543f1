"""The Slack emulator: an aiohttp server on loopback that plays Slack for the bot.

It serves the Web API (``/api/{method}``), the external-upload URLs, ``url_private``
downloads and ``response_url`` endpoints, and it delivers signed slash commands,
button clicks and Events API callbacks to the bot's ``request_url`` or, with
``transport = "socket"``, as Socket Mode envelopes over the WebSocket the bot opened
through ``apps.connections.open`` (see :mod:`bot.emulator.socket_mode`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from . import delivery as dl
from . import installs, limits
from .mentions import app_mention_event
from .socket_mode import SocketModeGateway
from .state import Channel, Ephemeral, Message, SlackFile, User, UserGroup, View, Workspace, truthy
from .transcript import render_ephemerals, render_line, render_thread, render_view
from .webapi import JSON_METHODS, ApiCall, ApiError, WebApi, now, parse_params

T = TypeVar("T")

LOGIN_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><meta charset="utf-8"><title>Slack</title></head>
<body><h1>Sign in to your workspace</h1>
<form action="/signin" method="post"><input type="email" name="email"></form>
</body></html>
"""


DEFAULT_BOT_SCOPES = (
    "app_mentions:read",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "users:read",
    "usergroups:read",
)
"""What a bot token is granted unless a test says otherwise (``SlackEmulator.scopes``)."""


class SlackEmulator:
    """A local stand-in for Slack: Web API + signed deliveries to ``request_url``.

    Web API errors use Slack's codes and shapes; deliveries carry Slack's
    ``X-Slack-Request-Timestamp``/``X-Slack-Signature`` headers and payload shapes.

    Socket Mode: give an ``app_token`` (``xapp-…``) and set ``transport = "socket"``;
    ``apps.connections.open`` then hands out WebSocket URLs, and ``send_slash_command``,
    ``click_button``, ``post_user_message`` and ``redeliver`` send envelopes over the
    newest connection instead of signed HTTP requests, returning the same
    :class:`~bot.emulator.Delivery` (status 200 and the ack payload once acknowledged
    within ``socket.ack_timeout`` seconds, Slack's 3 s; status 0 and ``error`` otherwise).
    """

    def __init__(
        self,
        signing_secret: str,
        bot_token: str,
        request_url: str | None = None,
        *,
        team_id: str = "T0TEAM",
        team_domain: str = "imagine-dev",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        echo_bot_messages: bool = False,
        default_workspace: bool = True,
        delivery_timeout: float = 10.0,
        app_token: str | None = None,
        transport: str = "http",
        ack_timeout: float = 3.0,
        share_delay: float = 0.3,
        rate_scale: float = 1.0,
    ) -> None:
        self._signing_secret = signing_secret
        self._bot_token = bot_token
        self._app_token = app_token
        self.transport = transport
        """``"http"`` (signed POSTs to ``request_url``) or ``"socket"`` (Socket Mode)."""
        self.request_url = request_url
        self.echo_bot_messages = echo_bot_messages
        self.delivery_timeout = delivery_timeout
        self.ws = Workspace(team_id, team_domain, bot_user_id, bot_id)
        self.add_user = self.ws.add_user
        """Add (or replace) a workspace member: :meth:`Workspace.add_user`."""
        self.add_channel = self.ws.add_channel
        """Add a channel with these members (and the bot when ``bot_member``):
        :meth:`Workspace.add_channel`."""
        self.api = WebApi(self.ws, self._on_bot_post, self._on_bot_edit)
        self.api.share_delay = share_delay
        self._lost: dict[str, list[tuple[str, Callable[[dict[str, Any]], bool] | None]]] = {}
        self.rates = limits.RateLimits(rate_scale)
        """Slack's per-method rate limits, per token (one token is one workspace's install);
        see :class:`~bot.emulator.limits.RateLimits` (raise ``rates.scale`` for speed)."""
        self.socket = SocketModeGateway(self.ws.app_id or "A0IMAGINE", ack_timeout)
        self.calls: list[ApiCall] = []
        self.installs = installs.Installs(
            app_id=self.ws.app_id, bot_user_id=bot_user_id, bot_id=bot_id
        )
        """OAuth installs of other workspaces and Grid orgs (see :mod:`.installs`)."""
        self.deliveries: list[dl.Delivery] = []
        self.delivery_errors: list[BaseException] = []
        self.events: dict[str, bytes] = {}
        self.scopes: dict[str, list[str]] = {bot_token: list(DEFAULT_BOT_SCOPES)}
        """Scopes granted to each token, sent back in ``x-oauth-scopes`` (edit to remove one)."""
        if app_token is not None:
            self.scopes[app_token] = ["connections:write"]
        self._response_urls: dict[str, dl.ResponseUrl] = {}
        self._injected: dict[str, list[ApiError]] = {}
        self._seq = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.host = "127.0.0.1"
        self.port = 0
        if default_workspace:
            self.add_user("U0ALICE", "alice")
            self.add_user("U0BOB", "bob")
            self.add_channel("C0DESIGN", "design", members=["U0ALICE", "U0BOB"], bot_member=True)
            self.add_channel(
                "C0PRIVATE",
                "secret",
                members=["U0ALICE", "U0BOB"],
                bot_member=False,
                is_private=True,
            )

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start serving on ``host:port`` (``port=0`` picks a free port)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/upload/{file_id}", self._handle_upload)
        app.router.add_get("/files-pri/{slug}/{name}", self._handle_download)
        app.router.add_get("/files-pri/{slug}/download/{name}", self._handle_download)
        app.router.add_post("/response/{rid}", self._handle_response_url)
        app.router.add_get("/socket-mode/{ticket}", self.socket.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.host = host
        self.port = self._runner.addresses[0][1]
        self.ws.base_url = f"http://{host}:{self.port}/"
        timeout = aiohttp.ClientTimeout(total=self.delivery_timeout)
        self._session = aiohttp.ClientSession(timeout=timeout)

    async def stop(self) -> None:
        """Finish background deliveries (briefly), then shut the server down."""
        with contextlib.suppress(TimeoutError):
            await self.wait_idle(within=2.0)
        for handle in list(self.api.pending_shares):
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.socket.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SlackEmulator:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/``."""
        return self.ws.base_url

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/``: where Socket Mode connections are served."""
        return f"ws://{self.host}:{self.port}/"

    @property
    def api_url(self) -> str:
        """The Web API base URL for slack_sdk's ``base_url`` (trailing slash)."""
        return f"{self.ws.base_url}api/"

    # -- workspace setup and inspection ----------------------------------------------
    def calls_to(self, method: str) -> list[ApiCall]:
        """Recorded calls of one Web API method (``"response_url"`` for response URLs)."""
        return [c for c in self.calls if c.method == method]

    def messages(self, channel: str) -> list[Message]:
        """Every (undeleted) message of a channel, oldest first."""
        return [m for m in self.ws.messages.get(channel, []) if not m.deleted]

    def message(self, channel: str, ts: str) -> Message | None:
        """The message at ``ts`` in ``channel``."""
        return self.ws.message(channel, ts)

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The thread root followed by its replies, oldest first."""
        return self.ws.replies(channel, thread_ts)

    @property
    def ephemerals(self) -> list[Ephemeral]:
        """Every ephemeral message shown so far (``chat.postEphemeral`` and response URLs)."""
        return self.ws.ephemerals

    def ephemerals_for(self, user_id: str) -> list[Ephemeral]:
        """Ephemeral messages shown to one user."""
        return [e for e in self.ws.ephemerals if e.user == user_id]

    def file(self, file_id: str) -> SlackFile:
        """A file record (``KeyError`` if unknown)."""
        return self.ws.files[file_id]

    def file_bytes(self, file_id: str) -> bytes:
        """The uploaded bytes of a file."""
        data = self.ws.files[file_id].data
        if data is None:
            raise LookupError(f"file {file_id} has no uploaded content")
        return data

    def transcript(self, channel_id: str, thread_ts: str) -> str:
        """The thread as readable text (what ``imagine-bot demo`` prints)."""
        return render_thread(self.ws, channel_id, thread_ts)

    def readable(self, text: str) -> str:
        """mrkdwn as a person reads it: mentions, channels, groups and links by name."""
        return "\n".join(render_line(self.ws, line) for line in text.splitlines())

    def view_transcript(self, view_id: str) -> str:
        """A modal or a Home tab as readable text."""
        return render_view(self.ws, self.ws.views[view_id])

    def home_transcript(self, user_id: str) -> str:
        """The Home tab published for a person as readable text ("(no Home tab)" if none)."""
        home = self.ws.home_views.get(user_id)
        return render_view(self.ws, home) if home else "(no Home tab)\n"

    def ephemeral_transcript(self, user_id: str) -> str:
        """Every ephemeral message one user saw, as readable text."""
        return render_ephemerals(self.ws, user_id)

    def fail_next(
        self,
        method: str,
        error: str,
        *,
        status: int = 200,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``.

        ``fail_next("chat.update", "ratelimited", status=429, retry_after=1)`` mimics
        Slack's rate limiting (HTTP 429 with ``Retry-After``).
        """
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self._injected.setdefault(method, []).extend(
            ApiError(error, status, headers) for _ in range(times)
        )

    def fail_after(
        self,
        method: str,
        *,
        times: int = 1,
        lose: str = "drop",
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Let the next ``times`` calls of ``method`` (those whose parsed params satisfy
        ``when``, if given) succeed at Slack, then lose the answer: ``lose="drop"`` closes
        the connection before any response, ``lose="500"`` answers HTTP 500. The caller
        never learns that Slack accepted the call (a message was posted, files were
        shared), as when a network or a process dies at the wrong moment.
        """
        if lose not in ("drop", "500"):
            raise ValueError('lose must be "drop" or "500"')
        self._lost.setdefault(method, []).extend((lose, when) for _ in range(times))

    def _lose_answer(self, call: ApiCall, request: web.Request) -> web.Response | None:
        """The lost answer of a processed call (see :meth:`fail_after`), if one is due."""
        pending = self._lost.get(call.method, [])
        due = next((p for p in pending if p[1] is None or p[1](call.params)), None)
        if due is None:
            return None
        pending.remove(due)
        call.response = {**call.response, "lost": due[0]}
        if due[0] == "drop" and request.transport is not None:
            request.transport.abort()  # the peer sees the connection go down mid-request
        return web.Response(status=500, text="Internal Server Error", content_type="text/plain")

    async def wait_idle(self, within: float = 5.0) -> None:
        """Wait until background deliveries (echoes of the bot's own posts) are done."""
        async with asyncio.timeout(within):
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def wait_for(
        self, predicate: Callable[[], T], within: float = 5.0, interval: float = 0.01
    ) -> T:
        """Poll ``predicate`` until it returns something truthy (within seconds); return it."""
        deadline = time.monotonic() + within
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {within}s")
            await asyncio.sleep(interval)

    # -- HTTP: Web API ---------------------------------------------------------------
    async def _read_params(self, request: web.Request, method: str) -> dict[str, Any]:
        """Merge query string and form/JSON body, as slack_sdk uses all three; a JSON body
        sent to a method that reads none (a read method) is ``invalid_arguments``."""
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            raw = await request.read()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ApiError("invalid_json") from exc
                if not isinstance(body, dict):
                    raise ApiError("invalid_json")
                if body and method not in JSON_METHODS:
                    # Only write methods read JSON bodies (https://docs.slack.dev/apis/web-api,
                    # "POST bodies": "Most write methods allow arguments with application/json
                    # attributes"); a read method sees no arguments at all.
                    raise ApiError("invalid_arguments")
                params.update(body)
        elif request.method == "POST":
            form = await request.post()
            for key, value in form.items():
                params[key] = value if isinstance(value, str) else value.file.read()
        return params

    @staticmethod
    def _token(request: web.Request, params: dict[str, Any]) -> str:
        auth = request.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        token = token or params.get("token")
        if not token:
            raise ApiError("not_authed")
        return str(token)

    def _is_app_token(self, token: str) -> bool:
        return self._app_token is not None and hmac.compare_digest(
            token.encode(), self._app_token.encode()
        )

    def _check_token(
        self, request: web.Request, params: dict[str, Any], method: str = ""
    ) -> installs.Install | None:
        """Check the bot token; returns the installation when it is an OAuth-issued one."""
        token = self._token(request, params)
        if self._is_app_token(token):
            raise ApiError("not_allowed_token_type")  # app-level tokens only open sockets
        channel = params.get("channel") or params.get("channel_id")
        installed = self.installs.use(method, token, channel)
        if installed is None and not hmac.compare_digest(token.encode(), self._bot_token.encode()):
            raise ApiError("invalid_auth")
        return installed

    def _oauth_call(
        self, request: web.Request, method: str, raw: dict[str, Any]
    ) -> dict[str, Any] | None:
        """``oauth.v2.access`` (client credentials, no token) and ``auth.test`` for an
        installed token; None for every other call (checked by ``_check_token``)."""
        if method == "oauth.v2.access":
            return self.installs.access(raw, request.headers.get("Authorization", ""))
        installed = self._check_token(request, raw, method)
        if method == "auth.test" and installed is not None:
            return self.installs.auth_test(installed, self.api.auth_test(raw))
        return None

    def _check_app_token(self, request: web.Request, params: dict[str, Any]) -> None:
        """``apps.connections.open`` takes only the app-level token (``xapp-…``)."""
        token = self._token(request, params)
        if not token.startswith("xapp-"):
            raise ApiError("not_allowed_token_type")
        if not self._is_app_token(token):
            raise ApiError("invalid_auth")

    def _token_or_none(self, request: web.Request, params: dict[str, Any]) -> str:
        try:
            return self._token(request, params)
        except ApiError:
            return ""

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        call = ApiCall(method, {}, now())
        self.calls.append(call)
        raw: dict[str, Any] = {}
        try:
            socket_open = method == "apps.connections.open"
            oauth = method == "oauth.v2.access"
            if method not in self.api.methods and not socket_open and not oauth:
                raise ApiError("unknown_method", status=404)
            raw = await self._read_params(request, method)
            call.params = {k: v for k, v in parse_params(raw).items() if k != "token"}
            oauth_result = None
            if socket_open:
                self._check_app_token(request, raw)
            else:
                oauth_result = self._oauth_call(request, method, raw)
            if not socket_open:  # 429 + Retry-After over Slack's rate (see limits.RateLimits)
                token = self._token_or_none(request, raw)
                wait = self.rates.over(token, method, call.params.get("channel"))
                if wait is not None:
                    raise ApiError("ratelimited", 429, {"Retry-After": str(wait)})
            injected = self._injected.get(method)
            if injected:
                raise injected.pop(0)
            if socket_open:  # Socket Mode: a one-time WebSocket URL
                result = {"url": self.socket.issue_url(self.ws_url)}
            elif oauth_result is not None:
                result = oauth_result
            else:
                result = self.api.methods[method](call.params)
            body = {"ok": True, **result}
            status, headers = 200, {}
        except ApiError as err:
            body = {"ok": False, "error": err.error}
            if err.messages:
                body["response_metadata"] = {"messages": err.messages}
            status, headers = err.status, dict(err.headers)
        call.response = body
        # Slack names the calling token's scopes in `x-oauth-scopes` on every Web API answer
        # to a valid token (https://docs.slack.dev/authentication/tokens#scopes).
        granted = self.scopes.get(self._token_or_none(request, raw))
        if granted is not None:
            headers["x-oauth-scopes"] = ",".join(granted)
        lost = self._lose_answer(call, request) if body.get("ok") else None
        if lost is not None:
            return lost
        return web.json_response(body, status=status, headers=headers)

    # -- HTTP: files -----------------------------------------------------------------
    async def _handle_upload(self, request: web.Request) -> web.Response:
        """The external upload URL: raw body (what slack_sdk sends) or multipart."""
        f = self.ws.files.get(request.match_info["file_id"])
        if f is None:
            return web.Response(status=404, text="file_not_found", content_type="text/plain")
        if request.content_type.startswith("multipart/"):
            data = b""
            reader = await request.multipart()
            async for part in reader:
                if isinstance(part, aiohttp.BodyPartReader) and part.filename is not None:
                    data = bytes(await part.read())
                    break
                if isinstance(part, aiohttp.BodyPartReader) and part.name == "file":
                    data = bytes(await part.read())
        else:
            data = await request.read()
        f.set_content(data)
        self.calls.append(ApiCall("upload", {"file_id": f.id, "length": len(data)}, now()))
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_download(self, request: web.Request) -> web.Response:
        """``url_private``: bytes with the bot token, Slack's HTML login page without."""
        # Slack serves url_private / url_private_download under /files-pri/ on its file
        # host and requires "Authorization: Bearer <token>" (https://api.slack.com/types/file,
        # "Authentication"); without it the answer is the sign-in page with HTTP 200.
        slug = request.match_info["slug"]
        file_id = slug.split("-", 1)[-1]
        f = self.ws.files.get(file_id)
        auth = request.headers.get("Authorization", "")
        authorized = hmac.compare_digest(auth.encode(), f"Bearer {self._bot_token}".encode())
        shares = (f.shares.get("public") or f.shares.get("private") or {}) if f else {}
        with contextlib.suppress(ApiError):  # another workspace's token: the sign-in page
            installed = self.installs.use("download", auth[7:].strip(), next(iter(shares), None))
            authorized = authorized or installed is not None
        if not authorized:
            return web.Response(text=LOGIN_PAGE, content_type="text/html")
        if f is None or f.data is None or f.deleted:
            return web.Response(status=404, text="file_not_found", content_type="text/plain")
        return web.Response(body=f.data, content_type=f.mimetype)

    # -- HTTP: response_url ----------------------------------------------------------
    async def _handle_response_url(self, request: web.Request) -> web.Response:
        """A response_url: ephemeral by default, ``in_channel``, replace/delete original."""
        ctx = self._response_urls.get(request.match_info["rid"])
        refused = "invalid_token" if ctx is None else ctx.refusal()
        if refused or ctx is None:
            self.calls.append(ApiCall("response_url", {}, now(), {"ok": False, "error": refused}))
            return web.Response(status=404, text=refused)
        try:
            if request.content_type == "application/json":
                body = await request.json()
            else:
                body = json.loads(str((await request.post()).get("payload", "{}")))
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        body = parse_params(body)
        text = body.get("text") or ""
        blocks = body.get("blocks") if isinstance(body.get("blocks"), list) else []
        # Slack applies the same Block Kit limits to response_url messages and answers
        # HTTP 400 with the error code as the body (bot/emulator/limits.py cites them).
        problem = "invalid_blocks" if limits.blocks_problem(blocks) else None
        problem = problem or ("msg_too_long" if limits.text_too_long(text) else None)
        if problem:
            self.calls.append(ApiCall("response_url", body, now(), {"ok": False, "error": problem}))
            return web.Response(status=400, text=problem)
        self.calls.append(ApiCall("response_url", body, now(), {"ok": True}))
        original = self.ws.message(ctx.channel, ctx.message_ts) if ctx.message_ts else None
        if truthy(body.get("delete_original")) and original is not None:
            original.deleted = True
        elif truthy(body.get("replace_original")) and original is not None:
            previous = self.ws.message_dict(original)
            original.text, original.blocks = text, blocks
            original.edits += 1
            self._on_bot_edit(previous, original)
        elif body.get("response_type") == "in_channel":
            msg = self.api._bot_message(
                self.ws.channels[ctx.channel],
                text=text,
                blocks=blocks,
                thread_ts=body.get("thread_ts") or ctx.thread_ts,
            )
            self.ws.add_message(msg)
            self._on_bot_post(msg)
        else:
            self.ws.ephemerals.append(
                Ephemeral(
                    ctx.channel,
                    ctx.user,
                    text,
                    blocks,
                    body.get("thread_ts") or ctx.thread_ts,
                    self.ws.clock.next(),
                    source="response_url",
                )
            )
        return web.Response(text="ok")

    def age_response_urls(self, seconds: float) -> None:
        """Make every response_url issued so far `seconds` older (tests of Slack's
        30-minute limit, without waiting for it)."""
        for ctx in self._response_urls.values():
            ctx.issued -= seconds

    # -- deliveries ------------------------------------------------------------------
    def _new_response_url(self, ctx: dl.ResponseUrl) -> str:
        rid = f"{next(self._seq):04d}{int(time.time() * 1000) % 10**6:06d}"
        self._response_urls[rid] = ctx
        return f"{self.base_url}response/{rid}"

    def _trigger_id(self, user_id: str = "") -> str:
        """A new trigger_id for `user_id`, good for one views.open within 3 seconds."""
        trigger = f"{next(self._seq)}.{int(time.time())}.emu{next(self._seq):08x}"
        self.ws.triggers[trigger] = (user_id, time.monotonic())
        return trigger

    def _user(self, user_id: str) -> User:
        if user_id not in self.ws.users:
            raise LookupError(f"unknown user {user_id}; add it with add_user()")
        return self.ws.users[user_id]

    def _channel(self, channel_id: str) -> Channel:
        if channel_id not in self.ws.channels:
            raise LookupError(f"unknown channel {channel_id}; add it with add_channel()")
        return self.ws.channels[channel_id]

    async def send_raw(
        self,
        body: bytes,
        content_type: str,
        timestamp: str | int | None = None,
        signature: str | None = None,
        extra_headers: dict[str, str] | None = None,
        *,
        kind: str = "raw",
    ) -> dl.Delivery:
        """POST ``body`` to ``request_url``, signed (with ``timestamp`` if given) like Slack.

        Pass ``signature`` to send a wrong one; ``timestamp`` alone signs a stale request
        correctly, so only the timestamp check can reject it.
        """
        if not self.request_url:
            raise RuntimeError("SlackEmulator.request_url is not set")
        if self._session is None:
            raise RuntimeError("SlackEmulator is not started")
        ts = None if timestamp is None else str(timestamp)
        headers = dl.signed_headers(self._signing_secret, body, content_type, ts, signature)
        headers.update(extra_headers or {})
        async with self._session.post(self.request_url, data=body, headers=headers) as res:
            text = await res.text()
            result = dl.Delivery(res.status, text, dict(res.headers), kind, body)
        self.deliveries.append(result)
        return result

    async def send_slash_command(
        self, user_id: str, channel_id: str, text: str, command: str = "/imagine"
    ) -> dl.Delivery:
        """Deliver a slash command (form-encoded, with its own response_url)."""
        user, chan = self._user(user_id), self._channel(channel_id)
        response_url = self._new_response_url(dl.ResponseUrl(chan.id, user.id))
        form = dl.slash_command_form(
            self.ws, user, chan, command, text, response_url, self._trigger_id(user.id)
        )
        installs.retarget(form, self.installs.team_fields(chan.id))
        if self._over_socket():
            return await self._send_envelope("command", dict(form))
        body = urlencode(form).encode()
        return await self.send_raw(body, "application/x-www-form-urlencoded", kind="command")

    async def click_button(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        action_id: str,
        value: str | None = None,
    ) -> dl.Delivery:
        """Click a button of a stored message: deliver a ``block_actions`` payload.

        Raises ``LookupError`` when the message or the button does not exist.
        """

        def find(msg: Message) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            block, button = dl.find_button(msg, action_id, value)
            return block, button, {}

        return await self._act_on_message(user_id, channel_id, message_ts, find)

    async def choose_overflow(
        self, user_id: str, channel_id: str, message_ts: str, action_id: str, value: str
    ) -> dl.Delivery:
        """Open an overflow ("…") menu of a stored message and pick the option ``value``:
        a ``block_actions`` payload whose action has ``type: overflow`` and the
        ``selected_option`` (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload).

        Raises ``LookupError`` when the message or the option does not exist.
        """

        def find(msg: Message) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
            block, menu, option = dl.find_overflow_option(msg, action_id, value)
            return block, menu, {"type": "overflow", "selected_option": option}

        return await self._act_on_message(user_id, channel_id, message_ts, find)

    async def _act_on_message(
        self,
        user_id: str,
        channel_id: str,
        message_ts: str,
        find: Callable[[Message], tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
    ) -> dl.Delivery:
        """Deliver the ``block_actions`` payload of an element `find` picks in a stored
        message: (block, element, fields that replace the button's in the action)."""
        user, chan = self._user(user_id), self._channel(channel_id)
        msg = self.ws.message(chan.id, message_ts)
        if msg is None:
            raise LookupError(f"no message {message_ts} in {channel_id}")
        block, element, fields = find(msg)
        ctx = dl.ResponseUrl(chan.id, user.id, msg.ts, msg.thread_ts)
        payload = dl.block_actions_payload(
            self.ws,
            user,
            chan,
            msg,
            block,
            element,
            self._new_response_url(ctx),
            self._trigger_id(user.id),
        )
        if fields:  # not a button: no `text`, its own `type` and selection
            payload["actions"][0].pop("text", None)
            payload["actions"][0].update(fields)
        installs.retarget(payload, self.installs.team_fields(chan.id))
        return await self._send_block_actions(payload)

    async def _send_block_actions(self, payload: dict[str, Any]) -> dl.Delivery:
        if self._over_socket():
            return await self._send_envelope("block_actions", payload)
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.send_raw(body, "application/x-www-form-urlencoded", kind="block_actions")

    async def click_ephemeral_button(
        self,
        ephemeral: Ephemeral,
        action_id: str,
        value: str | None = None,
        *,
        forged_by: str | None = None,
    ) -> dl.Delivery:
        """Click a button of an ephemeral message its user saw (issue 11, *Generate
        anyway*). Slack sends the same ``block_actions`` payload, but the container says
        ``is_ephemeral: true`` and there is no ``message`` (the app never stored it;
        https://docs.slack.dev/reference/interaction-payloads/block_actions-payload).
        ``forged_by`` sends the click as another member instead: Slack never delivers
        that (only its user sees an ephemeral message), but a replayed or crafted payload
        can carry any user, so an app must check the clicker anyway.

        Raises ``LookupError`` when the ephemeral message has no such button.
        """
        user = self._user(forged_by or ephemeral.user)
        chan = self._channel(ephemeral.channel)
        seen = Message(
            channel=chan.id,
            ts=ephemeral.message_ts,
            blocks=ephemeral.blocks,
            thread_ts=ephemeral.thread_ts,
        )
        block, button = dl.find_button(seen, action_id, value)
        ctx = dl.ResponseUrl(chan.id, user.id, None, ephemeral.thread_ts)
        payload = dl.block_actions_payload(
            self.ws,
            user,
            chan,
            seen,
            block,
            button,
            self._new_response_url(ctx),
            self._trigger_id(),
        )
        payload.pop("message", None)
        payload["container"]["is_ephemeral"] = True
        return await self._send_block_actions(payload)

    async def post_user_message(
        self,
        user_id: str,
        channel_id: str,
        text: str,
        thread_ts: str | None = None,
        files: list[tuple[str, bytes, str]] | None = None,
        file_shape: str = "hosted",
    ) -> tuple[str, dl.Delivery | None]:
        """A person posts (optionally with files); deliver the ``message`` event.

        The user joins the channel if needed. Like Slack, the event is only delivered when
        the bot is a member of the channel; otherwise the delivery is ``None``. ``files`` is
        a list of ``(filename, bytes, mimetype)``; they get ids and ``url_private`` here.
        ``file_shape`` delivers them as Slack Connect references (``"check_file_info"``)
        or as deleted files (``"tombstone"``: the files are gone) instead.
        """
        user, chan = self._user(user_id), self._channel(channel_id)
        chan.members.add(user.id)
        root = None
        if thread_ts:
            parent = self.ws.message(chan.id, thread_ts)
            if parent is None:
                raise LookupError(f"no message {thread_ts} in {channel_id} to reply to")
            root = parent.thread_ts or parent.ts
        stored: list[SlackFile] = []
        for name, data, mimetype in files or []:
            f = self.ws.new_file(name, None, user.id)
            f.set_content(data)
            if mimetype and not f.mimetype.startswith("image/"):
                f.mimetype = mimetype
            stored.append(f)
        msg = Message(
            channel=chan.id,
            ts=self.ws.clock.next(),
            text=text,
            user=user.id,
            files=stored,
            subtype="file_share" if stored else None,
            thread_ts=root,
        )
        for f in stored:
            f.share(chan, msg.ts, root)
        self.ws.add_message(msg)
        if self.ws.bot_user_id not in chan.members:
            return msg.ts, None
        event = dl.message_event(self.ws, msg, chan)
        installs.shape_files(event, file_shape)
        if file_shape == "tombstone":
            for f in stored:
                del self.ws.files[f.id]
        return msg.ts, await self._deliver_event(event)

    async def mention_bot(
        self, user_id: str, channel_id: str, text: str, thread_ts: str | None = None
    ) -> tuple[str, dl.Delivery | None, dl.Delivery | None]:
        """A person posts a message that mentions the bot (put ``<@BOT>`` in ``text``).

        Like Slack, two events are delivered for it when the bot is in the channel: the
        ``message`` event, then ``app_mention``. Returns (ts, message delivery, mention
        delivery); the deliveries are None when the bot is not a member.
        """
        ts, message = await self.post_user_message(user_id, channel_id, text, thread_ts)
        chan = self._channel(channel_id)
        msg = self.ws.message(chan.id, ts)
        if message is None or msg is None:
            return ts, None, None
        return ts, message, await self._deliver_event(app_mention_event(self.ws, msg, chan))

    async def redeliver(
        self, event_id: str, retry_num: int = 1, reason: str = "http_timeout"
    ) -> dl.Delivery:
        """Send an event again, newly signed, with Slack's retry headers.

        Over Socket Mode the envelope carries ``retry_attempt``/``retry_reason`` instead.
        """
        body = self.events[event_id]
        if self._over_socket():
            return await self._send_envelope(
                "retry", json.loads(body), retry_attempt=retry_num, retry_reason=reason
            )
        headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": reason}
        return await self.send_raw(body, "application/json", extra_headers=headers, kind="retry")

    def last_event_id(self) -> str:
        """The ``event_id`` of the most recent event delivered."""
        return next(reversed(self.events))

    async def _deliver_event(self, event: dict[str, Any]) -> dl.Delivery:
        event_id = f"Ev0EMU{next(self._seq):06d}"
        envelope = dl.event_callback(self.ws, event, event_id)
        installs.retarget(envelope, self.installs.team_fields(str(event.get("channel") or "")))
        body = json.dumps(envelope).encode()
        self.events[event_id] = body
        if self._over_socket():
            return await self._send_envelope("event", json.loads(body))
        return await self.send_raw(body, "application/json", kind="event")

    # -- Socket Mode -----------------------------------------------------------------
    def _over_socket(self) -> bool:
        if self.transport not in ("http", "socket"):
            raise ValueError(f'transport must be "http" or "socket", not {self.transport!r}')
        return self.transport == "socket"

    async def _send_envelope(
        self, kind: str, payload: dict[str, Any], retry_attempt: int = 0, retry_reason: str = ""
    ) -> dl.Delivery:
        if self._runner is None:
            raise RuntimeError("SlackEmulator is not started")
        result = await self.socket.deliver(
            kind, payload, retry_attempt=retry_attempt, retry_reason=retry_reason
        )
        self.deliveries.append(result)
        return result

    async def wait_for_socket(self, within: float = 5.0) -> None:
        """Wait until the app has a Socket Mode connection open."""
        await self.socket.wait_connected(within)

    async def disconnect_socket(
        self, reason: str = "refresh_requested", close_after: float = 1.0
    ) -> None:
        """Send Slack's ``disconnect`` message to the app; close the sockets after a while."""
        await self.socket.disconnect(reason, close_after)

    def _delivers(self) -> bool:
        """Whether deliveries have somewhere to go (a request URL, or Socket Mode)."""
        return self._over_socket() or bool(self.request_url)

    # -- echoes of the bot's own activity --------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.delivery_errors.append(task.exception())  # type: ignore[arg-type]

    def _on_bot_post(self, msg: Message) -> None:
        if self.echo_bot_messages and self._delivers():
            chan = self.ws.channels[msg.channel]
            self._spawn(self._deliver_event(dl.message_event(self.ws, msg, chan)))

    def _on_bot_edit(self, previous: dict[str, Any], msg: Message) -> None:
        if self.echo_bot_messages and self._delivers():
            chan = self.ws.channels[msg.channel]
            event = dl.message_changed_event(self.ws, previous, msg, chan)
            self._spawn(self._deliver_event(event))

    # -- team review (issue 10): user groups, modals, the Home tab ----------------------
    def add_usergroup(self, group_id: str, handle: str, users: list[str]) -> UserGroup:
        """Add a user group (``S…``) with these members."""
        group = UserGroup(group_id, handle, list(users))
        self.ws.usergroups[group_id] = group
        return group

    def mention_group(self, group_id: str) -> str:
        """How Slack escapes a group mention in a command's text: ``<!subteam^S…|@handle>``."""
        return f"<!subteam^{group_id}|@{self.ws.usergroups[group_id].handle}>"

    def mention_user(self, user_id: str) -> str:
        """How Slack escapes a user mention in a command's text: ``<@U…|name>``."""
        return f"<@{user_id}|{self.ws.users[user_id].name}>"

    def mention_channel(self, channel_id: str) -> str:
        """How Slack escapes a channel mention in a command's text: ``<#C…|name>``."""
        return f"<#{channel_id}|{self.ws.channels[channel_id].name}>"

    def open_views(self, user_id: str) -> list[View]:
        """The modals open for a person, oldest first."""
        return [
            v
            for v in self.ws.views.values()
            if v.user == user_id and v.view.get("type") == "modal" and not v.closed
        ]

    def home(self, user_id: str) -> View | None:
        """The Home tab published for a person, if any."""
        return self.ws.home_views.get(user_id)

    async def submit_view(
        self, user_id: str, view_id: str, values: dict[str, dict[str, dict[str, Any]]]
    ) -> dl.Delivery:
        """Press a modal's submit button: deliver ``view_submission`` with ``values`` as the
        view's ``state.values`` (``{block_id: {action_id: {"type": …, "value": …}}}``).

        As in Slack (https://docs.slack.dev/surfaces/modals#handling_submissions), an empty
        200 closes the modal, ``response_action: errors`` keeps it open with the messages
        on their blocks (recorded in ``View.errors``), ``update`` replaces it and ``clear``
        closes it.
        """
        view = self.ws.views[view_id]
        if view.user != user_id or view.closed:
            raise LookupError(f"{user_id} has no open view {view_id}")
        payload_view = view.to_dict(self.ws.team_id, self.ws.app_id)
        payload_view["state"] = {"values": values}
        payload = {
            "type": "view_submission",
            "team": {"id": self.ws.team_id, "domain": self.ws.team_domain},
            "user": dl.user_ref(self.ws.users[user_id], self.ws.team_id),
            "api_app_id": self.ws.app_id,
            "token": dl.VERIFICATION_TOKEN,
            "trigger_id": self._trigger_id(user_id),
            "view": payload_view,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        if self._over_socket():
            result = await self._send_envelope("block_actions", payload)
        else:
            body = urlencode({"payload": json.dumps(payload)}).encode()
            result = await self.send_raw(
                body, "application/x-www-form-urlencoded", kind="view_submission"
            )
        answer = result.json() if result.status == 200 else None
        action = answer.get("response_action") if isinstance(answer, dict) else None
        view.errors = dict(answer.get("errors") or {}) if action == "errors" else {}
        if action == "update" and isinstance(answer.get("view"), dict):
            view.view = self.api.review._check_view(answer["view"], "modal")
        elif result.status == 200 and action in (None, "clear"):
            view.closed = True
        return result

    async def open_app_home(self, user_id: str) -> dl.Delivery:
        """A person opens the app's Home tab: deliver ``app_home_opened``
        (https://docs.slack.dev/reference/events/app_home_opened)."""
        user = self._user(user_id)
        dm = self.ws.open_dm(user.id)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": user.id,
            "channel": dm.id,
            "tab": "home",
            "event_ts": f"{time.time():.6f}",
        }
        home = self.ws.home_views.get(user.id)
        if home is not None:
            event["view"] = home.to_dict(self.ws.team_id, self.ws.app_id)
        return await self._deliver_event(event)

    async def click_home_button(
        self, user_id: str, action_id: str, value: str | None = None
    ) -> dl.Delivery:
        """Click a button on the Home tab published for a person: deliver ``block_actions``
        with the view as container (no channel, no response_url).

        Raises ``LookupError`` when the person has no Home tab or it has no such button.
        """
        user = self._user(user_id)
        home = self.ws.home_views.get(user.id)
        if home is None:
            raise LookupError(f"no Home tab published for {user_id}")
        shown = Message(channel="home", ts=home.id, blocks=home.view.get("blocks") or [])
        block, button = dl.find_button(shown, action_id, value)
        view = home.to_dict(self.ws.team_id, self.ws.app_id)
        payload = dl.view_actions_payload(
            self.ws, user, view, block, button, self._trigger_id(user.id)
        )
        if self._over_socket():
            return await self._send_envelope("block_actions", payload)
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return await self.send_raw(body, "application/x-www-form-urlencoded", kind="block_actions")
