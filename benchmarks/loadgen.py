"""Signed slash-command bursts sent from a separate process, as Slack would send them.

The runner writes a spec (JSON: `url`, `secret`, `bodies`, `concurrency`) and runs
`python -m benchmarks.loadgen SPEC OUT`; this process signs each body when it sends it
(https://api.slack.com/authentication/verifying-requests-from-slack, via
:func:`bot.emulator.delivery.signed_headers`), POSTs them all at once (or at most
`concurrency` at a time) on fresh loopback connections, and writes to OUT, per request,
`[sent, answered, status]` with `time.monotonic()` times (the same clock in every process
on Linux) and status 0 for a connection error or a timeout (30 s). A separate process
keeps the stand-in's own work (the bot's Web API calls) out of the latencies.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.emulator.delivery import signed_headers

REPO = Path(__file__).resolve().parent.parent

FORM = "application/x-www-form-urlencoded"


@dataclass
class Burst:
    """The answers to one burst: per request `sent`/`answered` (monotonic seconds) and the
    HTTP `status` (0: no answer)."""

    sent: list[float]
    answered: list[float]
    statuses: list[int]

    @property
    def started(self) -> float:
        """When the first request was sent (monotonic seconds)."""
        return min(self.sent)

    @property
    def latencies_ms(self) -> list[float]:
        """Milliseconds from sending to the full answer, answered requests only."""
        answers = zip(self.sent, self.answered, self.statuses, strict=True)
        return [(a - s) * 1000 for s, a, status in answers if status]

    @property
    def refusals(self) -> str:
        """The answers other than 200, e.g. "404×3, no answer×1" ("" when none).

        Bolt answers 404 when a listener has not acked within 3 s (Slack's limit)."""
        counts = Counter(s or "no answer" for s in self.statuses if s != 200)
        return ", ".join(f"{status}×{n}" for status, n in counts.most_common())

    @property
    def failed(self) -> int:
        """Requests not answered with 200."""
        return sum(1 for status in self.statuses if status != 200)


def _write(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


async def send(url: str, secret: str, bodies: list[str], concurrency: int | None = None) -> Burst:
    """Run the load process for these bodies and return its answers."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        spec, out = Path(tmp, "spec.json"), Path(tmp, "out.json")
        _write(spec, {"url": url, "secret": secret, "bodies": bodies, "concurrency": concurrency})
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            str(spec),
            str(out),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if await proc.wait() != 0:
            raise RuntimeError(f"the load process failed (exit {proc.returncode})")
        rows = _read(out)
    return Burst([r[0] for r in rows], [r[1] for r in rows], [int(r[2]) for r in rows])


async def _fire(spec: dict) -> list[list[float]]:
    url, secret, bodies = spec["url"], spec["secret"], spec["bodies"]
    gate = asyncio.Semaphore(spec.get("concurrency") or len(bodies))
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(body: str) -> list[float]:
            async with gate:
                data = body.encode()
                sent = time.monotonic()
                try:
                    async with http.post(
                        url, data=data, headers=signed_headers(secret, data, FORM)
                    ) as res:
                        await res.read()
                        status = res.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                return [sent, time.monotonic(), status]

        return list(await asyncio.gather(*(one(body) for body in bodies)))


def main() -> int:
    """`python -m benchmarks.loadgen SPEC OUT` (see the module docstring)."""
    spec_path, out_path = sys.argv[1:3]
    _write(Path(out_path), asyncio.run(_fire(_read(Path(spec_path)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
