"""Quotas and budgets, checked in the transaction that queues a generation (issue 11).

`admit` is called with one line right after a use case inserted a generation (`/imagine`,
Regenerate, a refinement), inside the same transaction. It

1. refuses a duplicate `/imagine` (same person, channel, prompt and flags within
   `duplicate_window` seconds) with `DuplicateRequest`;
2. writes the workspace's lock row first (`core.db.usage.lock_team`), then reads the
   usage. Why a write first: Python's sqlite3 opens a transaction only at the first write,
   so reads before it see no snapshot and two requests could both read "19 of 20" and both
   insert. A write as the first statement of the check takes SQLite's single write lock
   (what `BEGIN IMMEDIATE` would do: a concurrent check waits on `busy_timeout`, then sees
   the first one's committed rows); on PostgreSQL (READ COMMITTED) it is a row lock on the
   workspace's row and every later statement reads the latest committed data. So of two
   requests racing for the last unit exactly one passes;
3. refuses with `QuotaExceeded` (the transaction rolls back: nothing is queued) when the
   person's images today (UTC day) or the workspace's (or the channel's) spend this month,
   with this request, go over the limit;
4. records the generation's cost row (estimate from the price table) and, when the
   workspace crosses 80 % of its budget, the month's budget alert (once, a unique row).

Spend of a generation (`spend`): 0 when its images were reused; what the provider's
reported token `usage` costs when it bills by tokens (OpenAI); else the engine's cost from
the price table; 0 when it failed or was cancelled before anything was made; else the
estimate. None is "unpriced". Images count per image asked for (`--n`), not for failed ones.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import usage as usage_db
from core.db.usage import Asked, CostLine
from core.flags import Params
from core.models import GenerationState
from core.pricing import PriceTable, cost_from_usage, estimate_request, price_model

ALERT_SHARE = 0.8  # admins hear about the budget once spend reaches this share of it
DAY = 86_400.0

__all__ = [
    "ALERT_SHARE",
    "BudgetAlert",
    "CostPolicy",
    "DuplicateRequest",
    "Limit",
    "QuotaExceeded",
    "admit",
    "admit_all",
    "day_bounds",
    "images_of",
    "lock_teams",
    "month_bounds",
    "month_name",
    "spend",
    "take_alerts",
]


@dataclass(frozen=True)
class CostPolicy:
    """The limits a request is checked against (from the settings) and the clock.

    user_daily_images: images per person per UTC day (None = unlimited).
    team_monthly_usd: workspace spend per calendar month, USD (None = unlimited).
    admins: user ids exempt from the user quota (IMAGINE_ADMINS).
    duplicate_window: seconds within which an identical `/imagine` is a duplicate (0 = off).
    prices: the configured price table (IMAGE_PRICES), None for the published defaults.
    clock: UTC epoch seconds (injected in tests).
    """

    user_daily_images: int | None = None
    team_monthly_usd: float | None = None
    admins: frozenset[str] = frozenset()
    duplicate_window: float = 0.0
    prices: PriceTable | None = None
    clock: Callable[[], float] = field(default=time.time)


class Limit(StrEnum):
    """Which limit refused a request."""

    USER_DAILY = "user_daily"  # images per person per UTC day
    TEAM_MONTHLY = "team_monthly"  # workspace USD per month
    CHANNEL_MONTHLY = "channel_monthly"  # this channel's USD per month (override)
    UNPRICED = "unpriced"  # a budget is set and the model has no price


class QuotaExceeded(Exception):
    """A request over a limit; nothing was queued.

    `used` is what was used before this request (images, or USD), `limit` the limit,
    `asked` what this request needed, `resets_at` when the period ends (UTC epoch seconds),
    `model` the model (for UNPRICED).
    """

    def __init__(
        self,
        limit_kind: Limit,
        *,
        used: float,
        limit: float,
        asked: float,
        resets_at: float,
        model: str = "",
    ) -> None:
        super().__init__(limit_kind.value)
        self.limit_kind, self.used, self.limit = limit_kind, used, limit
        self.asked, self.resets_at, self.model = asked, resets_at, model


class DuplicateRequest(Exception):
    """The same person asked for the same prompt and flags in the same channel
    `seconds_ago` seconds ago (generation `previous_id`); nothing was queued."""

    def __init__(self, previous_id: int, seconds_ago: float) -> None:
        super().__init__(f"duplicate of {previous_id}")
        self.previous_id, self.seconds_ago = previous_id, seconds_ago


def day_bounds(now: float) -> tuple[float, float]:
    """The UTC day around `now`: [00:00, next 00:00) as epoch seconds."""
    start = now - now % DAY
    return start, start + DAY


def month_bounds(now: float) -> tuple[float, float]:
    """The UTC calendar month around `now`: [1st 00:00, next 1st 00:00) as epoch seconds."""
    moment = datetime.fromtimestamp(now, UTC)
    start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    days = calendar.monthrange(moment.year, moment.month)[1]
    return start.timestamp(), start.timestamp() + days * DAY


def month_name(now: float) -> str:
    """The month of `now` as "2026-11"."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")


def spend(line: CostLine) -> float | None:
    """USD a generation counts for (see the module doc); None = unpriced."""
    if line.reused:
        return 0.0
    reported = cost_from_usage(line.provider, line.model, line.usage)
    if reported is not None:
        return reported
    if line.cost_usd is not None:
        return line.cost_usd
    if line.state in (GenerationState.FAILED, GenerationState.CANCELLED):
        return 0.0
    return line.estimated_usd


def images_of(line: CostLine) -> int:
    """Images a generation counts for: what it asked for, 0 when it failed or was cancelled
    before anything was made."""
    made_nothing = line.state in (GenerationState.FAILED, GenerationState.CANCELLED)
    return 0 if made_nothing and line.cost_usd is None else line.images


def request_key(asked: Asked, params: Params) -> str:
    """Who, where and what exactly was asked (prompt and every flag, the seed only when
    the person fixed it), hashed."""
    data = [asked.team_id, asked.channel_id, asked.user_id, asked.kind, asked.prompt]
    data.append({**params.to_stored(), "seed": params.seed})
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


async def admit(
    db: AsyncSession, policy: CostPolicy | None, generation_id: int, params: Params
) -> None:
    """Check and record the generation just inserted in this transaction (module doc).

    `params` are the flags as the person gave them (`seed` None unless fixed).
    Raises DuplicateRequest or QuotaExceeded; the caller's transaction then rolls back.
    """
    asked = await usage_db.asked(db, generation_id)
    await lock_teams(db, policy, [asked.team_id])
    [refused] = await admit_all(db, policy, [(asked, params)])
    if refused is not None:
        raise refused


async def lock_teams(db: AsyncSession, policy: CostPolicy | None, team_ids: Iterable[str]) -> None:
    """Write the lock rows of these workspaces (in a fixed order), as the first write of a
    transaction that will `admit_all` their requests (module doc, 2.)."""
    now = (policy or CostPolicy()).clock()
    for team_id in sorted(set(team_ids)):
        await usage_db.lock_team(db, team_id, now)


async def admit_all(
    db: AsyncSession, policy: CostPolicy | None, requests: Sequence[tuple[Asked, Params]]
) -> list[DuplicateRequest | QuotaExceeded | None]:
    """`admit` for several generations just inserted in this transaction, judged in order
    as if each were admitted alone after the ones before it (a request counts against the
    later ones; the same request twice is a duplicate of the first), with the usage read
    once for all of them. Returns, per request, None (admitted: its cost row recorded) or
    the refusal (nothing recorded for it; the caller removes its generation). The
    transaction must hold the requests' workspace locks (`lock_teams`).
    """
    policy = policy or CostPolicy()
    now = policy.clock()
    keys = [request_key(asked, params) for asked, params in requests]
    recent: dict[str, tuple[int, float]] = {}
    if policy.duplicate_window > 0:
        imagines = [
            key for key, (asked, _) in zip(keys, requests, strict=True) if asked.kind == "imagine"
        ]
        recent = await usage_db.recent_requests(db, imagines, now - policy.duplicate_window)
    books = await _Books.read(db, policy, [asked for asked, _ in requests], now)
    verdicts: list[DuplicateRequest | QuotaExceeded | None] = []
    costs: list[dict[str, Any]] = []
    for (asked, params), key in zip(requests, keys, strict=True):
        found = recent.get(key) if asked.kind == "imagine" else None
        if found is not None:
            verdicts.append(DuplicateRequest(found[0], max(0.0, now - found[1])))
            continue
        estimate = estimate_request(
            policy.prices,
            asked.provider,
            asked.model,
            (asked.width, asked.height),
            asked.quality,
            asked.n,
        )
        try:
            alert = _check(policy, asked, estimate, now, books)
        except QuotaExceeded as refused:
            verdicts.append(refused)
            continue
        if alert is not None:
            await usage_db.record_alert(db, asked.team_id, month_name(now), *alert)
        books.count(asked, estimate)
        if policy.duplicate_window > 0:
            recent[key] = (asked.generation_id, now)
        costs.append(_cost_row(asked, params, key, estimate, now))
        verdicts.append(None)
    await usage_db.add_costs(db, costs)
    return verdicts


def _cost_row(
    asked: Asked, params: Params, key: str, estimate: float | None, now: float
) -> dict[str, Any]:
    """The cost side of an admitted generation (CostRow's columns)."""
    return {
        "generation_id": asked.generation_id,
        "team_id": asked.team_id,
        "channel_id": asked.channel_id,
        "user_id": asked.user_id,
        "provider": asked.provider,
        "model": price_model(asked.provider, asked.model),
        "images": asked.n,
        "estimated_usd": estimate,
        "request_key": key,
        "seed_fixed": params.seed is not None,
        "created_at": now,
    }


@dataclass
class _Books:
    """The usage the limits are judged against, read once per `admit_all` (under the write
    lock) and counted on as requests are admitted: channel overrides per (team, channel),
    images per (team, person) today, USD per team and per (team, channel) this month.
    Usage is read only where a limit can apply."""

    overrides: dict[tuple[str, str], tuple[int | None, float | None] | None]
    images: dict[tuple[str, str], int] = field(default_factory=dict)
    team_usd: dict[str, float] = field(default_factory=dict)
    channel_usd: dict[tuple[str, str], float] = field(default_factory=dict)

    @classmethod
    async def read(
        cls, db: AsyncSession, policy: CostPolicy, requests: Sequence[Asked], now: float
    ) -> _Books:
        pairs = sorted({(asked.team_id, asked.channel_id) for asked in requests})
        books = cls(await usage_db.channel_quotas(db, pairs))  # one query for all
        by_user, by_money = set(), set()
        for team_id, channel_id in pairs:
            override = books.overrides[(team_id, channel_id)] or (None, None)
            if policy.user_daily_images is not None or override[0] is not None:
                by_user.add(team_id)
            if policy.team_monthly_usd is not None or override[1] is not None:
                by_money.add(team_id)
        for team_id in sorted(by_user):
            for line in await usage_db.lines(db, *day_bounds(now), team_id=team_id):
                key = (team_id, line.user_id)
                books.images[key] = books.images.get(key, 0) + images_of(line)
        for team_id in sorted(by_money):
            books.team_usd[team_id] = 0.0
            for line in await usage_db.lines(db, *month_bounds(now), team_id=team_id):
                usd = spend(line) or 0.0
                books.team_usd[team_id] += usd
                pair = (team_id, line.channel_id)
                books.channel_usd[pair] = books.channel_usd.get(pair, 0.0) + usd
        return books

    def count(self, asked: Asked, estimate: float | None) -> None:
        """Add an admitted request (its images, its estimate) to the usage."""
        user, pair = (asked.team_id, asked.user_id), (asked.team_id, asked.channel_id)
        self.images[user] = self.images.get(user, 0) + asked.n
        if asked.team_id in self.team_usd:
            self.team_usd[asked.team_id] += estimate or 0.0
            self.channel_usd[pair] = self.channel_usd.get(pair, 0.0) + (estimate or 0.0)


def _check(
    policy: CostPolicy, asked: Asked, estimate: float | None, now: float, books: _Books
) -> tuple[float, float] | None:
    """Raise QuotaExceeded when this request goes over a limit; returns the 80 % alert to
    record (USD spent with this request, limit) or None."""
    override = books.overrides[(asked.team_id, asked.channel_id)]
    user_limit = override[0] if override and override[0] is not None else policy.user_daily_images
    channel_usd = override[1] if override else None
    if user_limit is not None and asked.user_id not in policy.admins:
        end = day_bounds(now)[1]
        used = books.images.get((asked.team_id, asked.user_id), 0)
        if used + asked.n > user_limit:
            raise QuotaExceeded(
                Limit.USER_DAILY, used=used, limit=user_limit, asked=asked.n, resets_at=end
            )
    if policy.team_monthly_usd is None and channel_usd is None:
        return None
    end = month_bounds(now)[1]
    if estimate is None:
        limit = policy.team_monthly_usd if policy.team_monthly_usd is not None else channel_usd
        raise QuotaExceeded(
            Limit.UNPRICED,
            used=0,
            limit=limit or 0,
            asked=0,
            resets_at=end,
            model=price_model(asked.provider, asked.model),
        )
    alert = None
    for kind, limit, spent in (
        (
            Limit.CHANNEL_MONTHLY,
            channel_usd,
            books.channel_usd.get((asked.team_id, asked.channel_id), 0.0),
        ),
        (Limit.TEAM_MONTHLY, policy.team_monthly_usd, books.team_usd.get(asked.team_id, 0.0)),
    ):
        if limit is None:
            continue
        spent = round(spent, 6)
        if spent + estimate > limit + 1e-9:
            raise QuotaExceeded(kind, used=spent, limit=limit, asked=estimate, resets_at=end)
        if kind is Limit.TEAM_MONTHLY and spent + estimate >= ALERT_SHARE * limit:
            alert = (round(spent + estimate, 6), limit)
    return alert


@dataclass(frozen=True)
class BudgetAlert:
    """A workspace reached ALERT_SHARE of its monthly budget: month ("2026-11"), USD."""

    team_id: str
    month: str
    spent_usd: float
    limit_usd: float


async def take_alerts(
    sm: async_sessionmaker[AsyncSession], clock: Callable[[], float] = time.time
) -> list[BudgetAlert]:
    """Claim every budget alert not sent yet (each is returned to exactly one caller, once
    per workspace and month); the caller DMs the admins."""
    async with sm.begin() as db:
        return [BudgetAlert(*row) for row in await usage_db.claim_alerts(db, clock())]
