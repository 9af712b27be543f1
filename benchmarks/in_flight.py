"""1,000 `/imagine` with 300 s ToAPIs tasks and `PROVIDER_CONCURRENCY=1000`: how long until
every task is submitted, then the bot's resident memory, event-loop lag p99 and CPU over
a steady window with them in flight (and polls per second, for reference).

The commands go 50 at a time from the load process. The run is bounded: at most
`within` seconds for the submissions (counted from the first command), then `steady`
seconds of measurement whatever was reached; the 300 s tasks never finish during it.
Targets (issue 13): all in flight ≤ 40 s, ≤ 150 MB, lag p99 ≤ 20 ms, ≤ 25 % of a core.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from .loadgen import Burst
from .probe import lag_samples
from .procs import Proc
from .stage import Stage
from .table import Row, percentile

TASK_SECONDS = 300.0
SEND_CONCURRENCY = 50


@dataclass
class Window:
    """What a bot process did over `seconds` of wall time: CPU % of one core, RSS at the
    end (MB), loop lag samples (ms) and provider polls."""

    seconds: float
    cpu_pct: float
    rss_mb: float
    lag_ms: list[float]
    polls: int


async def fill(stage: Stage, bot: Proc, jobs: int, submitted: int, within: float) -> Burst:
    """Send `jobs` commands and wait until `submitted` tasks reached the fake ToAPIs (or
    `within` seconds passed since sending began); returns the load's answers."""
    assert stage.toapis is not None
    texts = [f"a lighthouse in the fog, number {i}" for i in range(jobs)]
    sending = asyncio.create_task(stage.imagine(bot, texts, SEND_CONCURRENCY))
    toapis = stage.toapis
    await stage.until(lambda: len(toapis.submitted_at) >= submitted, within)
    return await sending


async def window(stage: Stage, bot: Proc, seconds: float) -> Window:
    """Measure `bot` for `seconds` of wall time."""
    assert stage.toapis is not None
    polls = len(stage.toapis.calls("poll"))
    start, cpu = time.monotonic(), bot.cpu()
    await asyncio.sleep(seconds)
    end, used = time.monotonic(), bot.cpu() - cpu
    await asyncio.sleep(1.1)  # the probe writes its samples once a second
    return Window(
        end - start,
        used / (end - start) * 100,
        bot.rss(),
        lag_samples(stage.lag_file(bot), start, end),
        len(stage.toapis.calls("poll")) - polls,
    )


def _rows(jobs: int, reached: float | None, count: int, sent: Burst, w: Window) -> list[Row]:
    lag = percentile(w.lag_ms, 0.99)
    what = f"{jobs} in flight" if reached is not None else f"{count} of {jobs} in flight"
    shown = f"{reached:.1f} s" if reached is not None else f"not reached: {count} of {jobs}"
    shown += f"; not acked: {sent.refusals}" if sent.failed else ""
    return [
        Row(
            f"seconds until {jobs} `/imagine` are in flight (ToAPIs 300 s tasks)",
            shown,
            target="≤ 40 s",
            ok=reached is not None and reached <= 40 and not sent.failed,
            figures={"seconds": reached if reached is not None else -1.0, "submitted": count},
        ),
        Row(f"RSS, {what}", f"{w.rss_mb:.0f} MB", target="≤ 150 MB", ok=w.rss_mb <= 150),
        Row(
            f"event-loop lag p99, {what}",
            f"{lag:.1f} ms",
            target="≤ 20 ms",
            ok=lag <= 20,
            figures={"ms": lag, "samples": len(w.lag_ms)},
        ),
        Row(f"CPU, {what}", f"{w.cpu_pct:.0f} % of a core", target="≤ 25 %", ok=w.cpu_pct <= 25),
        Row(f"provider polls per second, {what}", f"{w.polls / w.seconds:.1f}/s"),
    ]


async def measure(
    workdir: Path, jobs: int = 1000, within: float = 90.0, steady: float = 30.0
) -> list[Row]:
    """The rows above for `jobs` commands."""
    async with Stage(workdir, lambda prompt: TASK_SECONDS) as stage:
        assert stage.toapis is not None
        bot = await stage.start_bot(PROVIDER_CONCURRENCY=str(jobs))
        sent = await fill(stage, bot, jobs, jobs, within)
        times = sorted(stage.toapis.submitted_at.values())
        reached = times[-1] - sent.started if len(times) >= jobs else None
        measured = await window(stage, bot, steady)
        return _rows(jobs, reached, len(times), sent, measured)
