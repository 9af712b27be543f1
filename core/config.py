"""Settings, read once at start from the environment (and `.env`).

The variable names are the public contract in DESIGN.md. `load_settings` turns a
missing or malformed value into a `SettingsError` whose message is one line per
variable, so the CLI can print it without a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(Exception):
    """A setting is missing or malformed; `str(err)` names the variable and the problem."""


class Settings(BaseSettings):
    """Every setting of the service. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    database_url: str = "sqlite+aiosqlite:///./data/imagine.db"
    image_store_dir: Path = Path("./data/images")

    image_provider: Literal["local", "openai", "toapis"] = "local"
    image_model: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    toapis_api_key: SecretStr | None = None
    toapis_base_url: str = "https://toapis.com"

    port: int = Field(default=3000, ge=1, le=65535)

    # Job engine (extensions of the contract, see DESIGN.md).
    job_lease_seconds: float = Field(default=60.0, gt=0)
    job_max_attempts: int = Field(default=5, ge=1)
    job_deadline_seconds: float = Field(default=600.0, gt=0)
    local_render_seconds: float = Field(default=3.0, ge=0)

    # Provider protection (extensions of the contract, see DESIGN.md).
    provider_concurrency: int = Field(default=2, ge=1)
    provider_breaker_failures: int = Field(default=5, ge=1)
    provider_breaker_cooloff_seconds: float = Field(default=60.0, gt=0)
    provider_timeout_seconds: float = Field(default=180.0, gt=0)
    # JSON price table in USD per image: {"model": {"size": {"quality": price}}}; "*" matches any.
    image_prices: dict[str, dict[str, dict[str, float]]] | None = None

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                "must be a SQLAlchemy URL such as sqlite+aiosqlite:///./data/imagine.db"
            )
        return value

    def require(self, *names: str) -> None:
        """Raise `SettingsError` naming the first of `names` that is unset."""
        for name in names:
            if getattr(self, name) is None:
                raise SettingsError(f"{name.upper()} is required but not set")


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise `SettingsError` (one line per bad variable) when invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        lines = []
        for error in err.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            lines.append(f"{name}: {error['msg']}")
        raise SettingsError("; ".join(lines)) from None
