"""`python -m benchmarks.run [--quick] [--runs N] [--only NAME …]`: the table of issue 13.

Runs each measure (a fresh bot subprocess, stand-in and fakes each time) `--runs` times and
prints one Markdown table: every figure of every run side by side with its same-run
reference, the target and pass/FAIL. `--quick` uses small bursts (a smoke check: the
figures are not comparable with the targets). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import ack_latency, delivery, in_flight, queued, throughput
from .table import Row, render

Measure = Callable[[Path], Awaitable[list[Row]]]

FULL: dict[str, Measure] = {
    "ack": lambda d: ack_latency.measure(d, (100, 300)),
    "throughput": lambda d: throughput.measure(d, burst=200),
    "in_flight": lambda d: in_flight.measure(d, jobs=1000),
    "queued": lambda d: queued.measure(d, jobs=1000),
    "delivery": lambda d: delivery.measure(d, (3, 8, 20), per_duration=10),
}
QUICK: dict[str, Measure] = {
    "ack": lambda d: ack_latency.measure(d, (20, 50)),
    "throughput": lambda d: throughput.measure(d, burst=20, within=120),
    "in_flight": lambda d: in_flight.measure(d, jobs=100, within=40, steady=8),
    "queued": lambda d: queued.measure(d, jobs=100, steady=8),
    "delivery": lambda d: delivery.measure(d, (3, 8), per_duration=3),
}


def _loop_seconds(iterations: int = 10_000_000) -> float:
    """Seconds this machine takes for a plain Python loop of `iterations` additions (best
    of 3): a reference for comparing tables taken on different machines."""
    best = float("inf")
    for _ in range(3):
        started, total = time.perf_counter(), 0
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return best


def _once(name: str, measure: Measure, workdir: Path) -> list[Row]:
    """One measure in its own event loop; a crash becomes one row saying so."""
    started = time.monotonic()
    print(f"[bench] {name} …", file=sys.stderr, flush=True)
    try:
        rows = asyncio.run(measure(workdir / name))
    except Exception as err:  # report and go on with the other measures
        traceback.print_exc()
        rows = [Row(name, f"error: {type(err).__name__}: {str(err)[:200]}", ok=False)]
    print(f"[bench] {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the table; exit 0 when every target is met, 1 otherwise."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small bursts (smoke check)")
    parser.add_argument("--runs", type=int, default=1, help="runs of each measure (default 1)")
    parser.add_argument("--only", nargs="+", choices=sorted(FULL), help="just these measures")
    parser.add_argument("--keep", metavar="DIR", help="keep logs and databases in DIR")
    args = parser.parse_args(argv)
    chosen = {k: v for k, v in (QUICK if args.quick else FULL).items() if k in (args.only or FULL)}
    load, speed = os.getloadavg(), _loop_seconds()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        root = Path(args.keep or tmp)
        runs = []
        for run in range(args.runs):
            rows: list[Row] = []
            for name, measure in chosen.items():
                rows += _once(name, measure, root / f"run{run + 1}")
            runs.append(rows)
    print(
        f"{os.cpu_count()} CPUs; load average {load[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; a Python loop of 10M additions takes {speed:.2f} s; "
        f"{args.runs} run(s){', quick' if args.quick else ''}"
    )
    print(render(runs))
    passed = all(row.ok is not False for rows in runs for row in rows)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
