"""One row of the benchmark table and the table itself (a Markdown pipe table)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Row:
    """One measured figure.

    Attributes:
        measure: what is measured, e.g. "ack p50, burst of 100".
        value: this run's figure as shown, e.g. "212 ms (×4.2)".
        reference: the reference measured in the same run ("50 ms", bare Bolt), or "—".
        target: the issue's target as shown, e.g. "≤ ×1.3".
        ok: whether the target is met (None when the row has no target).
        figures: the raw numbers behind `value` (units in the key: `_ms`, `_s`, `_pct`…),
            for tests and for anyone post-processing the run.
    """

    measure: str
    value: str
    reference: str = "—"
    target: str = "—"
    ok: bool | None = None
    figures: dict[str, float] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-1) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def verdict(ok: bool | None) -> str:
    """The pass column: "pass", "FAIL" or "—"."""
    return "—" if ok is None else ("pass" if ok else "FAIL")


def render(runs: list[list[Row]]) -> str:
    """The runs side by side: one line per measure, each run's value and reference joined
    with " · ", pass only when every run passes."""
    order: list[str] = []
    by_measure: dict[str, list[Row]] = {}
    for rows in runs:
        for row in rows:
            if row.measure not in by_measure:
                order.append(row.measure)
            by_measure.setdefault(row.measure, []).append(row)
    lines = [
        "| measure | this code | reference (same run) | target | pass |",
        "|---|---|---|---|---|",
    ]
    for measure in order:
        rows = by_measure[measure]
        oks = [r.ok for r in rows]
        ok = None if all(o is None for o in oks) else all(o is True for o in oks)
        values = " · ".join(r.value for r in rows)
        refs = " · ".join(dict.fromkeys(r.reference for r in rows))
        lines.append(f"| {measure} | {values} | {refs} | {rows[0].target} | {verdict(ok)} |")
    return "\n".join(lines)
