"""Settings, read once at start from the environment (and `.env`).

The variable names are the public contract in DESIGN.md. `load_settings` turns a
missing or malformed value into a `SettingsError` whose message is one line per
variable, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class SettingsError(Exception):
    """A setting is missing or malformed; `str(err)` names the variable and the problem."""


Origin = tuple[str, str, int]
"""A web origin as (scheme, host, port): scheme and host lower case, port explicit."""

SLACK_FILES_ORIGIN = "https://files.slack.com"
"""Where Slack serves ``url_private`` in production (https://api.slack.com/types/file)."""

_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(url: str) -> Origin:
    """The origin of an absolute http(s) URL: (scheme, host, port), port made explicit.

    ``https://files.slack.com`` and ``https://FILES.slack.com:443/x`` give the same origin;
    ``http://127.0.0.1:8080`` and ``http://127.0.0.1:8081`` do not. Raises ValueError for
    anything that is not an absolute http(s) URL with a host (or has a malformed port).
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) origin such as https://files.slack.com")
    port = parts.port  # raises ValueError for a malformed port
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


ASYNC_DRIVERS = {"sqlite": ("aiosqlite", None), "postgresql": ("asyncpg", "postgres")}
"""Backend → (the async driver we support, the package extra that installs it)."""


def database_url_problem(value: str) -> str | None:
    """Why `value` cannot be DATABASE_URL (one sentence saying what to use), or None.

    The URL must be a SQLAlchemy URL naming an async driver (`sqlite+aiosqlite://…`,
    `postgresql+asyncpg://…`) that is installed. Nothing is connected to or created here.
    The password of the URL never appears in the answer.
    """
    try:
        url = make_url(value)
    except ArgumentError:
        return "must be a SQLAlchemy URL such as sqlite+aiosqlite:///./data/imagine.db"
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend not in ASYNC_DRIVERS:
        return (
            f"the {backend} database is not supported; use sqlite+aiosqlite or postgresql+asyncpg"
        )
    wanted, extra = ASYNC_DRIVERS[backend]
    if driver != wanted:
        fixed = url.set(drivername=f"{backend}+{wanted}").render_as_string(hide_password=True)
        return f"needs the async driver {wanted}: use {fixed}"
    if importlib.util.find_spec(wanted) is None:
        install = f"pip install 'slack-imagine[{extra}]'" if extra else f"pip install {wanted}"
        return f"the {wanted} driver is not installed: {install}"
    return None


# What each Slack token looks like (Slack API docs, "Tokens"): a bot token starts with
# xoxb-, an app-level token (Socket Mode) with xapp-.
_TOKEN_SHAPES = {
    "slack_bot_token": ("a bot token", "xoxb-"),
    "slack_app_token": ("an app-level token", "xapp-"),
}


class Settings(BaseSettings):
    """Every setting of the service. Environment variable = field name in upper case."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None  # xoxb-…: one workspace, without OAuth
    slack_signing_secret: SecretStr | None = None  # checks that HTTP requests come from Slack
    slack_app_token: SecretStr | None = None  # xapp-…: for Socket Mode
    # OAuth (one deployment, many workspaces): all three or none.
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_state_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    # Comma-separated origins the bot token may be sent to for file downloads; unset means
    # https://files.slack.com plus the origin of SLACK_API_URL when that is not slack.com.
    slack_file_origins: str | None = None

    database_url: str = "sqlite+aiosqlite:///./data/imagine.db"
    image_store_dir: Path = Path("./data/images")

    image_provider: Literal["local", "openai", "toapis"] = "local"
    image_model: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    toapis_api_key: SecretStr | None = None
    toapis_base_url: str = "https://toapis.com"

    port: int = Field(default=3000, ge=1, le=65535)

    # Slack user ids (comma or space separated) with admin rights in the app besides the
    # workspace's admins and owners.
    imagine_admins: str = ""

    # Largest image (width x height, pixels) decoded from anyone (checked from the header).
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

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

    # Content policy and privacy (issue 12). MODERATION_BLOCKLIST: comma-separated words or
    # regular expressions, matched case-insensitively as whole words; the file holds one
    # per line (# starts a comment). RETENTION_DAYS unset = keep everything.
    moderation: Literal["off", "blocklist", "openai"] = "blocklist"
    moderation_blocklist: str = ""
    moderation_blocklist_file: Path | None = None
    moderation_fail: Literal["open", "closed"] = "closed"
    moderation_images: bool = False
    moderation_results: bool = False
    retention_days: float | None = Field(default=None, gt=0)
    # Cost control (issue 11). Unset quotas mean unlimited.
    # Images one person may ask for per UTC day (regenerations, refinements and --n count
    # per image); people in IMAGINE_ADMINS are exempt.
    quota_user_daily_images: int | None = Field(default=None, ge=0)
    # Workspace spend per calendar month (UTC), USD, estimated from the price table.
    quota_team_monthly_usd: float | None = Field(default=None, ge=0)
    # The same person asking for the same prompt and flags in the same channel within this
    # many seconds is asked to confirm instead of queueing a second job (0 turns it off).
    duplicate_window_seconds: float = Field(default=120.0, ge=0)
    # Team review, gallery retries (issue 10): a gallery post Slack refused (bot not in the
    # channel, channel gone, rate limits, network) is tried again after this many seconds,
    # doubling up to the cap, and given up after that many tries.
    gallery_retry_seconds: float = Field(default=30.0, gt=0)
    gallery_retry_max_seconds: float = Field(default=3600.0, gt=0)
    gallery_retry_attempts: int = Field(default=30, ge=1)

    # Scale-out (issue 14): a shared image store. IMAGE_STORE_URL=s3://bucket/prefix keeps
    # images in an S3 (or compatible) bucket, with IMAGE_STORE_DIR as this machine's cache;
    # S3_ENDPOINT_URL names a compatible store (MinIO, R2, …). Credentials and region come
    # from the usual AWS_* variables.
    image_store_url: str | None = None
    s3_endpoint_url: str | None = None

    @field_validator("image_store_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("must be an object store URL such as s3://bucket/prefix")
        return value.strip().rstrip("/")

    @field_validator("s3_endpoint_url")
    @classmethod
    def _s3_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://s3.example.com")
        return value or None

    # Speed under load (issue 13). SLACK_RATE_SCALE multiplies Slack's published per-method
    # rates the bot paces itself to (bot/pacing.py): above 1 only where Slack granted more
    # (or for a faster local stand-in). METRICS_PORT: where `imagine-bot worker` serves
    # GET /metrics (serve answers it on PORT); unset = the worker serves none.
    slack_rate_scale: float = Field(default=1.0, gt=0)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # App Home refresh (issue 10). HOME_REFRESH_SECONDS: the least time between two
    # republished Home tabs of one person when items on it change (the latest state wins).
    home_refresh_seconds: float = Field(default=2.0, ge=0)

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_file_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        if value is None:
            return None
        items = [item.strip() for item in value.split(",") if item.strip()]
        if not items:
            raise ValueError("must list at least one origin such as https://files.slack.com")
        for item in items:
            parse_origin(item)
            if urlsplit(item).path not in ("", "/") or urlsplit(item).query:
                raise ValueError(f"{item!r} must be an origin only (scheme, host, port), no path")
        return ",".join(items)

    @field_validator("moderation_blocklist")
    @classmethod
    def _blocklist(cls, value: str) -> str:
        for entry in (part.strip() for part in value.split(",")):
            if entry:
                try:
                    re.compile(entry)
                except re.error as err:
                    raise ValueError(f"{entry!r} is not a regular expression ({err})") from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        name = value.strip().upper()
        if name not in logging.getLevelNamesMapping():
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return name

    @field_validator("slack_bot_token", "slack_app_token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        what, prefix = _TOKEN_SHAPES[info.field_name or ""]
        if value is not None and not value.get_secret_value().startswith(prefix):
            raise ValueError(f"must be {what} starting with {prefix}")
        return value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        problem = database_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _oauth_all_or_none(self) -> Settings:
        names = ("slack_client_id", "slack_client_secret", "slack_state_secret")
        missing = [name.upper() for name in names if not getattr(self, name)]
        if 0 < len(missing) < len(names):
            raise ValueError(
                "OAuth needs SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET "
                f"together; set {', '.join(missing)} too, or unset all three"
            )
        return self

    @property
    def oauth(self) -> bool:
        """True when the OAuth settings are set: installations, not SLACK_BOT_TOKEN, give
        each workspace's token (one deployment serves many workspaces)."""
        return self.slack_client_id is not None

    def file_origins(self) -> frozenset[Origin]:
        """The origins the bot token may be sent to when downloading a Slack file.

        ``SLACK_FILE_ORIGINS`` when set; otherwise ``https://files.slack.com`` plus the
        origin of ``SLACK_API_URL`` when its host is not ``slack.com`` (the local stand-in,
        which serves ``url_private`` itself). Origins compare scheme, host and port.
        """
        if self.slack_file_origins:
            return frozenset(parse_origin(o) for o in self.slack_file_origins.split(","))
        origins = {parse_origin(SLACK_FILES_ORIGIN)}
        api = parse_origin(self.slack_api_url)
        if api[1] != "slack.com":
            origins.add(api)
        return frozenset(origins)

    def admin_ids(self) -> frozenset[str]:
        """The user ids named in ``IMAGINE_ADMINS`` (comma or space separated)."""
        return frozenset(part for part in self.imagine_admins.replace(",", " ").split() if part)

    def secrets(self) -> list[str]:
        """Every configured secret value (tokens, signing/client secrets, provider keys).

        Every ``SecretStr`` setting counts, so a secret added later is covered too; used by
        the log redactor (:mod:`core.logs`). Unset and empty values are left out.
        """
        values = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values

    def require(self, *names: str) -> None:
        """Raise `SettingsError` naming every one of `names` that is unset (one line each)."""
        missing = [
            f"{name.upper()} is required but not set"
            for name in names
            if getattr(self, name) is None
        ]
        if missing:
            raise SettingsError("\n".join(missing))


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise `SettingsError` (one line per bad variable) when invalid."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as err:
        lines = []
        for error in err.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            lines.append(f"{name}: {message}")
        raise SettingsError("\n".join(lines)) from None
