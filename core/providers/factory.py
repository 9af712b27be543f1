"""Build the configured provider from the settings."""

from __future__ import annotations

from core.config import Settings, SettingsError
from core.providers.base import ImageProvider


def build_provider(settings: Settings) -> ImageProvider:
    """The provider named by IMAGE_PROVIDER, configured from the settings.

    Raises SettingsError when the provider's API key is missing.
    """
    if settings.image_provider == "openai":
        from core.providers.openai import OpenAIProvider

        if settings.openai_api_key is None:
            raise SettingsError("OPENAI_API_KEY is required when IMAGE_PROVIDER=openai")
        return OpenAIProvider(
            api_key=settings.openai_api_key.get_secret_value(),
            base_url=settings.openai_base_url,
            model=settings.image_model,
            timeout=settings.provider_timeout_seconds,
        )
    if settings.image_provider == "toapis":
        from core.providers.toapis import ToAPIsProvider

        if settings.toapis_api_key is None:
            raise SettingsError("TOAPIS_API_KEY is required when IMAGE_PROVIDER=toapis")
        return ToAPIsProvider(
            api_key=settings.toapis_api_key.get_secret_value(),
            base_url=settings.toapis_base_url,
            model=settings.image_model,
            timeout=settings.provider_timeout_seconds,
        )
    from core.providers.local import LocalProvider

    return LocalProvider(render_seconds=settings.local_render_seconds)
