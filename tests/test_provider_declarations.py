"""Each provider declares itself once (`ProviderInfo`), and the rest of the code reads that.

The declarations feed the `ImageProvider` protocol's attributes, the input-image limits
(`core.images.limits_for`), the default prices (`core.pricing`), the UI label and the
factory; and no code outside the providers reads a provider attribute the protocol does not
declare.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from core.config import Settings, SettingsError
from core.images import limits_for
from core.pricing import DEFAULT_PRICES, unit_price
from core.providers.base import DEFAULT_MAX_IMAGE_PIXELS, ImageProvider
from core.providers.factory import BUILDERS, build_provider
from core.providers.local import LocalProvider
from core.providers.openai import OpenAIProvider
from core.providers.registry import PROVIDERS, default_prices, provider_info, provider_label
from core.providers.toapis import ToAPIsProvider
from core.schedule import PollSchedule

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL_MEMBERS = set(ImageProvider.__annotations__) | {
    name for name in vars(ImageProvider) if not name.startswith("_")
}


def _instances() -> list[ImageProvider]:
    return [
        LocalProvider(render_seconds=0),
        OpenAIProvider("sk-k", "http://127.0.0.1:9/v1"),
        OpenAIProvider("sk-k", "http://127.0.0.1:9/v1", model="dall-e-3"),
        ToAPIsProvider("key", "http://127.0.0.1:9"),
    ]


async def test_every_provider_has_what_the_protocol_declares() -> None:
    assert {"info", "name", "label", "allowed_n", "model", "poll_schedule"} <= PROTOCOL_MEMBERS
    for provider in _instances():
        try:
            for member in PROTOCOL_MEMBERS:
                assert hasattr(provider, member), (type(provider).__name__, member)
            info = provider.info
            assert PROVIDERS[info.name] is type(provider)
            assert (provider.name, provider.allowed_n) == (info.name, info.allowed_n)
            assert isinstance(provider.poll_schedule, PollSchedule)
            assert provider.poll_schedule == info.poll_schedule
            assert provider.label == info.label(provider.model)
        finally:
            await provider.aclose()


async def test_models_and_labels_are_as_before() -> None:
    local, openai, dalle, toapis = _instances()
    try:
        assert (local.model, local.label) == (None, "local preview renderer")
        assert (openai.model, openai.label) == ("gpt-image-1", "OpenAI gpt-image-1")
        assert (dalle.model, dalle.label) == ("dall-e-3", "OpenAI dall-e-3")
        assert (toapis.model, toapis.label) == ("gpt-4o-image", "ToAPIs gpt-4o-image")
        assert (local.allowed_n, openai.allowed_n, toapis.allowed_n) == (
            (1, 2, 3, 4),
            (1, 2, 3, 4),
            (1, 2, 4),
        )
        assert toapis.poll_schedule.first == 5.0 and openai.poll_schedule.first == 0.0
    finally:
        for provider in (local, openai, dalle, toapis):
            await provider.aclose()


def test_labels_by_name_match_the_stored_rows_labels() -> None:
    # How a stored generation (provider name + model) is named in messages.
    assert provider_label("local", None) == "local preview renderer"
    assert provider_label("local", "anything") == "local preview renderer"
    assert provider_label("openai", "gpt-image-1") == "OpenAI gpt-image-1"
    assert provider_label("openai", None) == "OpenAI"
    assert provider_label("toapis", "gpt-4o-image") == "ToAPIs gpt-4o-image"
    assert provider_label("midjourney", "v6") == "midjourney"


def test_lookup_by_name_and_unknown_names() -> None:
    assert provider_info(" OpenAI ") is OpenAIProvider.info
    with pytest.raises(KeyError, match="known: local, openai, toapis"):
        provider_info("midjourney")


def test_input_limits_come_from_the_declarations() -> None:
    for name, cls in PROVIDERS.items():
        limits = limits_for(name)
        declared = cls.info.limits
        assert (limits.max_bytes, limits.mimes, limits.mask_max_bytes) == (
            declared.max_bytes,
            declared.mimes,
            declared.mask_max_bytes,
        )
    assert ToAPIsProvider.info.limits.max_references == 5


def test_default_prices_come_from_the_declarations() -> None:
    assert default_prices() == DEFAULT_PRICES
    assert DEFAULT_PRICES["gpt-image-1"] is OpenAIProvider.info.default_prices["gpt-image-1"]
    assert unit_price(DEFAULT_PRICES, "gpt-image-1", "1536x1024", "high") == 0.25
    assert unit_price(DEFAULT_PRICES, "local", "3:2", None) == 0.0
    assert unit_price(DEFAULT_PRICES, "gpt-4o-image", "1:1", "low") is None


async def test_factory_builds_every_provider_from_one_table() -> None:
    assert set(BUILDERS) == set(PROVIDERS)
    base = {"slack_bot_token": "xoxb-1", "slack_signing_secret": "s"}
    built = [
        build_provider(Settings(**base, image_provider="local", local_render_seconds=0.5)),  # type: ignore[arg-type]
        build_provider(
            Settings(**base, image_provider="openai", openai_api_key="sk-a", image_model="m1")  # type: ignore[arg-type]
        ),
        build_provider(Settings(**base, image_provider="toapis", toapis_api_key="t-a")),  # type: ignore[arg-type]
    ]
    try:
        local, openai, toapis = built
        assert isinstance(local, LocalProvider) and local.render_seconds == 0.5
        assert isinstance(openai, OpenAIProvider) and openai.label == "OpenAI m1"
        assert isinstance(toapis, ToAPIsProvider) and toapis.model == "gpt-4o-image"
        assert openai.max_image_pixels == toapis.max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS
    finally:
        for provider in built:
            await provider.aclose()
    for name, env in (("openai", "OPENAI_API_KEY"), ("toapis", "TOAPIS_API_KEY")):
        with pytest.raises(SettingsError, match=f"{env} is required when IMAGE_PROVIDER={name}"):
            build_provider(Settings(**base, image_provider=name))  # type: ignore[arg-type]


def test_the_renderer_lives_beside_the_local_provider() -> None:
    assert importlib.util.find_spec("core.providers.local.render") is not None
    assert importlib.util.find_spec("core.render") is None


# `provider.x`, `self._provider.x`, `runtime.provider.x`, `getattr(provider, "x"…)` outside
# the providers (not `row.provider`, a stored name, nor str methods on a name).
_READS = re.compile(
    r"(?:(?<![\w.])|\bself\.|\bruntime\.|\bjobs\.|\bctx\.)_?provider\.(\w+)"
    r"|getattr\(\s*(?:self\.)?_?provider\s*,\s*\"(\w+)\""
)


def test_no_code_reads_a_provider_attribute_the_protocol_does_not_declare() -> None:
    undeclared: list[str] = []
    sources = [*ROOT.joinpath("core").rglob("*.py"), *ROOT.joinpath("bot").rglob("*.py")]
    seen: set[str] = set()
    for path in sources:
        if "providers" in path.relative_to(ROOT).parts:
            continue
        for match in _READS.finditer(path.read_text(encoding="utf-8")):
            name = match.group(1) or match.group(2)
            if name in dir(str):
                continue
            seen.add(name)
            if name not in PROTOCOL_MEMBERS:
                undeclared.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert undeclared == []
    assert {"submit", "poll", "label"} <= seen  # the scan does find the reads
