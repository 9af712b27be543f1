"""Build the configured provider from the settings: one table entry per provider."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import SecretStr

from core.config import Settings, SettingsError
from core.providers.base import DEFAULT_MAX_IMAGE_PIXELS, ImageProvider
from core.providers.http import HTTPProvider
from core.providers.local import LocalProvider
from core.providers.openai import OpenAIProvider
from core.providers.toapis import ToAPIsProvider

Builder = Callable[[Settings], ImageProvider]


def max_image_pixels(settings: Settings) -> int:
    """The MAX_IMAGE_PIXELS setting (pixels, width x height) when the settings have it,
    else `DEFAULT_MAX_IMAGE_PIXELS` (40,000,000)."""
    value = getattr(settings, "max_image_pixels", None)
    return int(value) if value else DEFAULT_MAX_IMAGE_PIXELS


def _local(settings: Settings) -> ImageProvider:
    return LocalProvider(render_seconds=settings.local_render_seconds)


def _http(
    cls: type[HTTPProvider],
    key_env: str,
    key: Callable[[Settings], SecretStr | None],
    base_url: Callable[[Settings], str],
) -> Builder:
    """A builder for an HTTP provider whose key is the setting `key_env`."""

    def build(settings: Settings) -> ImageProvider:
        secret = key(settings)
        if secret is None:
            raise SettingsError(f"{key_env} is required when IMAGE_PROVIDER={cls.info.name}")
        return cls(
            api_key=secret.get_secret_value(),
            base_url=base_url(settings),
            model=settings.image_model,
            timeout=settings.provider_timeout_seconds,
            max_image_pixels=max_image_pixels(settings),
        )

    return build


BUILDERS: dict[str, Builder] = {
    "local": _local,
    "openai": _http(
        OpenAIProvider, "OPENAI_API_KEY", lambda s: s.openai_api_key, lambda s: s.openai_base_url
    ),
    "toapis": _http(
        ToAPIsProvider, "TOAPIS_API_KEY", lambda s: s.toapis_api_key, lambda s: s.toapis_base_url
    ),
}
"""How to build each provider (keys as in `core.providers.registry.PROVIDERS`)."""


def build_provider(settings: Settings) -> ImageProvider:
    """The provider named by IMAGE_PROVIDER, configured from the settings.

    Raises SettingsError when the provider's API key is missing or the name is unknown.
    """
    try:
        builder = BUILDERS[settings.image_provider]
    except KeyError:
        known = ", ".join(sorted(BUILDERS))
        raise SettingsError(
            f"IMAGE_PROVIDER={settings.image_provider!r} is not a provider; use one of {known}"
        ) from None
    return builder(settings)
