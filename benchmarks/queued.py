"""1,000 queued and 2 running: the bot's CPU while 1,000 `/imagine` wait behind
`PROVIDER_CONCURRENCY=2` running 300 s ToAPIs tasks (nothing for it to do but wait).

All commands are sent (50 at a time), the 2 tasks are submitted, every job's root and
status message is posted (Slack paces chat.postMessage per channel: about 100 s for 1,000
jobs in 20 channels; that posting is work, not waiting), 3 s pass to settle, then CPU % of
one core is measured over `steady` seconds. Target (issue 13): ≤ 5 % of a core.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .in_flight import TASK_SECONDS, fill, window
from .stage import CHANNELS, Stage
from .table import Row

RUNNING = 2


def _posted(stage: Stage) -> int:
    """Messages the bot posted so far (each job's thread root and status message)."""
    return sum(1 for c in stage.emulator.calls if c.method == "chat.postMessage" and c.ok)


async def measure(workdir: Path, jobs: int = 1000, steady: float = 20.0) -> list[Row]:
    """Row "CPU, N queued and 2 running"."""
    async with Stage(workdir, lambda prompt: TASK_SECONDS) as stage:
        assert stage.toapis is not None
        bot = await stage.start_bot(PROVIDER_CONCURRENCY=str(RUNNING))
        sent = await fill(stage, bot, jobs, RUNNING, 120.0)
        await stage.until(lambda: _posted(stage) >= 2 * jobs, 2 * jobs / CHANNELS * 1.5 + 30)
        await asyncio.sleep(3.0)
        measured = await window(stage, bot, steady)
        running = len(stage.toapis.submitted_at)
    note = f"; not acked: {sent.refusals}" if sent.failed else ""
    return [
        Row(
            f"CPU, {jobs} queued and {running} running",
            f"{measured.cpu_pct:.1f} % of a core{note}",
            target="≤ 5 %",
            ok=measured.cpu_pct <= 5 and not sent.failed,
            figures={"cpu_pct": measured.cpu_pct, "running": running},
        )
    ]
