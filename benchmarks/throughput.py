"""Generations posted per minute and CPU per generation: a burst of `/imagine` to the bot
with the local provider and `LOCAL_RENDER_SECONDS=0` (other settings default).

One warm-up generation is posted first. Rate: generations posted ÷ time from the first
command sent to the last image shared (or to the deadline). CPU: the bot process's CPU
seconds over the same span ÷ generations posted. The Slack calls of the span give the
rows of :mod:`benchmarks.slack_calls`. Targets (issue 13): ≥ 250/min, ≤ 250 ms CPU.

The burst runs twice. First at Slack's published rates (the stand-in enforces them and the
bot paces to them): every generation needs one files.completeUploadExternal, a Tier 4
method (100 a minute per workspace, https://docs.slack.dev/apis/web-api/rate-limits and
https://docs.slack.dev/reference/methods/files.completeUploadExternal), so one workspace
cannot see more than about 100 generations a minute, whatever the bot does; the row says
so as its reference. Then with every Slack rate ×`SCALE` at the stand-in and in the bot
(SLACK_RATE_SCALE): what the bot itself can post, the figure the target applies to.
"""

from __future__ import annotations

import time
from pathlib import Path

from . import slack_calls
from .stage import Stage
from .table import Row

RATE_TARGET = 250.0  # generations per minute
CPU_TARGET_MS = 250.0
SCALE = 4.0  # Slack's rates ×4 for the bot's own capacity
UPLOAD_CEILING = 100.0  # files.completeUploadExternal per minute per workspace (Tier 4)


async def measure(workdir: Path, burst: int = 200, within: float = 300.0) -> list[Row]:
    """Rows for `burst` commands at Slack's rates and at ×SCALE, waiting at most `within`
    seconds for their posts each time."""
    at_slack = await _measure(workdir / "slack-rates", burst, within, 1.0)
    scaled = await _measure(workdir / "scaled", burst, within, SCALE)
    return [*at_slack, scaled[0]]


async def _measure(workdir: Path, burst: int, within: float, scale: float) -> list[Row]:
    async with Stage(workdir) as stage:
        stage.emulator.rates.scale = scale
        bot = await stage.start_bot(LOCAL_RENDER_SECONDS="0", SLACK_RATE_SCALE=str(scale))
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
    if scale == 1.0:
        what, reference = (
            "at Slack's rates",
            (f"Slack's ceiling ≈ {UPLOAD_CEILING:.0f}/min (files.completeUploadExternal, Tier 4)"),
        )
    else:
        what, reference = f"Slack's rates ×{scale:g} (SLACK_RATE_SCALE)", "—"
    return [
        Row(
            f"generations posted per minute, {what} (local, render 0 s, burst of {burst})",
            f"{rate:.0f}/min{note}",
            reference,
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
