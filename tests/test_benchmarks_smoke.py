"""The benchmarks (benchmarks/, issue 13) still run: the smallest measure, end to end.

Three `/imagine` go from the load process to the bot subprocess (local provider, render
0 s); every one must be posted, with CPU time read from /proc, Slack calls counted by
method at the stand-in and the event-loop lag probe writing samples. The figures
themselves are not checked against the targets (a shared test box is too noisy).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks import throughput
from benchmarks.probe import lag_samples
from benchmarks.table import render

pytestmark = pytest.mark.timeout(90)


def _lag_samples(folder: Path) -> list[float]:
    return [lag for path in folder.rglob("*.lag") for lag in lag_samples(path, 0, math.inf)]


async def test_throughput_measure_runs_and_counts_every_generation(tmp_path: Path) -> None:
    rows = await throughput.measure(tmp_path, burst=3, within=60)

    by_name = {row.measure.split(" (")[0]: row for row in rows}
    rates = [row for row in rows if row.measure.startswith("generations posted per minute")]
    assert len(rates) == 2  # at Slack's rates, then at Slack's rates ×4
    assert "Slack's ceiling" in rates[0].reference and "×4" in rates[1].measure
    for rate in rates:
        assert rate.figures["posted"] == 3, rate.value
        assert rate.figures["per_minute"] > 0
    assert 0 < by_name["CPU per generation"].figures["cpu_ms"] < math.inf
    calls = by_name["Slack calls per generation"].figures
    assert calls["chat.postMessage"] >= 1 and calls["files.completeUploadExternal"] == 1, calls
    assert "`auth.test` per `/imagine`" in by_name
    assert _lag_samples(tmp_path), "the lag probe wrote nothing"
    table = render([rows, rows])
    assert table.count("\n") == len(rows) + 1 and " · " in table
