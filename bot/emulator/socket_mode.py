"""Slack's Socket Mode on loopback: connection tickets, WebSockets, envelopes and acks.

Follows Slack's documented protocol (https://api.slack.com/apis/connections/socket-implement
and https://api.slack.com/apis/socket-mode):

* The app calls ``apps.connections.open`` with its app-level token (``xapp-…``, scope
  ``connections:write``) and gets ``{"ok": true, "url": "wss://…"}``, a temporary WebSocket
  URL. Here the URL is ``ws://127.0.0.1:PORT/socket-mode/<ticket>``; a ticket is good for
  one connection, so every (re)connection asks for a new URL, as the SDKs do.
* On connect Slack sends ``{"type": "hello", "num_connections", "debug_info",
  "connection_info": {"app_id"}}``.
* Each delivery is an envelope ``{"envelope_id", "type", "payload",
  "accepts_response_payload"}`` whose ``type`` is ``events_api``, ``slash_commands`` or
  ``interactive`` and whose ``payload`` is what the HTTP delivery would carry (the slash
  command's form fields as a JSON object). Events API envelopes also carry
  ``retry_attempt`` and ``retry_reason``.
* The app acknowledges with ``{"envelope_id": …}``, plus a ``"payload"`` when the envelope
  ``accepts_response_payload`` (a slash command's ack payload is its immediate reply).
  Slack expects the ack within 3 seconds.
* An app may hold up to 10 connections; each envelope goes to one of them.
* Before Slack closes a connection it sends ``{"type": "disconnect", "reason":
  "warning" | "refresh_requested" | "link_disabled", "debug_info": {…}}``; the app is
  expected to open a new connection (the SDKs do that on ``disconnect``).
* WebSocket pings are answered with pongs carrying the same data (slack_sdk measures its
  connection health with ``sdk-ping-pong:<time>`` pings).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .delivery import Delivery

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 10
"""Slack's limit of simultaneous Socket Mode connections per app."""

TICKET_TTL_SECONDS = 30.0
"""How long an unused ``apps.connections.open`` URL stays valid here."""

ENVELOPE_TYPES = {
    "command": "slash_commands",
    "block_actions": "interactive",
    "event": "events_api",
    "retry": "events_api",
}
"""The envelope ``type`` for each kind of delivery the emulator makes."""

DISCONNECT_REASONS = ("warning", "refresh_requested", "link_disabled")


@dataclass
class SocketConnection:
    """One open Socket Mode WebSocket (the app's side of it is a slack_sdk client)."""

    id: int
    ws: web.WebSocketResponse
    opened_at: float = field(default_factory=time.time)


class SocketModeGateway:
    """The Socket Mode side of :class:`~bot.emulator.SlackEmulator`.

    ``issue_url`` answers ``apps.connections.open``; ``handle`` is the WebSocket endpoint;
    ``deliver`` sends an envelope and waits for its acknowledgement.
    """

    def __init__(self, app_id: str, ack_timeout: float = 3.0) -> None:
        self.app_id = app_id
        self.ack_timeout = ack_timeout
        self.received: list[Any] = []
        """Every message the app sent over any connection (parsed JSON, or the raw text)."""
        self.envelopes: list[dict[str, Any]] = []
        """Every envelope sent to the app, oldest first."""
        self.connections_opened = 0
        """How many WebSocket connections were accepted so far (reconnections count)."""
        self._tickets: dict[str, float] = {}
        self._connections: list[SocketConnection] = []
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._changed = asyncio.Condition()

    # -- connections -----------------------------------------------------------------
    def issue_url(self, base_ws_url: str) -> str:
        """A new one-time WebSocket URL (what ``apps.connections.open`` returns)."""
        now = time.monotonic()
        for ticket, issued in list(self._tickets.items()):
            if now - issued > TICKET_TTL_SECONDS:
                del self._tickets[ticket]
        ticket = secrets.token_urlsafe(16)
        self._tickets[ticket] = now
        return f"{base_ws_url}socket-mode/{ticket}"

    @property
    def num_connections(self) -> int:
        """Open connections right now."""
        return sum(1 for c in self._connections if not c.ws.closed)

    @property
    def connected(self) -> bool:
        """True when at least one connection is open."""
        return self.num_connections > 0

    async def wait_connected(self, within: float = 5.0, count: int = 1) -> None:
        """Wait until ``count`` connections are open; ``TimeoutError`` otherwise."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: self.num_connections >= count)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The WebSocket endpoint ``/socket-mode/{ticket}``: hello, then acks until closed."""
        ticket = request.match_info["ticket"]
        issued = self._tickets.pop(ticket, None)
        if issued is None or time.monotonic() - issued > TICKET_TTL_SECONDS:
            return web.Response(status=401, text="invalid_ticket")
        if self.num_connections >= MAX_CONNECTIONS:
            return web.Response(status=429, text="too_many_websockets")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        conn = SocketConnection(next(self._ids), ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": self.num_connections + 1,
                "debug_info": {
                    "host": "emulator-applink-1",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.app_id},
            }
        )
        self._connections.append(conn)
        self.connections_opened += 1
        await self._notify()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_text(msg.data)
        finally:
            self._connections.remove(conn)
            await self._notify()
        return ws

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _on_text(self, data: str) -> None:
        try:
            message: Any = json.loads(data)
        except ValueError:
            self.received.append(data)
            return
        self.received.append(message)
        if not isinstance(message, dict):
            return
        future = self._pending.get(str(message.get("envelope_id")))
        if future is not None and not future.done():
            future.set_result(message)

    async def disconnect(self, reason: str = "refresh_requested", close_after: float = 1.0) -> None:
        """Send Slack's ``disconnect`` message on every connection, then close them.

        The app should open a new connection meanwhile (slack_sdk does on ``disconnect``).
        """
        if reason not in DISCONNECT_REASONS:
            raise ValueError(f"reason must be one of {DISCONNECT_REASONS}")
        conns = [c for c in self._connections if not c.ws.closed]
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "emulator"}}
        for conn in conns:
            with contextlib.suppress(ConnectionError):
                await conn.ws.send_json(message)

        async def close_later() -> None:
            await asyncio.sleep(close_after)
            for conn in conns:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=reason.encode())

        task = asyncio.get_running_loop().create_task(close_later())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Close every connection (server shutting down)."""
        for task in list(self._tasks):
            task.cancel()
        for future in self._pending.values():
            future.cancel()
        for conn in list(self._connections):
            await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # -- deliveries ------------------------------------------------------------------
    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        connect_wait: float = 1.0,
    ) -> Delivery:
        """Send ``payload`` in an envelope on the newest connection; wait for the ack.

        Returns a :class:`Delivery` shaped like the HTTP one: status 200 and the ack's
        ``payload`` as JSON text when acknowledged within ``ack_timeout`` seconds; status 0
        with ``error`` set when there is no connection or no timely ack.
        """
        envelope_type = ENVELOPE_TYPES[kind]
        envelope_id = f"{next(self._ids):04d}-{secrets.token_hex(8)}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type == "slash_commands",
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        body = json.dumps(envelope).encode()
        if not self.connected:
            with contextlib.suppress(TimeoutError):
                await self.wait_connected(within=connect_wait)
        conns = [c for c in self._connections if not c.ws.closed]
        if not conns:
            return Delivery(0, "", {}, kind, body, error="no Socket Mode connection")
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[envelope_id] = future
        self.envelopes.append(envelope)
        try:
            await conns[-1].ws.send_str(body.decode())
            async with asyncio.timeout(self.ack_timeout):
                ack = await future
        except TimeoutError:
            error = f"no acknowledgement within {self.ack_timeout:g}s"
            return Delivery(0, "", {}, kind, body, error=error)
        except ConnectionError as exc:
            return Delivery(0, "", {}, kind, body, error=f"connection lost: {exc}")
        finally:
            self._pending.pop(envelope_id, None)
        reply = ack.get("payload")
        if reply is None:
            return Delivery(200, "", {}, kind, body)
        return Delivery(200, json.dumps(reply), {"Content-Type": "application/json"}, kind, body)
