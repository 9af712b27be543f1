"""The `local` provider: an offline "local preview renderer" (`provider`) and the Pillow
drawing it runs (`render`)."""

from core.providers.local.provider import INFO, LocalProvider

__all__ = ["INFO", "LocalProvider"]
