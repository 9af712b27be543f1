"""Generations posted per minute and CPU per generation: a burst of `/imagine` to the bot
with the local provider and `LOCAL_RENDER_SECONDS=0` (other settings default).

One warm-up generation is posted first. Rate: generations posted ÷ time from the first
command sent to the last image shared (or to the deadline). CPU: the bot process's CPU
seconds over the same span ÷ generations posted. The Slack calls of the span give the
rows of :mod:`benchmarks.slack_calls`. Targets (issue 13): ≥ 250/min, ≤ 250 ms CPU.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import slack_calls
from .stage import Stage
from .table import Row

RATE_TARGET = 250.0  # generations per minute
CPU_TARGET_MS = 250.0


async def measure(workdir: Path, burst: int = 200, within: float = 300.0) -> list[Row]:
    """Rows for `burst` commands, waiting at most `within` seconds for their posts."""
    async with Stage(workdir) as stage:
        bot = await stage.start_bot(LOCAL_RENDER_SECONDS="0")
        await stage.imagine(bot, ["warm-up lighthouse"])
        if not await stage.until(lambda: len(stage.posts()) >= 1, 60):
            raise RuntimeError(f"the warm-up generation was not posted:\n{bot.tail()}")
        first_call = len(stage.emulator.calls)
        cpu_before = bot.cpu()
        sent = await stage.imagine(bot, [f"a lighthouse at dusk, number {i}" for i in range(burst)])
        await stage.until(lambda: len(stage.posts(first_call)) >= burst, within)
        cpu = bot.cpu() - cpu_before
        ended = time.monotonic()
        posts = stage.posts(first_call)
        calls = stage.emulator.calls[first_call:]
    posted = len(posts)
    if posted == burst:
        ended = max(call.at for call in posts)
    span = ended - sent.started
    rate = posted / span * 60
    cpu_ms = cpu / posted * 1000 if posted else float("inf")
    note = "" if posted == burst else f", {posted} of {burst} posted in {span:.0f} s"
    return [
        Row(
            f"generations posted per minute (local, render 0 s, burst of {burst})",
            f"{rate:.0f}/min{note}",
            target=f"≥ {RATE_TARGET:.0f}/min",
            ok=rate >= RATE_TARGET,
            figures={"per_minute": rate, "posted": posted, "seconds": span},
        ),
        Row(
            "CPU per generation (bot process)",
            f"{cpu_ms:.0f} ms",
            target=f"≤ {CPU_TARGET_MS:.0f} ms",
            ok=cpu_ms <= CPU_TARGET_MS,
            figures={"cpu_ms": cpu_ms, "cpu_s": cpu},
        ),
        *slack_calls.rows(calls, posted, burst),
    ]
