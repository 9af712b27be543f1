"""Shared httpx plumbing for the HTTP providers (OpenAI, ToAPIs).

- `parse_error_body`: read a provider error response defensively. Both providers document
  `{"error": {"message", "type", "param", "code"}}` (ToAPIs: `code` may be a string or an
  integer); gateways in front of them answer with HTML pages (502/504) or empty bodies. Any
  body becomes an `ErrorBody`, never an exception.
- `parse_retry_after`: the provider's retry hint in seconds, from `retry-after-ms`
  (OpenAI), `Retry-After` (seconds or an HTTP date, RFC 9110 §10.2.3) or
  `X-RateLimit-Reset` (ToAPIs: epoch seconds when the window resets).
- `redact`: remove API keys from text that goes to the log.
- `transport_error`: httpx timeouts and connection errors → `ProviderError(UNAVAILABLE)`.
- `check_pixels` / `result_image`: the pixel count of a result image, read from its header
  before anything decodes it, against the `MAX_IMAGE_PIXELS` cap.
- `download_image`: fetch a result URL at once (result URLs expire) without sending our
  Authorization header to the file host.
- `ProviderHTTP`: the one httpx client set-up of an HTTP provider (base URL, bearer key,
  timeouts), with errors redacted at the source.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from core.providers.base import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ErrorKind,
    GeneratedImage,
    ProviderError,
)

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


def sniff_mime(data: bytes, fallback: str = "image/png") -> str:
    """The image MIME type from the first bytes (PNG, JPEG, WebP, GIF), else `fallback`."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return fallback


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")


def check_pixels(data: bytes, provider: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an encoded result image, read from its header only. Blocking.

    Pillow's `Image.open` reads the header and decodes nothing; the size is compared with
    `max_pixels` (width x height) before anyone calls `load`/`convert` on it. Pillow's own
    guard (`Image.MAX_IMAGE_PIXELS`, about 89 M by default) may warn inside `open` for
    images over its limit and raises `DecompressionBombError` over twice that: both are far
    over the default cap of 40 M, and the error is refused here like any other oversize.

    Raises ProviderError: INVALID_REQUEST (no retry: the same request would make the same
    size) when the image has more than `max_pixels` pixels, giving its size and the cap;
    TASK_FAILED when the bytes are not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:
        guard = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow raises over twice its limit
        size = f"more than {_megapixels(guard)} megapixels"
        raise _too_large(provider, min(max_pixels, guard), size, f"Pillow: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ProviderError(
            ErrorKind.TASK_FAILED,
            f"{provider} returned a result that is not an image. Press Regenerate to try again.",
            detail=f"result image: {type(exc).__name__}: {shorten(str(exc), _SNIPPET)}",
        ) from exc
    if width * height > max_pixels:
        size = f"{width} × {height} pixels ({_megapixels(width * height)} megapixels)"
        raise _too_large(provider, max_pixels, size, f"{width}x{height} > {max_pixels} pixels")
    return width, height


def _too_large(provider: str, max_pixels: int, size: str, detail: str) -> ProviderError:
    """INVALID_REQUEST for a result image of `size` (text) over `max_pixels`."""
    return ProviderError(
        ErrorKind.INVALID_REQUEST,
        f"{provider} returned an image of {size}; images over "
        f"{_megapixels(max_pixels)} megapixels are refused. Try a smaller size (--ar, "
        "--quality), or ask an admin to raise MAX_IMAGE_PIXELS.",
        detail=f"result image refused: {detail}",
    )


async def result_image(data: bytes, provider: str, max_pixels: int) -> GeneratedImage:
    """A result image after `check_pixels` (run in a worker thread); MIME from its bytes.

    Raises ProviderError as `check_pixels` does.
    """
    await asyncio.to_thread(check_pixels, data, provider, max_pixels)
    return GeneratedImage(data=data, mime=sniff_mime(data))


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
    result downloads), read timeout `timeout` seconds and connect timeout at most 10 s.

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

    def unreadable(
        self, response: httpx.Response, where: str, *, status_in_message: bool = True
    ) -> ProviderError:
        """UNAVAILABLE for a 2xx answer that is not the documented JSON (a gateway's HTML
        page, …); `where` ("POST /v1/…") and a redacted snippet of the body (tags stripped)
        go to `detail`,
        the HTTP status also to the message when `status_in_message`."""
        status = f" (HTTP {response.status_code})" if status_in_message else ""
        body = parse_error_body(response.status_code, response.content)
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


@dataclass(frozen=True)
class SizeChoice:
    """A provider size picked for a requested aspect ratio.

    Attributes:
        value: what is sent to the provider ("1536x1024", "3:2").
        ratio_text: that size's ratio as text ("3:2").
        approximated: True when the requested ratio differs from it by more than 1 %.
    """

    value: str
    ratio_text: str
    approximated: bool


def closest_size(width: int, height: int, choices: Mapping[str, tuple[int, int]]) -> SizeChoice:
    """The choice whose aspect ratio is closest to `width:height` (distance in log ratio).

    `choices` maps the provider's size value to its ratio, e.g. {"1536x1024": (3, 2)}.
    """
    wanted = math.log(max(1, width) / max(1, height))
    best_value, best_ratio = min(
        choices.items(), key=lambda item: abs(math.log(item[1][0] / item[1][1]) - wanted)
    )
    distance = abs(math.log(best_ratio[0] / best_ratio[1]) - wanted)
    return SizeChoice(best_value, f"{best_ratio[0]}:{best_ratio[1]}", distance > 0.01)
