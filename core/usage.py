"""Usage you can see (issue 11): a person's images and spend today and this month with
what is left of the quota, a workspace's month for admins (totals, top users, channels
and models, cache hit rate), and the export per user, channel, provider and model.

Spend follows `core.quotas.spend`; a generation whose model has no price is counted in
`unpriced` and never as $0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import usage as usage_db
from core.db.usage import CostLine
from core.quotas import CostPolicy, day_bounds, images_of, month_bounds, month_name, spend

TOP = 5  # how many users, channels and models the admin view lists

__all__ = [
    "EXPORT_COLUMNS",
    "PersonalUsage",
    "TeamUsage",
    "Totals",
    "export_rows",
    "month_range",
    "personal",
    "team",
    "totals",
]


@dataclass(frozen=True)
class Totals:
    """Generations, images and USD of some usage; `unpriced` generations have no price
    (their spend is unknown, not counted in `usd`); `reused` were cache hits."""

    generations: int = 0
    images: int = 0
    usd: float = 0.0
    unpriced: int = 0
    reused: int = 0


def totals(lines: Iterable[CostLine]) -> Totals:
    """Sum generations, images, spend, unpriced and reused of `lines`."""
    gens = images = unpriced = reused = 0
    usd = 0.0
    for line in lines:
        gens += 1
        images += images_of(line)
        cost = spend(line)
        if cost is None:
            unpriced += 1
        else:
            usd += cost
        reused += line.reused
    return Totals(gens, images, round(usd, 6), unpriced, reused)


@dataclass(frozen=True)
class PersonalUsage:
    """A person's usage: today (UTC) and this month ("2026-11"), the daily limit that
    applies in the channel (None = unlimited, also for exempt admins) and what is left,
    and when the day resets (epoch seconds)."""

    today: Totals
    month: Totals
    month_name: str
    daily_limit: int | None
    remaining_today: int | None
    exempt: bool
    resets_at: float


@dataclass(frozen=True)
class TeamUsage:
    """A workspace's month: totals, the budget (None = unlimited), the top users, channels
    and models by spend (id, Totals), and the cache hit rate (hits / generations, None
    without generations)."""

    month: Totals
    month_name: str
    budget: float | None
    top_users: list[tuple[str, Totals]]
    top_channels: list[tuple[str, Totals]]
    top_models: list[tuple[str, Totals]]
    cache_hit_rate: float | None


async def personal(
    sm: async_sessionmaker[AsyncSession],
    policy: CostPolicy,
    team_id: str,
    channel_id: str,
    user_id: str,
) -> PersonalUsage:
    """`user_id`'s usage in workspace `team_id`, the quota as it applies in `channel_id`."""
    now = policy.clock()
    day, month = day_bounds(now), month_bounds(now)
    async with sm() as db:
        lines = await usage_db.lines(db, *month, team_id=team_id, user_id=user_id)
        override = await usage_db.channel_quota(db, team_id, channel_id)
    today = totals(x for x in lines if day[0] <= x.created_at < day[1])
    limit = override[0] if override and override[0] is not None else policy.user_daily_images
    exempt = user_id in policy.admins
    if exempt:
        limit = None
    remaining = max(0, limit - today.images) if limit is not None else None
    return PersonalUsage(today, totals(lines), month_name(now), limit, remaining, exempt, day[1])


def _top(lines: list[CostLine], key: str) -> list[tuple[str, Totals]]:
    groups: dict[str, list[CostLine]] = defaultdict(list)
    for line in lines:
        groups[getattr(line, key)].append(line)
    ranked = [(name, totals(group)) for name, group in groups.items()]
    ranked.sort(key=lambda item: (-item[1].usd, -item[1].images, item[0]))
    return ranked[:TOP]


async def team(sm: async_sessionmaker[AsyncSession], policy: CostPolicy, team_id: str) -> TeamUsage:
    """Workspace `team_id`'s usage this month, for admins."""
    now = policy.clock()
    async with sm() as db:
        lines = await usage_db.lines(db, *month_bounds(now), team_id=team_id)
    month = totals(lines)
    rate = month.reused / month.generations if month.generations else None
    return TeamUsage(
        month,
        month_name(now),
        policy.team_monthly_usd,
        _top(lines, "user_id"),
        _top(lines, "channel_id"),
        _top(lines, "model"),
        rate,
    )


def month_range(month: str) -> tuple[float, float]:
    """[start, end) epoch seconds of a month written "2026-11". Raises ValueError."""
    start = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC).timestamp()
    return month_bounds(start)


EXPORT_COLUMNS = (
    "month",
    "team_id",
    "user_id",
    "channel_id",
    "provider",
    "model",
    "generations",
    "images",
    "usd",
    "unpriced_generations",
    "reused_generations",
)
"""The columns of `imagine-bot usage` (CSV header, JSONL keys). `usd` is empty (CSV) or
null (JSONL) when every generation of the row is unpriced."""


async def export_rows(sm: async_sessionmaker[AsyncSession], month: str) -> list[dict[str, object]]:
    """One row per workspace, user, channel, provider and model for `month` ("2026-11"),
    sorted by those keys. Raises ValueError for a malformed month."""
    start, end = month_range(month)
    async with sm() as db:
        lines = await usage_db.lines(db, start, end)
    groups: dict[tuple[str, ...], list[CostLine]] = defaultdict(list)
    for line in lines:
        key = (line.team_id, line.user_id, line.channel_id, line.provider, line.model)
        groups[key].append(line)
    rows = []
    for key in sorted(groups):
        sums = totals(groups[key])
        priced = sums.generations > sums.unpriced
        values = (month, *key, sums.generations, sums.images)
        values += (round(sums.usd, 6) if priced else None, sums.unpriced, sums.reused)
        rows.append(dict(zip(EXPORT_COLUMNS, values, strict=True)))
    return rows
