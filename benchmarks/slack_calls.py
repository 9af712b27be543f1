"""Slack Web API calls per generation, counted by method at the stand-in.

Computed from the calls of the throughput run (:mod:`benchmarks.throughput`), where every
generation is posted. Targets (issue 13): no `auth.test` per request; no more calls per
generation than main before issue 13 (8: 3 `chat.postMessage`, 2 `chat.update`, 2 for the
upload, 1 `auth.test`).
"""

from __future__ import annotations

from collections import Counter

from bot.emulator import ApiCall

from .table import Row

BEFORE = 8  # calls per generation on main when issue 13 was filed


def rows(calls: list[ApiCall], generations: int, commands: int) -> list[Row]:
    """Rows "Slack calls per generation" (with the breakdown by method) and "auth.test per
    /imagine" for the `calls` made while `commands` commands became `generations` posts."""
    if not generations:
        return [Row("Slack calls per generation", "no generation posted", target=f"≤ {BEFORE}")]
    # Web API methods only: not the upload to the URL files.getUploadURLExternal gave
    # ("upload") nor response URLs ("response_url"), which are no method calls.
    by_method = Counter(call.method for call in calls if "." in call.method)
    per_generation = sum(by_method.values()) / generations
    detail = ", ".join(
        f"{method} {count / generations:.2g}" for method, count in by_method.most_common()
    )
    limited = sum(1 for call in calls if call.error == "ratelimited")
    if limited:  # Slack's 429 answer (https://docs.slack.dev/apis/web-api/rate-limits)
        detail += f"; {limited / generations:.2g} answered 429 ratelimited"
    complete = generations == commands
    if not complete:  # the calls of the generations still running are counted too
        detail += f"; only {generations} of {commands} posted: incomplete, too high"
    auth = by_method.get("auth.test", 0) / commands
    figures = {m: n / generations for m, n in by_method.items()}
    return [
        Row(
            "Slack calls per generation",
            f"{per_generation:.1f} ({detail})",
            target=f"≤ {BEFORE}",
            ok=per_generation <= BEFORE if complete else None,
            figures={"per_generation": per_generation, "ratelimited": limited, **figures},
        ),
        Row(
            "`auth.test` per `/imagine`",
            f"{auth:.2f}",
            target="0",
            ok=auth == 0,
            figures={"per_command": auth},
        ),
    ]
