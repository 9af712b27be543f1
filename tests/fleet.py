"""The bot as real processes for multi-process tests and benchmarks (issue 14): `python -m
bot …` subprocesses with one environment, their output in log files, and their health.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Fleet:
    """The bot's processes: `python -m bot …` with one environment, output in log files."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def spawn(self, name: str, *args: str, **env: str) -> asyncio.subprocess.Process:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env={**os.environ, **self.env, **env},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            cwd=self.tmp,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def logs(self) -> str:
        return "\n".join(
            f"--- {name} ---\n" + (self.tmp / f"{name}.log").read_text(errors="replace")[-3000:]
            for name in self.procs
        )

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def healthy(port: int) -> bool:
    """Whether the process on `port` answers GET /healthz with 200."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as res,
        ):
            return res.status == 200
    except aiohttp.ClientError:
        return False
