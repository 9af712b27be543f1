"""The stage of one measure: the Slack stand-in (and the timed ToAPIs fake) in this
process, the bot (or the bare Bolt app) as a subprocess, the load from another process."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from bot.emulator import ApiCall, SlackEmulator
from bot.emulator.delivery import slash_command_form
from tests.harness import ALICE, CHANNEL

from . import loadgen
from .procs import Proc, free_port
from .timed_toapis import API_KEY, TimedToAPIs

UPLOAD_DONE = "files.completeUploadExternal"  # the call that shares an image in the thread
# Commands come from this many channels in turn (CHANNEL and C0BENCH01…): a burst from a
# workspace, not one channel, since Slack paces chat.postMessage per channel (about 1 a
# second, https://docs.slack.dev/apis/web-api/rate-limits) and a stand-in that enforces it
# would otherwise make one channel's queue the figure.
CHANNELS = 20


class Stage:
    """Stand-in, fakes and processes of one measure; `async with Stage(workdir) as stage`.

    `toapis_duration` (prompt → seconds) starts a :class:`TimedToAPIs` for the ToAPIs
    provider; without it the bot runs the local provider.
    """

    def __init__(
        self, workdir: Path, toapis_duration: Callable[[str], float] | None = None
    ) -> None:
        self.workdir = workdir
        self.secret = secrets.token_hex(16)
        self.token = f"xoxb-bench-{secrets.token_hex(6)}"
        self.emulator = SlackEmulator(self.secret, self.token)
        self.toapis = TimedToAPIs(toapis_duration) if toapis_duration else None
        self.procs: list[Proc] = []
        self._count = 0
        self._toapis_url = ""
        self.channels = [CHANNEL, *(f"C0BENCH{i:02d}" for i in range(1, CHANNELS))]

    async def __aenter__(self) -> Stage:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for i, channel in enumerate(self.channels[1:], start=1):
            self.emulator.add_channel(channel, f"bench-{i}", members=[ALICE], bot_member=True)
        await self.emulator.start()
        if self.toapis is not None:
            self._toapis_url = await self.toapis.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            await proc.stop()
        if self.toapis is not None:
            await self.toapis.stop()
        await self.emulator.stop()

    def _env(self, port: int) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": self.token,
            "SLACK_SIGNING_SECRET": self.secret,
            "SLACK_API_URL": self.emulator.api_url,
            "PORT": str(port),
        }

    async def start_bot(self, **env: str) -> Proc:
        """`imagine-bot serve` (with the lag probe, see :mod:`benchmarks.probe`) on its own
        SQLite file and image folder, `env` added (e.g. PROVIDER_CONCURRENCY="2"); returns
        once `/healthz` answers. Its lag samples go to `<workdir>/<name>.lag`."""
        self._count += 1
        name = f"bot{self._count}"
        folder = self.workdir / name
        folder.mkdir()
        port = free_port()
        settings = {
            **self._env(port),
            "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/imagine.db",
            "IMAGE_STORE_DIR": str(folder / "images"),
            "LOG_LEVEL": "WARNING",
            "BENCH_LAG_FILE": str(self.workdir / f"{name}.lag"),
        }
        if self.toapis is not None:
            settings |= {
                "IMAGE_PROVIDER": "toapis",
                "TOAPIS_API_KEY": API_KEY,
                "TOAPIS_BASE_URL": self._toapis_url,
            }
        url = f"http://127.0.0.1:{port}"
        proc = await Proc.spawn(
            name, "benchmarks.probe", ["serve"], settings | env, self.workdir, url
        )
        self.procs.append(proc)
        await proc.wait_http("/healthz")
        return proc

    def lag_file(self, proc: Proc) -> Path:
        """Where `proc`'s event-loop lag samples are written."""
        return self.workdir / f"{proc.name}.lag"

    async def start_bare_bolt(self) -> Proc:
        """The reference app (:mod:`benchmarks.bare_bolt`); returns once it serves HTTP."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = await Proc.spawn(
            "bare-bolt", "benchmarks.bare_bolt", [], self._env(port), self.workdir, url
        )
        self.procs.append(proc)
        await proc.wait_http("/")
        return proc

    def imagine_bodies(self, texts: list[str]) -> list[str]:
        """Form bodies of `/imagine <text>` from ALICE in each of `channels` in turn, each
        with its own trigger id (their response URLs are not registered at the stand-in: the happy
        path of `/imagine` does not use them)."""
        ws = self.emulator.ws
        user = ws.users[ALICE]
        bodies = []
        for i, text in enumerate(texts):
            channel = ws.channels[self.channels[i % len(self.channels)]]
            response_url = f"{self.emulator.base_url}response/bench{i:06d}"
            trigger = f"{i}.{int(time.time())}.bench{secrets.token_hex(4)}"
            form = slash_command_form(ws, user, channel, "/imagine", text, response_url, trigger)
            bodies.append(urlencode(form))
        return bodies

    async def imagine(
        self, proc: Proc, texts: list[str], concurrency: int | None = None
    ) -> loadgen.Burst:
        """Send `/imagine <text>` for each text to `proc`, all at once (or `concurrency` at
        a time), from the load process."""
        bodies = self.imagine_bodies(texts)
        return await loadgen.send(proc.url + "/slack/events", self.secret, bodies, concurrency)

    def posts(self, since: int = 0) -> list[ApiCall]:
        """Images shared in threads (successful `files.completeUploadExternal` calls) among
        the stand-in's calls from index `since` on."""
        return [c for c in self.emulator.calls[since:] if c.method == UPLOAD_DONE and c.ok]

    async def quiet(self, seconds: float, within: float) -> None:
        """Wait until the stand-in has had no Web API call for `seconds`; raises
        RuntimeError when that takes longer than `within` seconds."""
        count, since = len(self.emulator.calls), time.monotonic()
        deadline = since + within
        while time.monotonic() - since < seconds:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Slack stand-in was not quiet for {seconds} s")
            await asyncio.sleep(0.1)
            if len(self.emulator.calls) != count:
                count, since = len(self.emulator.calls), time.monotonic()

    async def until(self, condition: Callable[[], bool], within: float) -> bool:
        """Wait (checking every 0.2 s) until `condition()`; False after `within` seconds."""
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)
        return True
