"""`python -m benchmarks.probe serve …`: `imagine-bot` with an event-loop lag probe.

The bot's own entry point (`bot.__main__.main`, what `imagine-bot` runs) is called
unchanged; an event-loop policy adds one task to every loop it creates. The task sleeps
50 ms, again and again, and records how late it wakes up (the loop's lag: time other
callbacks held the loop). Every second it appends the samples to the file named by
`BENCH_LAG_FILE`, one `<time.monotonic()> <lag ms>` a line. The probe costs 20 wake-ups
a second. Without `BENCH_LAG_FILE` nothing is added.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

INTERVAL = 0.05  # seconds between wake-ups
_tasks: set[asyncio.Task[None]] = set()


def _append(path: str, lines: list[str]) -> None:
    with open(path, "a") as out:
        out.writelines(lines)


async def _probe(path: str) -> None:
    pending: list[str] = []
    flushed = time.monotonic()
    while True:
        start = time.monotonic()
        await asyncio.sleep(INTERVAL)
        now = time.monotonic()
        pending.append(f"{now:.3f} {(now - start - INTERVAL) * 1000:.2f}\n")
        if now - flushed >= 1.0:
            _append(path, pending)
            pending.clear()
            flushed = now


def _start(loop: asyncio.AbstractEventLoop, path: str) -> None:
    task = loop.create_task(_probe(path))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class _ProbedPolicy(asyncio.DefaultEventLoopPolicy):
    """The default policy; each new loop starts the probe once it runs."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        path = os.environ.get("BENCH_LAG_FILE")
        if path:
            loop.call_soon(_start, loop, path)
        return loop


def lag_samples(path: str | os.PathLike[str], since: float, until: float) -> list[float]:
    """The lag samples (ms) recorded between monotonic times `since` and `until`."""
    try:
        with open(path) as lines:
            pairs = [line.split() for line in lines]
    except FileNotFoundError:
        return []
    whole = [pair for pair in pairs if len(pair) == 2]  # a line being written is skipped
    return [float(lag) for at, lag in whole if since <= float(at) <= until]


def main() -> int:
    """Run `imagine-bot` with the probe; the arguments are imagine-bot's."""
    # asyncio.run() creates its loop through the policy (Python 3.11-3.13).
    asyncio.set_event_loop_policy(_ProbedPolicy())
    from bot.__main__ import main as imagine_bot

    return imagine_bot(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
