"""Price table lookups: exact keys, "*" wildcards, defaults, unknowns."""

from __future__ import annotations

import pytest

from core.pricing import DEFAULT_PRICES, estimate_cost, unit_price


@pytest.mark.parametrize(
    ("size", "quality", "n", "expected"),
    [
        ("1024x1024", "low", 1, 0.011),
        ("1024x1024", "medium", 2, 0.084),
        ("1024x1024", "high", 1, 0.167),
        ("1536x1024", "low", 1, 0.016),
        ("1024x1536", "medium", 1, 0.063),
        ("1536x1024", "high", 4, 1.0),
    ],
)
def test_default_gpt_image_1_prices(size: str, quality: str, n: int, expected: float) -> None:
    assert estimate_cost(None, "gpt-image-1", size, quality, n) == pytest.approx(expected)


def test_local_is_free_and_unknowns_are_none() -> None:
    assert estimate_cost(None, "local", "1216x832", None, 4) == 0.0
    assert estimate_cost(None, "gpt-image-1", "1024x1024", None, 1) is None  # "auto": unpriced
    assert estimate_cost(None, "gpt-4o-image", "1:1", "high", 1) is None
    assert estimate_cost(None, "gpt-image-1", "256x256", "low", 1) is None


def test_wildcards_at_every_level_and_exact_wins() -> None:
    prices = {
        "gpt-4o-image": {"*": {"*": 0.02}},
        "gpt-image-1": {"1024x1024": {"*": 0.05, "high": 0.2}},
        "*": {"*": {"high": 0.5}},
    }
    assert estimate_cost(prices, "gpt-4o-image", "3:2", None, 2) == pytest.approx(0.04)
    assert estimate_cost(prices, "gpt-image-1", "1024x1024", "high", 1) == 0.2
    assert estimate_cost(prices, "gpt-image-1", "1024x1024", None, 1) == 0.05
    assert estimate_cost(prices, "dall-e-3", "1024x1024", "high", 1) == 0.5
    # Not in the configured table: the defaults still apply.
    assert estimate_cost(prices, "gpt-image-1", "1536x1024", "low", 1) == 0.016
    assert estimate_cost(prices, "dall-e-3", "1024x1024", "low", 1) is None


def test_auto_quality_can_be_priced() -> None:
    prices = {"gpt-image-1": {"1024x1024": {"auto": 0.03}}}
    assert estimate_cost(prices, "gpt-image-1", "1024x1024", None, 3) == pytest.approx(0.09)


def test_configured_table_overrides_defaults() -> None:
    prices = {"gpt-image-1": {"*": {"*": 0.1}}}
    assert estimate_cost(prices, "gpt-image-1", "1024x1024", "low", 1) == 0.1
    assert unit_price(DEFAULT_PRICES, "gpt-image-1", "1024x1024", "low") == 0.011
