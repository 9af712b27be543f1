"""Estimates before submit, reconciliation from OpenAI's `usage`, "unpriced" never as $0,
and the `--fresh` flag (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from core import db, sessions, usage
from core.flags import FlagError, Params, parse_command
from core.pricing import cost_from_usage, estimate_request, is_priced, price_size
from core.quotas import CostPolicy


def test_estimates_use_the_provider_size_quality_and_n() -> None:
    assert price_size("openai", 1254, 836) == "1536x1024"
    assert estimate_request(None, "openai", None, (1254, 836), "low", 2) == 0.032
    # "auto" (no --quality) has no list price: the model's highest price bounds it.
    assert estimate_request(None, "openai", None, (1024, 1024), None, 1) == 0.25
    assert estimate_request(None, "local", None, (1024, 1024), None, 4) == 0.0
    assert estimate_request(None, "toapis", None, (1024, 1024), None, 1) is None
    assert not is_priced(None, "gpt-4o-image")
    table = {"gpt-4o-image": {"*": {"*": 0.02}}}
    assert estimate_request(table, "toapis", None, (1024, 1024), None, 2) == 0.04


def test_openai_usage_gives_the_real_cost() -> None:
    reported = {
        "input_tokens": 50,
        "output_tokens": 4160,
        "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
    }
    # 50 text tokens at $5/M + 4160 output tokens at $40/M (1024x1024 high).
    assert cost_from_usage("openai", "gpt-image-1", reported) == pytest.approx(0.16665)
    assert cost_from_usage("openai", "gpt-image-1", {}) is None
    assert cost_from_usage("toapis", None, reported) is None


async def test_unpriced_is_shown_as_unpriced_not_zero(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/u.db"
    await db.upgrade_to_head(url)
    engine = db.create_engine(url)
    sm = db.sessionmaker(engine)
    try:
        for provider in ("toapis", "local"):
            await sessions.start(
                sm,
                team_id="T1",
                channel_id="C1",
                user_id="U1",
                prompt=f"by {provider}",
                params=Params(),
                provider=provider,
                model=None,
                response_url=None,
            )
        mine = await usage.personal(sm, CostPolicy(), "T1", "C1", "U1")
        assert (mine.today.images, mine.today.usd, mine.today.unpriced) == (2, 0.0, 1)
        assert "Today: 2 images, $0.00 + 1 unpriced" in messages.usage_personal(mine)
        month = mine.month_name
        rows = {r["provider"]: r for r in await usage.export_rows(sm, month)}
        assert rows["toapis"]["usd"] is None and rows["toapis"]["unpriced_generations"] == 1
        assert rows["local"]["usd"] == 0.0
    finally:
        await engine.dispose()


def test_fresh_is_a_switch() -> None:
    parsed = parse_command("a kite --fresh --seed 3")
    assert (parsed.prompt, parsed.params.fresh, parsed.params.seed) == ("a kite", True, 3)
    assert parse_command("a kite --seed 3 --fresh").params.fresh
    assert not parse_command("a kite").params.fresh
    with pytest.raises(FlagError) as refused:
        parse_command("a kite --stale")
    assert "`--fresh`" in messages.flag_error(refused.value)  # the allowed flags are listed
