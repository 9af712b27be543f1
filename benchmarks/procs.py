"""Processes under measurement: spawned with `python -m`, their CPU time and resident
memory read from `/proc` (Linux; the whole process, every thread included)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (all threads).

    Source: proc(5), `/proc/[pid]/stat` fields 14 (utime) and 15 (stime), in clock ticks.
    """
    after_name = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of process `pid` in MB (MiB), from `VmRSS` of `/proc/[pid]/status`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LookupError(f"no VmRSS for process {pid}")


class Proc:
    """A spawned `python -m <module> …` with its output in `<workdir>/<name>.log`."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path, url: str) -> None:
        self.name = name
        self.proc = proc
        self.log = log
        self.url = url
        """Where it serves HTTP, e.g. ``http://127.0.0.1:PORT``."""

    @classmethod
    async def spawn(
        cls, name: str, module: str, args: list[str], env: dict[str, str], workdir: Path, url: str
    ) -> Proc:
        """Start `python -m module *args` in `workdir` with `env` added to this environment
        (and the repository on PYTHONPATH, so `benchmarks` imports from any folder)."""
        log = workdir / f"{name}.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                env={**os.environ, "PYTHONPATH": str(REPO), **env},
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                cwd=workdir,
            )
        return cls(name, proc, log, url)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        """CPU seconds used so far (see :func:`cpu_seconds`)."""
        return cpu_seconds(self.pid)

    def rss(self) -> float:
        """Resident memory now, MB."""
        return rss_mb(self.pid)

    def tail(self, chars: int = 3000) -> str:
        """The end of its output, for error messages."""
        return self.log.read_text(errors="replace")[-chars:]

    async def wait_http(self, path: str, within: float = 60.0) -> None:
        """Wait until GET `path` answers below 500; RuntimeError (with the log) if the
        process exits or `within` seconds pass."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
                try:
                    async with http.get(self.url + path) as res:
                        if res.status < 500:
                            return
                except (aiohttp.ClientError, TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready after {within} s:\n{self.tail()}")
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
