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
from core.providers.registry import PROVIDERS, default_prices
from core.providers.results import closest_size

__all__ = [
    "DEFAULT_PRICES",
    "WILDCARD",
    "PriceTable",
    "cost_from_usage",
    "estimate_cost",
    "estimate_request",
    "is_priced",
    "price_model",
    "price_size",
    "unit_price",
]

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


def price_model(provider: str, model: str | None) -> str:
    """The name a request is priced under: its model, else the provider's default model,
    else the provider's name (the local renderer has no models)."""
    cls = PROVIDERS.get(provider)
    default = cls.info.default_model if cls is not None else None
    return model or default or provider


def price_size(provider: str, width: int, height: int) -> str:
    """The provider's size value a request of `width` × `height` pixels is made (and
    priced) at: the closest of the sizes it declares, else "WxH"."""
    cls = PROVIDERS.get(provider)
    if cls is not None and cls.info.sizes:
        return closest_size(width, height, cls.info.sizes).value
    return f"{width}x{height}"


def _all_prices(prices: PriceTable | None, model: str) -> list[float]:
    found: list[float] = []
    for table in (prices or {}, DEFAULT_PRICES):
        for key in (model, WILDCARD):
            sizes = table.get(key)
            if not isinstance(sizes, Mapping):
                continue
            for qualities in sizes.values():
                if isinstance(qualities, Mapping):
                    found += [
                        float(v)
                        for v in qualities.values()
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    ]
    return found


def is_priced(prices: PriceTable | None, model: str) -> bool:
    """True when the configured table or the published defaults price `model` at all."""
    return bool(_all_prices(prices, model))


def estimate_request(
    prices: PriceTable | None,
    provider: str,
    model: str | None,
    size: tuple[int, int],
    quality: str | None,
    n: int,
) -> float | None:
    """USD a request will cost, before it is submitted: the price of its model, provider
    size (closest to `size`, pixels) and quality times `n`. When that exact entry is
    missing but the model has prices (OpenAI's default quality "auto" has none), the
    highest price of the model is used, so a budget is never under-counted. None when the
    model has no price at all ("unpriced")."""
    name = price_model(provider, model)
    exact = estimate_cost(prices, name, price_size(provider, *size), quality, n)
    if exact is not None:
        return exact
    known = _all_prices(prices, name)
    return round(max(known) * max(0, n), 6) if known else None


def _tokens(usage: Mapping[str, object], key: str) -> int:
    value = usage.get(key)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


def cost_from_usage(
    provider: str, model: str | None, usage: Mapping[str, object] | None
) -> float | None:
    """USD a finished request cost according to the provider's reported `usage`, for a
    provider that bills by tokens (`ProviderInfo.token_prices`, USD per million).

    OpenAI's Images API answers `usage: {input_tokens, output_tokens, input_tokens_details:
    {text_tokens, image_tokens}}` for GPT image models. None when the provider does not bill
    by tokens, the model has no token prices, or `usage` carries no token counts.
    """
    cls = PROVIDERS.get(provider)
    if cls is None or not usage:
        return None
    rates = cls.info.token_prices.get(price_model(provider, model))
    if not rates or "output_tokens" not in usage:
        return None
    details = usage.get("input_tokens_details")
    details = details if isinstance(details, Mapping) else {}
    text_in = _tokens(details, "text_tokens")
    image_in = _tokens(details, "image_tokens")
    if not details:
        text_in = _tokens(usage, "input_tokens")
    million = 1_000_000
    cost = (
        text_in * rates.get("text_input", 0.0)
        + image_in * rates.get("image_input", 0.0)
        + _tokens(usage, "output_tokens") * rates.get("output", 0.0)
    ) / million
    return round(cost, 6)
