"""Start-up checks of everything that is not Slack: database, image store, provider.

`imagine-bot doctor` prints them as a checklist (bot/doctor.py adds the Slack checks) and
`serve` runs the database check before it starts. Each check returns a `Check`; none
raises. Nothing here creates a database file: a missing SQLite file is reported, not made.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from core import db
from core.config import Settings
from core.providers import openai as openai_provider
from core.providers import toapis as toapis_provider
from core.store import S3ImageStore, open_store

SHUTDOWN_WARNING_DAYS = 30
"""A model whose `shutdown_date` is this close (days) or past fails the provider check."""

HTTP_TIMEOUT = 10.0
"""Seconds allowed for each provider check request."""


@dataclass(frozen=True)
class Check:
    """One line of the checklist: `name`, whether it passed (`ok`), what was found
    (`detail`) and, when it failed, what to change (`fix`)."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # passed, but something deserves attention (shown with "!")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


async def check_database(settings: Settings) -> Check:
    """Connect to DATABASE_URL and compare its Alembic revision with the migrations' head."""
    name = "database reachable and migrated"
    shown, sqlite_file = db.describe_url(settings.database_url)
    migrate = "run `alembic upgrade head` (`imagine-bot serve` does it for SQLite at start)"
    if sqlite_file and not await asyncio.to_thread(Path(sqlite_file).exists):
        return Check(name, False, f"{shown}: the file does not exist yet", migrate)
    try:
        current, head = await db.revisions(settings.database_url)
    except Exception as err:
        return Check(
            name,
            False,
            f"{shown}: cannot connect ({_first_line(err)})",
            "check DATABASE_URL and that the database server is running",
        )
    if current != head:
        where = f"{shown}: at revision {current or 'none'}, head is {head}"
        return Check(name, False, where, migrate)
    return Check(name, True, f"{shown} at revision {head}")


async def check_image_store(settings: Settings) -> Check:
    """Create IMAGE_STORE_DIR if needed and write, then delete, a small file in it; with
    IMAGE_STORE_URL also a small object in the bucket."""
    folder = settings.image_store_dir

    def probe() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-", delete=True) as f:
            f.write(b"ok")
            f.flush()

    try:
        await asyncio.to_thread(probe)
    except OSError as err:
        return Check(
            "image store writable",
            False,
            f"{folder}: {err.strerror or type(err).__name__}",
            "point IMAGE_STORE_DIR at a folder this user may write to",
        )
    if not settings.image_store_url:
        return Check("image store writable", True, str(folder))
    try:
        store = open_store(settings)
        if isinstance(store, S3ImageStore):
            await store.probe()
    except Exception as err:  # obstore's errors: unreachable, no bucket, denied, …
        return Check(
            "image store writable",
            False,
            f"{settings.image_store_url}: {type(err).__name__}: {str(err)[:200]}",
            "check IMAGE_STORE_URL, S3_ENDPOINT_URL and the AWS_* credentials (and the s3 "
            "extra): the bucket must exist and allow put and delete",
        )
    return Check("image store writable", True, store.describe())


async def check_provider(settings: Settings, *, now: datetime | None = None) -> Check:
    """Ask the configured provider a cheap authenticated question.

    OpenAI: `GET {OPENAI_BASE_URL}/models/{model}` (the model object; a `shutdown_date`,
    Unix seconds or `YYYY-MM-DD`, in the past or within SHUTDOWN_WARNING_DAYS fails).
    ToAPIs: `GET {TOAPIS_BASE_URL}/v1/models` (the key's model list). local: no network.
    """
    if settings.image_provider == "local":
        return Check("provider answers", True, "local preview renderer (offline, no key)")
    if settings.image_provider == "openai":
        return await _check_openai(settings, now or datetime.now(UTC))
    return await _check_toapis(settings)


async def _get(url: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        return await http.get(url, headers={"Authorization": f"Bearer {key}"})


async def _check_openai(settings: Settings, now: datetime) -> Check:
    model = settings.image_model or openai_provider.DEFAULT_MODEL
    name = f"provider answers (OpenAI, model {model})"
    if settings.openai_api_key is None:
        return Check(name, False, "OPENAI_API_KEY is not set", "set OPENAI_API_KEY=sk-…")
    url = settings.openai_base_url.rstrip("/") + f"/models/{model}"
    response = await _probe(name, url, settings.openai_api_key, "OPENAI", also=(404,))
    if isinstance(response, Check):
        return response
    if response.status_code == 404:
        return Check(
            name,
            False,
            f"OpenAI does not offer the model `{model}` to this key",
            "set IMAGE_MODEL to a model your key can use, e.g. gpt-image-1",
        )
    shutdown = _shutdown_date(_json(response).get("shutdown_date"))
    if shutdown is not None and shutdown <= (now + timedelta(days=SHUTDOWN_WARNING_DAYS)).date():
        when = "was shut down" if shutdown <= now.date() else "shuts down"
        return Check(
            name,
            False,
            f"`{model}` {when} on {shutdown.isoformat()}",
            "set IMAGE_MODEL to a current model (see OpenAI's deprecations page)",
        )
    return Check(name, True, f"{settings.openai_base_url} knows `{model}`")


async def _check_toapis(settings: Settings) -> Check:
    model = settings.image_model or toapis_provider.DEFAULT_MODEL
    name = f"provider answers (ToAPIs, model {model})"
    if settings.toapis_api_key is None:
        return Check(name, False, "TOAPIS_API_KEY is not set", "set TOAPIS_API_KEY")
    url = settings.toapis_base_url.rstrip("/") + "/v1/models"
    response = await _probe(name, url, settings.toapis_api_key, "TOAPIS")
    if isinstance(response, Check):
        return response
    return Check(name, True, f"{settings.toapis_base_url} accepted the key")


async def _probe(
    name: str, url: str, key: SecretStr, prefix: str, *, also: tuple[int, ...] = ()
) -> httpx.Response | Check:
    """GET `url` with `key` as the Bearer token: the HTTP 200 response (or one with a
    status in `also`, for the caller to judge), else the failed Check `name`, whose fix
    names the settings `{prefix}_BASE_URL` (unreachable) or `{prefix}_API_KEY` (refused)."""
    try:
        response = await _get(url, key.get_secret_value())
    except httpx.HTTPError as err:
        return Check(
            name,
            False,
            f"{url} could not be reached ({type(err).__name__})",
            f"check {prefix}_BASE_URL and this machine's network access to it",
        )
    status = response.status_code
    if status in (401, 403):
        detail = f"the API key was refused (HTTP {status})"
        return Check(name, False, detail, f"set {prefix}_API_KEY to a current key")
    if status != 200 and status not in also:
        fix = "the provider may be down; try again later"
        return Check(name, False, f"{url} answered HTTP {status}", fix)
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return body
    return {}


def _shutdown_date(value: object) -> date | None:
    """A `shutdown_date` as a date: Unix seconds, or an ISO `YYYY-MM-DD…` string."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).date()
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return date.fromisoformat(value[:10])
    return None


def check_prices(settings: Settings) -> Check:
    """Whether the configured provider and model have a price (issue 11, `core.pricing`).

    An unpriced model is shown as "unpriced" in usage (never $0): a warning; with
    QUOTA_TEAM_MONTHLY_USD set every request would be refused, so the check fails then.
    """
    from core.pricing import is_priced, price_model

    model = price_model(settings.image_provider, settings.image_model)
    if is_priced(settings.image_prices, model):
        return Check("price table", True, f"{model} is priced")
    fix = (
        f'add {model} to IMAGE_PRICES, e.g. IMAGE_PRICES=\'{{"{model}": {{"*": {{"*": 0.04}}}}}}\''
    )
    if settings.quota_team_monthly_usd is not None:
        detail = f"{model} has no price, so QUOTA_TEAM_MONTHLY_USD refuses every request"
        return Check("price table", False, detail, fix)
    detail = f"{model} has no price: usage shows its images as unpriced. Fix: {fix}"
    return Check("price table", True, detail, warn=True)
