"""Every provider, listed once, and what the rest of the code reads from their declarations.

Each provider class declares itself in `info` (`ProviderInfo`: name, title, default model,
allowed `n`, input-image limits, poll schedule, default prices); this module indexes those
declarations by IMAGE_PROVIDER value, so code that only knows a provider's name (stored
rows, input-image checks, prices) asks here instead of keeping its own table.
"""

from __future__ import annotations

from core.providers.base import DeclaredProvider, PriceTable, ProviderInfo
from core.providers.local import LocalProvider
from core.providers.openai import OpenAIProvider
from core.providers.toapis import ToAPIsProvider

PROVIDERS: dict[str, type[DeclaredProvider]] = {
    cls.info.name: cls for cls in (LocalProvider, OpenAIProvider, ToAPIsProvider)
}
"""Provider classes by IMAGE_PROVIDER value ("local", "openai", "toapis")."""


def provider_info(name: str) -> ProviderInfo:
    """The declaration of the provider called `name` (case and surrounding spaces ignored).

    Raises KeyError naming the known providers for any other name.
    """
    try:
        return PROVIDERS[name.strip().lower()].info
    except KeyError:
        known = ", ".join(sorted(PROVIDERS))
        raise KeyError(f"unknown image provider {name!r}; known: {known}") from None


def provider_label(name: str, model: str | None) -> str:
    """How the UI names provider `name` running `model` ("OpenAI gpt-image-1", "local preview
    renderer"); an unknown provider is named as stored."""
    cls = PROVIDERS.get(name)
    return cls.info.label(model) if cls is not None else name


def default_prices() -> dict[str, PriceTable]:
    """Every provider's published prices in one table, USD per image by model, size and
    quality (`{"model": {"size": {"quality": usd}}}`); a model priced by two providers keeps
    the first provider's entry, in `PROVIDERS` order."""
    table: dict[str, PriceTable] = {}
    for cls in PROVIDERS.values():
        for model, sizes in cls.info.default_prices.items():
            table.setdefault(model, sizes)
    return table
