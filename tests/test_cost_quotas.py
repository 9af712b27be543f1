"""Quotas and budgets in the transaction that queues a generation (issue 11), on a real
SQLite file with an injected clock: the race for the last unit, the UTC day boundary,
the workspace budget and its 80 % alert, admins, regenerations and refinements."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import messages
from core import db, quotas, sessions
from core.flags import Params
from core.models import CostRow, GenerationRow, GenerationState, SessionRow
from core.quotas import CostPolicy, DuplicateRequest, Limit, QuotaExceeded
from core.sessions import Conversation

TEAM, CHANNEL = "T0TEAM", "C0HERE"
HERE = Conversation(TEAM, CHANNEL)
NOON = datetime(2026, 11, 17, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    """A settable clock (UTC epoch seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def sm(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/quotas.db"
    await db.upgrade_to_head(url)
    engine = db.create_engine(url)
    yield db.sessionmaker(engine)
    await engine.dispose()


async def _start(
    sm: async_sessionmaker[AsyncSession],
    policy: CostPolicy,
    *,
    user: str = "U1",
    prompt: str = "a lighthouse",
    params: Params | None = None,
    provider: str = "local",
    channel: str = CHANNEL,
) -> int:
    return await sessions.start(
        sm,
        team_id=TEAM,
        channel_id=channel,
        user_id=user,
        prompt=prompt,
        params=params or Params(),
        provider=provider,
        model=None,
        response_url=None,
        cost=policy,
    )


async def _count(sm: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sm() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_two_requests_racing_for_the_last_unit_exactly_one_passes(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    policy = CostPolicy(user_daily_images=3, clock=Clock(NOON))
    await _start(sm, policy, params=Params(n=2), prompt="first")
    results = await asyncio.gather(
        *(_start(sm, policy, prompt=f"racer {i}") for i in range(4)), return_exceptions=True
    )
    passed = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(passed) == 1 and len(refused) == 3, results
    assert all(r.limit_kind is Limit.USER_DAILY and r.used == 3 for r in refused)
    # Nothing of the refused requests was stored: one session each for the two that passed.
    assert await _count(sm, SessionRow) == 2
    assert await _count(sm, GenerationRow) == 2
    assert await _count(sm, CostRow) == 2


async def test_racing_for_the_last_dollar_of_the_budget(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    # OpenAI gpt-image-1, 1024x1024 low: $0.011 an image (published price).
    policy = CostPolicy(team_monthly_usd=0.035, clock=Clock(NOON))
    low = Params(quality="low")
    for i in range(2):
        await _start(sm, policy, params=low, provider="openai", user=f"U{i}", prompt=f"p{i}")
    results = await asyncio.gather(
        *(
            _start(sm, policy, params=low, provider="openai", user=f"U{9 + i}", prompt=f"r{i}")
            for i in range(3)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1, results
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert {r.limit_kind for r in refused} == {Limit.TEAM_MONTHLY}
    assert all(r.used == pytest.approx(0.033) for r in refused)


async def test_the_user_quota_resets_at_the_utc_day_boundary(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock(datetime(2026, 11, 17, 23, 59, 58, tzinfo=UTC).timestamp())
    policy = CostPolicy(user_daily_images=2, clock=clock)
    await _start(sm, policy, params=Params(n=2))
    clock.now += 1.5  # 23:59:59.5, still the same UTC day
    with pytest.raises(QuotaExceeded) as refused:
        await _start(sm, policy, prompt="one more")
    midnight = datetime(2026, 11, 18, tzinfo=UTC).timestamp()
    assert refused.value.resets_at == midnight
    text = messages.quota_refused(refused.value)
    assert "You've used 2 of 2 images today; resets at 00:00 UTC." in text
    assert "Nothing was queued" in text
    clock.now = midnight  # 00:00:00 the next day: a fresh quota
    await _start(sm, policy, prompt="one more", params=Params(n=2))
    with pytest.raises(QuotaExceeded):
        await _start(sm, policy, prompt="and another")


async def test_n_regenerate_and_refinements_count_per_image_and_admins_are_exempt(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    policy = CostPolicy(user_daily_images=4, admins=frozenset({"UADMIN"}), clock=Clock(NOON))
    first = await _start(sm, policy, params=Params(n=3))
    with pytest.raises(QuotaExceeded) as refused:
        await sessions.regenerate(sm, first, "U1", HERE, policy)  # 3 more would make 6
    assert refused.value.used == 3 and refused.value.asked == 3
    # Another person regenerating is counted against their own quota.
    await sessions.regenerate(sm, first, "U2", HERE, policy)
    for i in range(3):
        await _start(sm, policy, user="UADMIN", params=Params(n=4), prompt=f"admin {i}")
    assert await _count(sm, GenerationRow) == 5


async def test_a_failed_generation_does_not_use_the_quota(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    policy = CostPolicy(user_daily_images=2, clock=Clock(NOON))
    first = await _start(sm, policy, params=Params(n=2))
    async with sm.begin() as s:
        row = await s.get(GenerationRow, first)
        assert row is not None
        row.state = GenerationState.FAILED
    await _start(sm, policy, params=Params(n=2), prompt="again")


async def test_budget_refusal_and_the_80_percent_alert_once_a_month(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock(NOON)
    policy = CostPolicy(team_monthly_usd=0.05, clock=clock)
    low = Params(quality="low")
    for i in range(3):  # $0.033: 66 %
        await _start(sm, policy, params=low, provider="openai", prompt=f"p{i}")
    assert await quotas.take_alerts(sm) == []
    await _start(sm, policy, params=low, provider="openai", prompt="p3")  # $0.044: 88 %
    alerts = await quotas.take_alerts(sm)
    assert [(a.team_id, a.month, a.limit_usd) for a in alerts] == [(TEAM, "2026-11", 0.05)]
    assert alerts[0].spent_usd == pytest.approx(0.044)
    assert await quotas.take_alerts(sm) == []  # claimed: never sent twice
    with pytest.raises(QuotaExceeded) as refused:
        await _start(sm, policy, params=low, provider="openai", prompt="p4")
    err = refused.value
    assert err.limit_kind is Limit.TEAM_MONTHLY and err.used == pytest.approx(0.044)
    assert err.resets_at == datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    text = messages.quota_refused(err)
    assert "spent $0.044 of its $0.05 monthly image budget" in text
    assert "resets on 1 December at 00:00 UTC" in text
    # Within budget again (a cheaper request fits): no second alert this month.
    await _start(sm, policy, params=Params(), provider="local", prompt="free")
    assert await quotas.take_alerts(sm) == []
    # Next month the budget is fresh and the alert can come again, once.
    clock.now = datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    for i in range(4):
        await _start(sm, policy, params=low, provider="openai", prompt=f"dec {i}")
    assert [a.month for a in await quotas.take_alerts(sm)] == ["2026-12"]


async def test_an_unpriced_model_is_refused_only_when_a_budget_is_set(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    policy = CostPolicy(clock=Clock(NOON))
    await _start(sm, policy, provider="toapis")  # no budget: fine, shown as unpriced later
    with pytest.raises(QuotaExceeded) as refused:
        await _start(sm, replace(policy, team_monthly_usd=10.0), provider="toapis", prompt="x")
    assert refused.value.limit_kind is Limit.UNPRICED and refused.value.model == "gpt-4o-image"
    assert "IMAGE_PRICES" in messages.quota_refused(refused.value)


async def test_a_channel_override_replaces_the_daily_limit_there(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    from core.db import usage as usage_db

    policy = CostPolicy(user_daily_images=1, clock=Clock(NOON))
    async with sm.begin() as s:
        await usage_db.set_channel_quota(s, TEAM, "C0BIG", 3, None, "UADMIN")
    await _start(sm, policy, channel="C0BIG", params=Params(n=3))
    with pytest.raises(QuotaExceeded):
        await _start(sm, policy, prompt="elsewhere")  # 3 used today, 1 allowed here


async def test_the_same_request_within_the_window_is_a_duplicate(
    sm: async_sessionmaker[AsyncSession],
) -> None:
    clock = Clock(NOON)
    policy = CostPolicy(duplicate_window=120, clock=clock)
    first = await _start(sm, policy, params=Params(aspect_ratio="3:2"))
    clock.now += 40
    with pytest.raises(DuplicateRequest) as dup:
        await _start(sm, policy, params=Params(aspect_ratio="3:2"))
    assert dup.value.previous_id == first and dup.value.seconds_ago == 40
    await _start(sm, policy, params=Params(aspect_ratio="2:3"))  # other flags
    await _start(sm, policy, params=Params(aspect_ratio="3:2"), user="U2")  # other person
    clock.now += 81  # 121 s after the first
    await _start(sm, policy, params=Params(aspect_ratio="3:2"))
    assert await _count(sm, GenerationRow) == 4
