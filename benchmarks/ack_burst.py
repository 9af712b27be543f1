"""Ack latency of a burst of `/imagine`: the bot against a bare Bolt app that only acks.

    python benchmarks/ack_burst.py [--bursts 100 300] [--rounds 3] [--no-engine]

Each round starts, for each burst size, a bare Bolt app and the bot (`imagine-bot serve`
on a fresh SQLite file, local provider, `LOCAL_RENDER_SECONDS=0`, job engine on unless
`--no-engine`) as their own processes on loopback, warms each with a few commands, then
sends the burst: N signed slash-command requests at once (Slack's signing,
https://api.slack.com/authentication/verifying-requests-from-slack), each on its own TCP
connection, and records every request's time to the HTTP answer (the ack). The Slack
stand-in (`bot.emulator`) answers the bot's Web API calls from a third process. It prints
p50 / p99 / max in ms for both and their ratios (bot / bare); ratios taken in the same run
are what to compare on a busy machine.

Self-contained (stdlib, aiohttp, slack_bolt and this repository's stand-in) so the
benchmark suite can import `run_burst` / `Servers` or call `main`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = "C0BENCH"
WARM_UP = 5
USERS = 300  # one person per request of a burst, so no per-person rule refuses any


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _user(i: int) -> str:
    return f"U0B{i:05d}"


# -- the processes ------------------------------------------------------------------------


def _stand_in(port: int, secret: str, token: str) -> None:
    """Run the Slack stand-in on `port` until killed (the bot's Web API calls land here)."""
    sys.path.insert(0, str(ROOT))
    from bot.emulator import SlackEmulator

    async def serve() -> None:
        emu = SlackEmulator(secret, token, share_delay=0.0)
        for i in range(USERS):
            emu.add_user(_user(i), f"bench{i}")
        emu.add_channel(CHANNEL, "bench", members=[_user(i) for i in range(USERS)])
        await emu.start(port=port)
        await asyncio.Event().wait()

    asyncio.run(serve())


def _bare(port: int, secret: str, token: str, api_url: str) -> None:
    """A Bolt app that only acks `/imagine`, served like the bot (aiohttp + Bolt's adapter,
    the same signing check, `process_before_response=False`)."""
    from aiohttp import web
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp

    bolt = AsyncApp(token=token, signing_secret=secret, process_before_response=False)
    bolt.client.base_url = api_url

    @bolt.command("/imagine")
    async def imagine(ack):  # type: ignore[no-untyped-def]
        await ack()

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/slack/events", events)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@dataclass
class Servers:
    """The secrets and the stand-in shared by the bare app and the bot of one run."""

    secret: str
    token: str
    api_url: str
    workdir: Path
    profile: Path | None = None

    def bot_command(self, port: int, db_file: Path, engine: bool) -> tuple[list[str], dict]:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": self.token,
            "SLACK_SIGNING_SECRET": self.secret,
            "SLACK_API_URL": self.api_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{db_file}",
            "IMAGE_STORE_DIR": str(db_file.parent / "images"),
            "IMAGE_PROVIDER": "local",
            "LOCAL_RENDER_SECONDS": "0",
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
        args = [sys.executable, "-m", "bot", "serve"] + ([] if engine else ["--no-worker"])
        if self.profile:  # the whole bot process under cProfile, written when it stops
            args[1:1] = ["-m", "cProfile", "-o", str(self.profile / f"{db_file.parent.name}.prof")]
        return args, env

    def bare_command(self, port: int) -> tuple[list[str], dict]:
        args = [sys.executable, __file__, "--bare", str(port), self.secret, self.token]
        return [*args, self.api_url], dict(os.environ)


@asynccontextmanager
async def _process(args: list[str], env: dict, health: str) -> AsyncIterator[int]:
    """Run a server process until the block ends; waits for `health` to answer 200.
    Yields its pid."""
    proc = await asyncio.create_subprocess_exec(*args, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(health) as res:
                        if res.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[:4]} did not start")
                await asyncio.sleep(0.1)
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# -- the burst ----------------------------------------------------------------------------


def _signed(secret: str, body: bytes) -> dict[str, str]:
    import hashlib
    import hmac

    ts = str(int(time.time()))
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
    }


def _form(i: int, label: str, api_url: str) -> bytes:
    """A slash command's form fields as Slack sends them (one distinct prompt per request)."""
    user = _user(i % USERS)
    return urlencode(
        {
            "token": "benchVerificationToken",
            "team_id": "T0TEAM",
            "team_domain": "imagine-dev",
            "channel_id": CHANNEL,
            "channel_name": "bench",
            "user_id": user,
            "user_name": f"bench{i % USERS}",
            "command": "/imagine",
            "text": f"a lighthouse at dusk, take {label}-{i}",
            "api_app_id": "A0IMAGINE",
            "is_enterprise_install": "false",
            "response_url": f"{api_url.removesuffix('api/')}response/{label}-{i}",
            "trigger_id": f"{i}.{secrets.token_hex(4)}",
        }
    ).encode()


async def run_burst(url: str, secret: str, bodies: list[bytes]) -> tuple[list[float], int]:
    """POST every body to `url` at once, each on its own connection; returns each request's
    seconds to its answer and how many answers were not HTTP 200 (Bolt answers 404 when a
    listener did not ack within 3 s)."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(body: bytes) -> tuple[float, bool]:
            headers = _signed(secret, body)
            start = time.perf_counter()
            async with http.post(url, data=body, headers=headers) as res:
                await res.read()
                return time.perf_counter() - start, res.status == 200

        answers = await asyncio.gather(*(one(b) for b in bodies))
        return [took for took, _ in answers], sum(1 for _, ok in answers if not ok)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Figures:
    """p50 / p99 / max of one burst, milliseconds, and how many answers were not 200."""

    p50: float
    p99: float
    worst: float
    failed: int = 0
    cpu_ms: float = 0.0  # the server process's CPU time during the burst

    @classmethod
    def of(cls, seconds: list[float], failed: int = 0, cpu_ms: float = 0.0) -> Figures:
        ms = [s * 1000 for s in seconds]
        return cls(statistics.median(ms), _quantile(ms, 0.99), max(ms), failed, cpu_ms)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _until_posted(db_file: Path, count: int, within: float = 120.0) -> None:
    """Wait until `count` generations of the bot's database are in a final state (posted,
    failed or cancelled): their Slack posts, paced at Slack's per-channel rate, are done."""

    def finished() -> int:
        with contextlib.closing(sqlite3.connect(db_file, timeout=30)) as conn:
            (n,) = conn.execute(
                "SELECT count(*) FROM generations WHERE state IN ('posted', 'failed', 'cancelled')"
            ).fetchone()
        return int(n)

    deadline = time.monotonic() + within
    while await asyncio.to_thread(finished) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {count} warm-up generations were not posted in {within} s")
        await asyncio.sleep(0.25)


async def measure(servers: Servers, size: int, label: str, *, engine: bool) -> dict[str, Figures]:
    """One burst of `size` against a fresh bare app and a fresh bot: figures of each."""
    out: dict[str, Figures] = {}
    for name in ("bare", "bot"):
        port = _free_port()
        if name == "bare":
            args, env = servers.bare_command(port)
        else:
            db_file = servers.workdir / f"{label}-{size}" / "imagine.db"
            args, env = servers.bot_command(port, db_file, engine)
        url = f"http://127.0.0.1:{port}/slack/events"
        async with _process(args, env, f"http://127.0.0.1:{port}/healthz") as pid:
            for i in range(WARM_UP):
                body = _form(USERS - 1 - i, f"{label}-{size}-warm", servers.api_url)
                await run_burst(url, servers.secret, [body])
            if name == "bot" and engine:  # the warm-up generations posted: engine idle again
                await _until_posted(db_file, WARM_UP)
            await asyncio.sleep(1.0)
            bodies = [_form(i, f"{label}-{size}", servers.api_url) for i in range(size)]
            cpu = _cpu_seconds(pid)
            seconds, failed = await run_burst(url, servers.secret, bodies)
            out[name] = Figures.of(seconds, failed, (_cpu_seconds(pid) - cpu) * 1000)
    return out


async def main_async(
    bursts: list[int], rounds: int, engine: bool, profile: Path | None = None
) -> None:
    secret, token = secrets.token_hex(16), f"xoxb-bench-{secrets.token_hex(6)}"
    stand_in_port = _free_port()
    api_url = f"http://127.0.0.1:{stand_in_port}/api/"
    with tempfile.TemporaryDirectory(prefix="ack-burst-") as tmp:
        servers = Servers(secret, token, api_url, Path(tmp), profile)
        stand_in = [sys.executable, __file__, "--stand-in", str(stand_in_port), secret, token]
        health = f"{api_url}api.test"
        async with _process(stand_in, dict(os.environ), health):
            print(f"engine {'on' if engine else 'off'}; figures in ms; ratio = bot / bare")
            print(
                "burst round   bare p50/p99/max  (cpu)    bot p50/p99/max  (cpu)    ratio p50/p99"
            )
            for size in bursts:
                for r in range(rounds):
                    got = await measure(servers, size, f"r{r}", engine=engine)
                    bare, bot = got["bare"], got["bot"]
                    failed = bool(bare.failed or bot.failed)
                    print(
                        f"{size:5d} {r + 1:5d}   {bare.p50:5.0f}/{bare.p99:5.0f}/{bare.worst:5.0f}"
                        f" ({bare.cpu_ms:4.0f})"
                        f"  {bot.p50:5.0f}/{bot.p99:5.0f}/{bot.worst:5.0f} ({bot.cpu_ms:4.0f})"
                        f"    x{bot.p50 / bare.p50:4.2f} / x{bot.p99 / bare.p99:4.2f}"
                        + (f"   not acked: bare {bare.failed}, bot {bot.failed}" * failed),
                        flush=True,
                    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--stand-in":
        return _stand_in(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        return _bare(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bursts", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-engine", action="store_true", help="serve --no-worker")
    parser.add_argument("--profile", type=Path, help="write the bot's cProfile here (a folder)")
    args = parser.parse_args()
    asyncio.run(main_async(args.bursts, args.rounds, not args.no_engine, args.profile))


if __name__ == "__main__":
    main()
