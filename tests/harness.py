"""A running bot on loopback: the Slack stand-in, the aiohttp server, a real SQLite file.

Tests drive it the way Slack does (signed deliveries) and read what a person in
the channel sees (the stand-in's messages and files) and what is stored.
`Harness(tmp, socket_mode=True)` runs the same bot over Socket Mode instead: the bot
opens a WebSocket to the stand-in with an app-level token and the deliveries arrive
as envelopes on it (no signing secret, no `POST /slack/events`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import ack_runner
from bot.app import Runtime, bound_port, build_runtime, start_server, start_socket_mode
from bot.emulator import Message, SlackEmulator
from core import db
from core.config import Settings, load_settings
from core.models import GenerationRow, SessionRow
from core.providers.base import ImageProvider

CHANNEL = "C0DESIGN"
ALICE = "U0ALICE"
BOB = "U0BOB"


class Harness:
    """One bot process (restartable) talking to one Slack stand-in."""

    def __init__(
        self,
        tmp: Path,
        provider: ImageProvider | None = None,
        *,
        socket_mode: bool = False,
        **settings: Any,
    ) -> None:
        self.tmp = tmp
        self.signing_secret = secrets.token_hex(16)
        self.bot_token = f"xoxb-test-{secrets.token_hex(6)}"
        self.socket_mode = socket_mode
        self.app_token = f"xapp-1-A0IMAGINE-{secrets.token_hex(6)}" if socket_mode else None
        self.emulator = SlackEmulator(
            self.signing_secret,
            self.bot_token,
            app_token=self.app_token,
            transport="socket" if socket_mode else "http",
        )
        self.provider = provider
        self.overrides = settings
        self.runtime: Runtime | None = None
        self.runner: web.AppRunner | None = None
        self.settings: Settings | None = None
        self._db: AsyncEngine | None = None
        self._sm: async_sessionmaker[AsyncSession] | None = None

    async def start(self) -> Harness:
        """Start the stand-in (once) and a bot process; migrate the database."""
        if self.emulator.port == 0:
            await self.emulator.start()
        values: dict[str, Any] = {
            "slack_bot_token": self.bot_token,
            "slack_signing_secret": self.signing_secret,
            "slack_api_url": self.emulator.api_url,
            "database_url": f"sqlite+aiosqlite:///{self.tmp}/imagine.db",
            "image_store_dir": self.tmp / "images",
            "local_render_seconds": 0.5,
        }
        if self.socket_mode:
            del values["slack_signing_secret"]  # Socket Mode has no signatures
            values["slack_app_token"] = self.app_token
        values.update(self.overrides)
        self.settings = load_settings(**values)
        await db.upgrade_to_head(self.settings.database_url)
        self.runtime = build_runtime(
            self.settings, provider=self.provider, socket_mode=self.socket_mode
        )
        self.provider = self.runtime.provider
        if self.socket_mode:
            opened = self.emulator.socket.connections_opened
            self.runner = await start_socket_mode(self.runtime, "127.0.0.1", 0)
            await self.emulator.wait_for(lambda: self.emulator.socket.connections_opened > opened)
            return self
        self.runner = await start_server(self.runtime, "127.0.0.1", 0)
        self.emulator.request_url = f"http://127.0.0.1:{bound_port(self.runner)}/slack/events"
        return self

    async def stop(self, *, crash: bool = False) -> None:
        """Stop the bot process. `crash=True` keeps its leases, as a killed process would."""
        assert self.runtime and self.runner
        if crash:
            await self.runtime.jobs.stop(release=False)
        await self.runner.cleanup()
        self.runtime = self.runner = None

    async def close(self) -> None:
        """Stop everything."""
        if self.runner:
            await self.stop()
        await self.emulator.stop()
        if self._db:
            await self._db.dispose()

    @property
    def sm(self) -> async_sessionmaker[AsyncSession]:
        """The test's own connection to the bot's database (works while the bot is down)."""
        if self._sm is None:
            assert self.settings
            self._db = db.create_engine(self.settings.database_url)
            self._sm = db.sessionmaker(self._db)
        return self._sm

    async def imagine(self, text: str, user: str = ALICE, channel: str = CHANNEL):  # type: ignore[no-untyped-def]
        """Deliver a signed `/imagine text`; returns the bot's HTTP answer (the ack) once
        the listener has also finished what it does after the ack (on SQLite the request
        is stored before the ack and its session started after it, core.intake)."""
        answer = await self.emulator.send_slash_command(user, channel, text)
        await self.listeners_done()
        return answer

    async def listeners_done(self, within: float = 20.0) -> None:
        """Wait until no listener of this process is still running after its ack."""
        deadline = time.monotonic() + within
        while ack_runner._running:
            assert time.monotonic() < deadline, "a listener is still running"
            await asyncio.sleep(0.01)

    async def ask(self, text: str, user: str = ALICE, channel: str = CHANNEL) -> str:
        """What `/imagine text` tells `user` privately: the ack's text, or the message the
        bot sent through the command's response_url after an empty ack ("" when queued).
        Fails the test when the ack is not a 200."""
        before = len(self.emulator.ephemerals)
        answer = await self.imagine(text, user=user, channel=channel)
        assert answer.status == 200, answer
        body = answer.json()
        if body:
            return str(body.get("text", ""))
        later = [
            e.text
            for e in self.emulator.ephemerals[before:]
            if e.user == user and e.source == "response_url"
        ]
        return "\n".join(later)

    async def generation(self, generation_id: int) -> GenerationRow:
        async with self.sm() as s:
            row = await s.get(GenerationRow, generation_id)
            assert row is not None
            return row

    async def generations(self) -> list[GenerationRow]:
        async with self.sm() as s:
            return list((await s.scalars(select(GenerationRow).order_by(GenerationRow.id))).all())

    async def count(self, model: type) -> int:
        async with self.sm() as s:
            return int(await s.scalar(select(func.count()).select_from(model)) or 0)

    async def wait_row(
        self,
        generation_id: int,
        predicate: Callable[[GenerationRow], bool],
        within: float = 20.0,
    ) -> GenerationRow:
        """Wait until the generation row satisfies `predicate`; fail the test otherwise."""
        deadline = time.monotonic() + within
        while True:
            row = await self.generation(generation_id)
            if predicate(row):
                return row
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"generation {generation_id} stuck in {row.state} "
                    f"(attempts {row.attempts}, error {row.error!r})"
                )
            await asyncio.sleep(0.05)

    async def wait_state(
        self, generation_id: int, *states: str, within: float = 20.0
    ) -> GenerationRow:
        """Wait until the generation is in one of `states`."""
        return await self.wait_row(generation_id, lambda row: row.state in states, within)

    async def until_nothing_stored(self, within: float = 5.0) -> None:
        """Wait until no session and no generation is left; fail the test otherwise."""
        deadline = time.monotonic() + within
        while await self.count(SessionRow) or await self.count(GenerationRow):
            if time.monotonic() > deadline:
                raise AssertionError("a session or generation was left behind")
            await asyncio.sleep(0.05)

    async def wait_generations(self, count: int, within: float = 10.0) -> list[GenerationRow]:
        """Wait until `count` generations exist; return them in id order."""
        deadline = time.monotonic() + within
        while len(rows := await self.generations()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} generations, expected {count}")
            await asyncio.sleep(0.05)
        return rows

    async def thread_of(self, generation_id: int, within: float = 20.0) -> str:
        """The thread of the generation's session, once its root post is recorded (a job is
        submitted before its thread opens, so a running one may not have it yet)."""
        deadline = time.monotonic() + within
        while True:
            row = await self.generation(generation_id)
            async with self.sm() as s:
                session = await s.get(SessionRow, row.session_id)
            if session is not None and session.thread_ts:
                return session.thread_ts
            if time.monotonic() > deadline:
                raise AssertionError(f"generation {generation_id} has no thread")
            await asyncio.sleep(0.05)

    def thread(self, thread_ts: str, channel: str = CHANNEL) -> list[Message]:
        return self.emulator.replies(channel, thread_ts)


def buttons(message: Message) -> list[tuple[str, str]]:
    """(action_id, value) of every button in a message."""
    found = []
    for block in message.blocks:
        elements = block.get("elements", []) if block.get("type") == "actions" else []
        if block.get("type") == "section" and block.get("accessory"):
            elements = [block["accessory"]]
        found += [(e["action_id"], e.get("value", "")) for e in elements if e["type"] == "button"]
    return found


def block_text(message: Message) -> str:
    """All text of a message's blocks, joined."""
    parts = [message.text]
    for block in message.blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            if isinstance(element, dict) and "text" in element:
                text = element["text"]
                parts.append(text["text"] if isinstance(text, dict) else text)
    return "\n".join(parts)
