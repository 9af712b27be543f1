"""Downloading files people post in Slack (the Slack side of thread references and masks).

Slack's documented way to fetch a file's bytes is an HTTP GET of the file object's
``url_private`` (or ``url_private_download``) with the bot token in an
``Authorization: Bearer xoxb-...`` header; the app needs the ``files:read`` scope.
Without a valid token Slack does not answer 401: it serves its HTML sign-in page with
HTTP 200, so a successful status alone proves nothing. This module refuses that page,
caps the download at a byte limit while streaming (an oversized file is never read whole
into memory), and turns every failure into :class:`core.images.ImageRejected` whose text
is the thread reply. The token is only ever sent in the header: it never appears in a
message, an exception or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.images import (
    ImageRejected,
    file_label,
    login_page_message,
    looks_like_html,
    too_large_message,
)

log = logging.getLogger(__name__)

_HTML_SNIFF_BYTES = 512
"""How much of a text/html response is read to recognise Slack's login page (bytes)."""


def file_is_too_large(file: dict[str, Any], max_bytes: int) -> bool:
    """True when a Slack file object's ``size`` (bytes) is known and over ``max_bytes``.

    Slack's file objects (message ``files``, ``files.info``) carry ``size`` in bytes, so an
    oversized file can be refused before downloading anything. A missing or malformed
    size returns False: :func:`download_slack_file` still enforces the cap while streaming.
    """
    size = file.get("size")
    if isinstance(size, bool) or not isinstance(size, int | float):
        return False
    return size > max_bytes


def _where(url: str) -> str:
    """The URL without query or fragment, for logs (host and path only)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _status_message(status: int, name: str) -> str:
    """A thread reply for a non-200 answer from Slack's file server."""
    label = file_label(name)
    if status in (401, 403):
        return (
            f"I couldn't download {label}: Slack refused access (HTTP {status}). Make sure "
            "the bot is a member of this channel and the app has the `files:read` scope, "
            "then post the image again."
        )
    if status in (404, 410):
        return (
            f"I couldn't download {label}: Slack says the file no longer exists "
            f"(HTTP {status}); it may have been deleted. Post the image again."
        )
    if status == 429:
        return (
            f"I couldn't download {label}: Slack is limiting downloads right now (HTTP 429). "
            "Post the image again in a minute."
        )
    return (
        f"I couldn't download {label}: Slack answered HTTP {status}. Try posting the image again."
    )


async def download_slack_file(
    url_private: str,
    bot_token: str,
    *,
    max_bytes: int,
    name: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 (the API the callers use; applied via asyncio.timeout)
) -> bytes:
    """The bytes of a Slack file, fetched with the bot token; at most ``max_bytes`` bytes.

    GETs ``url_private`` with ``Authorization: Bearer <bot_token>`` and follows redirects
    (httpx drops the ``Authorization`` header when a redirect leaves the origin, so the
    token is never sent to another host). The body is streamed and the download stops
    with ImageRejected as soon as it exceeds ``max_bytes`` (or when ``Content-Length``
    already says so). Slack's HTML login page (HTTP 200, ``text/html``), any non-200
    status, network errors and the ``timeout`` (seconds, for the whole download) become
    ImageRejected with a reply that names ``name`` and says what to do. ``client`` is
    used when given (and left open); otherwise a client is made and closed here.
    """
    headers = {"Authorization": f"Bearer {bot_token}"}
    where = _where(url_private)
    try:
        async with contextlib.AsyncExitStack() as stack, asyncio.timeout(timeout):
            http = client
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient())
            response = await stack.enter_async_context(
                http.stream(
                    "GET",
                    url_private,
                    headers=headers,
                    follow_redirects=True,
                    timeout=timeout,
                )
            )
            return await _read_body(response, name=name, max_bytes=max_bytes, where=where)
    except ImageRejected:
        raise
    except (TimeoutError, httpx.TimeoutException):
        log.warning("download timed out after %.0f s: %s", timeout, where)
        raise ImageRejected(
            f"I couldn't download {file_label(name)}: Slack took too long to send it. "
            "Try posting it again."
        ) from None
    except (httpx.HTTPError, httpx.InvalidURL) as err:
        log.warning("download failed (%s): %s", type(err).__name__, where)
        raise ImageRejected(
            f"I couldn't download {file_label(name)}: the connection to Slack failed. "
            "Try posting it again."
        ) from None


async def _read_body(response: httpx.Response, *, name: str, max_bytes: int, where: str) -> bytes:
    """Check status and type, then read the streamed body up to ``max_bytes`` bytes.

    Slack's login page is recognised by ``Content-Type: text/html`` before any byte is
    read, and by its first bytes (``<!DOCTYPE html``/``<html``) whatever the type says.
    """
    if response.status_code != 200:
        log.warning("download answered HTTP %d: %s", response.status_code, where)
        raise ImageRejected(_status_message(response.status_code, name))
    content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type == "text/html":
        log.warning("download got an HTML page instead of the file: %s", where)
        raise ImageRejected(login_page_message(name))
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        log.info(
            "download refused, Content-Length %s over %d bytes: %s", declared, max_bytes, where
        )
        raise ImageRejected(too_large_message(name, int(declared), max_bytes))
    body = bytearray()
    sniffed = False
    async for chunk in response.aiter_bytes():
        body += chunk
        if not sniffed and len(body) >= _HTML_SNIFF_BYTES:
            sniffed = True
            _refuse_html(body, name, where)
        if len(body) > max_bytes:
            log.info("download stopped over %d bytes: %s", max_bytes, where)
            raise ImageRejected(too_large_message(name, None, max_bytes))
    if not sniffed:
        _refuse_html(body, name, where)
    return bytes(body)


def _refuse_html(head: bytearray, name: str, where: str) -> None:
    """Raise the login-page ImageRejected when ``head`` starts an HTML page."""
    if looks_like_html(bytes(head[:_HTML_SNIFF_BYTES])):
        log.warning("download got an HTML page instead of the file: %s", where)
        raise ImageRejected(login_page_message(name))
