"""Ack latency under a burst of `/imagine`: p50 and p99 of the bot (SQLite, local provider,
default settings otherwise) against a bare Bolt app that only acks, same burst, same run.

Each app gets one warm-up command first (Bolt's `auth.test`, lazy imports) and the burst
waits until its work is over: the bot's warm-up image posted in its thread and the Slack
stand-in quiet for 2.5 s (the stand-in answers from the load process, and Slack's
per-channel pace spreads the warm-up's posts over seconds: without the wait they ran
during the burst, on both sides of the measure). Then the burst: every command sent at
once from the load process. A fresh bot (empty database) takes each burst. Targets
(issue 13): p50 ≤ ×1.3 and p99 ≤ ×1.5 of bare Bolt; every command acked (HTTP 200)
within Slack's 3 s.
"""

from __future__ import annotations

from pathlib import Path

from .loadgen import Burst
from .procs import Proc
from .stage import Stage
from .table import Row, percentile

TARGETS = {"p50": (0.50, 1.3), "p99": (0.99, 1.5)}
SLACK_LIMIT_MS = 3000  # Slack shows the user an error after 3 s without an ack


# No Slack call for this long: the warm-up's work is over (the bot paces chat.postMessage
# to about 1 a second per channel, so a shorter quiet could fall between two of its posts).
QUIET_SECONDS = 2.5
WARM_UP_WITHIN = 60.0  # seconds the warm-up may take (Slack's pace: ~1 post/s a channel)


async def _burst(stage: Stage, proc: Proc, size: int, tag: str, *, posts: bool) -> Burst:
    since = len(stage.emulator.calls)
    await stage.imagine(proc, [f"warm-up lighthouse {tag}"])
    if posts and not await stage.until(lambda: bool(stage.posts(since)), WARM_UP_WITHIN):
        raise RuntimeError(f"the warm-up image was not posted:\n{proc.tail()}")
    await stage.quiet(QUIET_SECONDS, WARM_UP_WITHIN)
    return await stage.imagine(proc, [f"a lighthouse at dusk, {tag} {i}" for i in range(size)])


def _rows(size: int, bot: Burst, bare: Burst) -> list[Row]:
    rows = []
    failed = f"; not acked: {bot.refusals}" if bot.failed else ""
    against = f"; not acked: {bare.refusals}" if bare.failed else ""
    for name, (q, limit) in TARGETS.items():
        got, ref = percentile(bot.latencies_ms, q), percentile(bare.latencies_ms, q)
        ratio = got / ref
        rows.append(
            Row(
                f"ack {name}, burst of {size} `/imagine`",
                f"{got:.0f} ms (×{ratio:.1f}{failed})",
                f"{ref:.0f} ms (bare Bolt{against})",
                f"≤ ×{limit}",
                ratio <= limit and not bot.failed,
                {"ms": got, "reference_ms": ref, "ratio": ratio, "failed": bot.failed},
            )
        )
    worst, worst_ref = max(bot.latencies_ms), max(bare.latencies_ms)
    rows.append(
        Row(
            f"ack max, burst of {size} `/imagine`",
            f"{worst:.0f} ms",
            f"{worst_ref:.0f} ms (bare Bolt)",
            f"< {SLACK_LIMIT_MS} ms (Slack's limit)",
            worst < SLACK_LIMIT_MS and not bot.failed,
            {"ms": worst, "reference_ms": worst_ref},
        )
    )
    return rows


async def measure(workdir: Path, sizes: tuple[int, ...] = (100, 300)) -> list[Row]:
    """Rows "ack p50/p99/max, burst of N" for each size in `sizes`."""
    rows: list[Row] = []
    async with Stage(workdir) as stage:
        bare = await stage.start_bare_bolt()
        for size in sizes:
            reference = await _burst(stage, bare, size, f"bare{size}", posts=False)
            bot = await stage.start_bot()
            try:
                measured = await _burst(stage, bot, size, f"bot{size}", posts=True)
            finally:
                await bot.stop()
            rows += _rows(size, measured, reference)
    return rows
