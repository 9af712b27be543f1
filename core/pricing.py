"""Cost of a generation in USD, from a price table per image by model, size and quality.

The table shape is `{"model": {"size": {"quality": usd_per_image}}}` (settings field
`image_prices`, env `IMAGE_PRICES` as JSON). "*" matches anything at any level; an exact key
wins over "*". Sizes are the provider's size values ("1024x1024", "1536x1024", or ToAPIs'
"1:1"); quality is "low" | "medium" | "high", and None (provider default) is looked up as
"auto", then "*".

`DEFAULT_PRICES` holds the prices the providers declare (`core.providers.registry`): OpenAI's
published per-image prices for gpt-image-1 (OpenAI pricing page, "Image generation":
low/medium/high at 1024x1024 $0.011/$0.042/$0.167, at 1536x1024 and 1024x1536
$0.016/$0.063/$0.25) and the free local renderer. OpenAI's default quality "auto"
has no published price, so a request without `--quality` has an unknown cost (None) unless
the configured table prices "auto" or "*".
"""

from __future__ import annotations

from collections.abc import Mapping

from core.providers.base import PriceTable
from core.providers.registry import default_prices

__all__ = ["DEFAULT_PRICES", "WILDCARD", "PriceTable", "estimate_cost", "unit_price"]

WILDCARD = "*"

DEFAULT_PRICES: PriceTable = default_prices()
"""The providers' own published prices (each declares them in `ProviderInfo.default_prices`)."""


def _keys(value: str | None, fallbacks: tuple[str, ...] = ()) -> list[str]:
    keys = [value] if value else list(fallbacks)
    return [*keys, WILDCARD]


def unit_price(prices: PriceTable, model: str, size: str, quality: str | None) -> float | None:
    """USD per image from one table, exact keys before "*" at each level; None if unpriced."""
    for model_key in _keys(model):
        sizes = prices.get(model_key)
        if not isinstance(sizes, Mapping):
            continue
        for size_key in _keys(size):
            qualities = sizes.get(size_key)
            if not isinstance(qualities, Mapping):
                continue
            for quality_key in _keys(quality, ("auto",)):
                price = qualities.get(quality_key)
                if isinstance(price, int | float) and not isinstance(price, bool):
                    return float(price)
    return None


def estimate_cost(
    prices: PriceTable | None, model: str, size: str, quality: str | None, n: int
) -> float | None:
    """USD for `n` images, or None when no price is known.

    The configured `prices` are consulted first (with wildcards); when they have no entry
    for this model/size/quality (or are None), `DEFAULT_PRICES` is used.
    """
    price = unit_price(prices, model, size, quality) if prices else None
    if price is None:
        price = unit_price(DEFAULT_PRICES, model, size, quality)
    if price is None:
        return None
    return round(price * max(0, n), 6)
