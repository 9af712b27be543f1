"""Shared httpx plumbing for the HTTP providers (OpenAI, ToAPIs); what they do with results
is in `core.providers.results`.

- `parse_error_body`: read a provider error response defensively. Both providers document
  `{"error": {"message", "type", "param", "code"}}` (ToAPIs: `code` may be a string or an
  integer); gateways in front of them answer with HTML pages (502/504) or empty bodies. Any
  body becomes an `ErrorBody`, never an exception.
- `parse_retry_after`: the provider's retry hint in seconds, from `retry-after-ms`
  (OpenAI), `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) or
  `X-RateLimit-Reset` (ToAPIs: epoch seconds when the window resets).
- `redact`: remove API keys from text that goes to the log.
- `transport_error`: httpx timeouts and connection errors → `ProviderError(UNAVAILABLE)`.
- `download_image`: fetch a result URL at once (result URLs expire) without sending our
  Authorization header to the file host.
- `ProviderHTTP`: the one httpx client set-up of an HTTP provider (base URL, bearer key,
  timeouts), with errors redacted at the source.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from core.providers.base import (
    DEFAULT_MAX_IMAGE_PIXELS,
    DeclaredProvider,
    ErrorKind,
    GeneratedImage,
    ProviderError,
)
from core.providers.results import result_image, sniff_mime

# Things that look like API keys: OpenAI's sk-…/sk-proj-… (also the masked "sk-abc***wxyz" form
# OpenAI echoes in 401 messages) and bearer tokens.
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-*.]{3,}|Bearer\s+[A-Za-z0-9_\-.~+/=*]+)")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SNIPPET = 300  # characters of a non-JSON body kept for the log


def redact(text: str, *secrets: str | None) -> str:
    """`text` with each non-empty secret and anything key-like replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub("***", text)


def shorten(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters (for user-facing messages)."""
    line = _SPACE.sub(" ", text).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class ErrorBody:
    """A provider error response, parsed defensively.

    Attributes:
        status: the HTTP status code.
        code: `error.code` as a lower-case string ("insufficient_quota", "429"), or None.
        message: `error.message`, or for a non-JSON body its text without tags (may be "").
        type: `error.type`, or None.
        param: `error.param` (OpenAI names the offending field here), or None.
        is_json: False when the body was not the documented JSON shape (HTML gateway page, …).
    """

    status: int
    code: str | None
    message: str
    type: str | None
    param: str | None
    is_json: bool

    def describe(self) -> str:
        """A one-line summary for `ProviderError.detail` (the log), not yet redacted."""
        parts = [f"HTTP {self.status}"]
        if self.code:
            parts.append(f"code={self.code}")
        if self.type:
            parts.append(f"type={self.type}")
        if self.param:
            parts.append(f"param={self.param}")
        if self.message:
            parts.append(shorten(self.message, _SNIPPET))
        elif not self.is_json:
            parts.append("(no JSON error body)")
        return " ".join(parts)


def _str_or_none(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip().lower()


def parse_error_body(status: int, content: bytes) -> ErrorBody:
    """Parse an error response body of any shape; never raises.

    Accepts `{"error": {...}}`, `{"error": "text"}`, `{"message": ..., "code": ...}` and
    non-JSON bodies (their text, tags stripped, is kept as the message).
    """
    text = content.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text) if text.strip() else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        err = payload.get("error", payload)
        if isinstance(err, str):
            return ErrorBody(status, None, err, None, None, True)
        if isinstance(err, dict):
            message = err.get("message") or payload.get("message") or ""
            return ErrorBody(
                status=status,
                code=_str_or_none(err.get("code")),
                message=str(message),
                type=_str_or_none(err.get("type")),
                param=str(err["param"]) if err.get("param") else None,
                is_json=True,
            )
    plain = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return ErrorBody(status, None, plain[:_SNIPPET], None, None, False)


def parse_retry_after(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds the provider asks us to wait, or None when it sent no usable hint.

    Reads, in order: `retry-after-ms` (milliseconds, OpenAI), `Retry-After` (delta seconds or
    an HTTP date), `X-RateLimit-Reset` (ToAPIs: Unix epoch seconds of the reset; a value
    below 10**9 is taken as delta seconds). Negative results become 0.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    value = lower.get("retry-after-ms")
    if value is not None:
        try:
            ms = float(value)
            if math.isfinite(ms):
                return max(0.0, ms / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is not None:
        try:
            secs = float(value)
            if math.isfinite(secs):
                return max(0.0, secs)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - now())
    value = lower.get("x-ratelimit-reset")
    if value is not None:
        try:
            reset = float(value)
        except ValueError:
            return None
        if not math.isfinite(reset):
            return None
        return max(0.0, reset - now()) if reset >= 1e9 else max(0.0, reset)
    return None


def transport_error(
    exc: httpx.HTTPError, provider: str, timeout: float, *secrets: str | None
) -> ProviderError:
    """A timeout or connection failure talking to `provider` → `ProviderError(UNAVAILABLE)`.

    `secrets` (the API key) are redacted from the exception text kept in `detail`."""
    if isinstance(exc, httpx.TimeoutException):
        message = (
            f"{provider} did not answer within {timeout:g} s. It will be retried automatically."
        )
    else:
        message = f"Could not reach {provider}. It will be retried automatically."
    return ProviderError(
        ErrorKind.UNAVAILABLE, message, detail=f"{type(exc).__name__}: {redact(str(exc), *secrets)}"
    )


async def download_image(
    client: httpx.AsyncClient,
    url: str,
    provider: str,
    read_timeout: float,
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
) -> GeneratedImage:
    """GET a result URL and return its bytes; the Authorization header is not sent.

    Result URLs are signed, short-lived links on a file host (OpenAI: 60 minutes; ToAPIs:
    `expires_at`), so they are fetched as soon as they are seen. The image's pixel count is
    checked from its header against `max_pixels` before anything decodes it. Raises
    ProviderError: UNAVAILABLE for timeouts, connection errors and 5xx; TASK_FAILED for other
    statuses (the link expired or is wrong) and for a body that is not an image;
    INVALID_REQUEST for an image over `max_pixels`. `read_timeout` (the client's, in
    seconds) is only quoted in the timeout message.
    """
    request = client.build_request("GET", url)
    request.headers.pop("Authorization", None)
    try:
        response = await client.send(request)
    except httpx.HTTPError as exc:
        raise transport_error(exc, provider, read_timeout) from exc
    host = request.url.host
    if response.status_code >= 500:
        raise ProviderError(
            ErrorKind.UNAVAILABLE,
            f"{provider} made the image but its file host failed (HTTP {response.status_code}). "
            "It will be retried automatically.",
            detail=f"download {host}: HTTP {response.status_code}",
        )
    if response.status_code != 200:
        raise ProviderError(
            ErrorKind.TASK_FAILED,
            f"{provider} made the image but its download link did not work "
            f"(HTTP {response.status_code}). Press Regenerate to try again.",
            detail=f"download {host}: HTTP {response.status_code}",
        )
    data = response.content
    header_mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not sniff_mime(data, fallback=""):
        raise ProviderError(
            ErrorKind.TASK_FAILED,
            f"{provider} returned a result that is not an image. Press Regenerate to try again.",
            detail=f"download {host}: content-type {header_mime or '?'}, {len(data)} bytes",
        )
    return await result_image(data, provider, max_pixels)


class ProviderHTTP:
    """The httpx set-up every HTTP provider shares, and its errors redacted at the source.

    One `httpx.AsyncClient` per provider instance: `base_url` (a trailing "/" added, so
    relative paths append), `Authorization: Bearer <api_key>` on every call to it (never on
    result downloads), read timeout `timeout` seconds and connect timeout at most 10 s, no
    cap on open connections (100 kept alive).

    Args:
        provider: how messages name the provider ("OpenAI", "ToAPIs").
        api_key: the key; it never appears in a ProviderError's message or detail.
        base_url: the API base ("https://api.openai.com/v1", "https://toapis.com").
        timeout: read timeout in seconds for one call.
        max_image_pixels: the largest result image, width x height in pixels.
    """

    def __init__(
        self,
        provider: str,
        api_key: str,
        base_url: str,
        timeout: float,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    ) -> None:
        self.provider = provider
        self.timeout = timeout
        self.max_image_pixels = max_image_pixels
        self._api_key = api_key
        self.client = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            # No cap on open connections (httpx's default is 100): each job in flight makes
            # one call at a time, and a slow provider may hold a poll open up to `timeout`;
            # with a cap, a process with more jobs than the cap would wait for a connection
            # before it could submit anything new. The engine bounds the jobs it holds.
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=100),
        )

    def redact(self, text: str) -> str:
        """`text` without the API key or anything key-like (see `redact`)."""
        return redact(text, self._api_key)

    def error(
        self,
        kind: ErrorKind,
        message: str,
        *,
        detail: str = "",
        retry_after: float | None = None,
    ) -> ProviderError:
        """A ProviderError whose message and detail are redacted (they may quote a body)."""
        return ProviderError(
            kind, self.redact(message), detail=self.redact(detail), retry_after=retry_after
        )

    def parse_error(self, response: httpx.Response, status: int | None = None) -> ErrorBody:
        """`parse_error_body` of the response, redacted before anything is cut short (a key
        cut in half would no longer be recognised); `status` overrides the HTTP status."""
        text = self.redact(response.content.decode("utf-8", errors="replace"))
        return parse_error_body(status or response.status_code, text.encode("utf-8"))

    def snippet(self, value: object, limit: int = _SNIPPET) -> str:
        """`str(value)` redacted, then shortened to one line of at most `limit` characters."""
        return shorten(self.redact(str(value)), limit)

    def unreadable(
        self, response: httpx.Response, where: str, *, status_in_message: bool = True
    ) -> ProviderError:
        """UNAVAILABLE for a 2xx answer that is not the documented JSON (a gateway's HTML
        page, …); `where` ("POST /v1/…") and a redacted snippet of the body (tags stripped)
        go to `detail`,
        the HTTP status also to the message when `status_in_message`."""
        status = f" (HTTP {response.status_code})" if status_in_message else ""
        body = self.parse_error(response)
        return self.error(
            ErrorKind.UNAVAILABLE,
            f"{self.provider} sent an answer that could not be read{status}. "
            "It will be retried automatically.",
            detail=f"{where}: {body.describe()}",
        )

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one call (`path` relative to the base URL; kwargs as httpx takes them).

        Raises ProviderError(UNAVAILABLE) for timeouts and connection errors; any HTTP
        status is returned to the caller to map."""
        try:
            return await self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(exc, self.provider, self.timeout, self._api_key) from exc

    async def download(self, url: str) -> GeneratedImage:
        """`download_image` with this client and pixel cap (no Authorization header sent)."""
        return await download_image(
            self.client, url, self.provider, self.timeout, self.max_image_pixels
        )

    async def image(self, data: bytes) -> GeneratedImage:
        """`result_image` with this provider's pixel cap (for images sent inline)."""
        return await result_image(data, self.provider, self.max_image_pixels)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


class HTTPProvider(DeclaredProvider):
    """Base class of the providers that speak HTTP (declared by the subclass's `info`).

    Args:
        api_key: the provider's key (sent as `Authorization: Bearer`; never logged).
        base_url: the API base (paths are appended to it).
        model: model to send when the request names none; None → `info.default_model`.
        timeout: read timeout in seconds for one HTTP call.
        max_image_pixels: largest result image accepted, width x height in pixels
            (the MAX_IMAGE_PIXELS setting).
        clock: epoch-seconds clock used to turn `X-RateLimit-Reset` into a delay (tests).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str,
        model: str | None = None,
        timeout: float = 180.0,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(model)
        self.timeout = timeout
        self.max_image_pixels = max_image_pixels
        self._clock = clock
        self._http = ProviderHTTP(self.info.title, api_key, base_url, timeout, max_image_pixels)

    async def cancel(self, task_id: str) -> bool:
        """False unless the subclass can cancel: the API documents no way to stop a task."""
        return False

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()
