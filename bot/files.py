"""Downloading files people post in Slack (the Slack side of thread references and masks).

Slack's documented way to fetch a file's bytes is an HTTP GET of the file object's
``url_private`` (or ``url_private_download``) with the bot token in an
``Authorization: Bearer xoxb-...`` header; the app needs the ``files:read`` scope
(https://api.slack.com/types/file, "Authentication"). Without a valid token Slack does not
answer 401: it serves its HTML sign-in page with HTTP 200, so a successful status alone
proves nothing.

The bot token is sent only to Slack's file hosts: a URL must be on one of the allowed
origins (scheme, host and port: ``Settings.file_origins()``, i.e. ``https://files.slack.com``
and the local stand-in) and name a file path (``/files-pri/...``), never a Web API method.
External files (Google Drive, Dropbox, ... shared into Slack, ``is_external``) are never
fetched. Redirects are followed by hand, a few hops at most, and only while they stay on
the allowed origins; a redirect anywhere else ends the download without sending anything
there. The body is capped at a byte limit while streaming. Every failure becomes
:class:`core.images.ImageRejected` (a code and data; ``bot.messages.image_rejected`` words
it). The token is only ever sent in the header: never in a message, exception or log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import httpx

from core.config import Origin, parse_origin
from core.images import ImageRejected, Rejection, looks_like_html

log = logging.getLogger(__name__)

_HTML_SNIFF_BYTES = 512
"""How much of a text/html response is read to recognise Slack's login page (bytes)."""

MAX_REDIRECTS = 3
"""Redirect hops followed (each within the allowed origins) before giving up."""

FILE_PATH_PREFIX = "/files-pri/"
"""The path under which Slack serves ``url_private`` / ``url_private_download``."""

_REDIRECTS = (301, 302, 303, 307, 308)


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


def is_external(file: dict[str, Any]) -> bool:
    """True for an external file (``is_external: true`` or ``mode: "external"``).

    Slack marks files that live elsewhere (Google Drive, Dropbox, ``files.remote.add``)
    this way (https://api.slack.com/types/file); their ``url_private`` points at the
    other service, which must never receive the bot token.
    """
    return file.get("is_external") is True or file.get("mode") == "external"


def is_tombstone(file: dict[str, Any]) -> bool:
    """True for a deleted file's placeholder (``mode: "tombstone"``, Slack's file object,
    https://api.slack.com/types/file): it has no content to fetch."""
    return file.get("mode") == "tombstone"


def needs_file_info(file: dict[str, Any]) -> bool:
    """True when a message's file object is only a reference to look up with
    ``files.info``: Slack Connect channels deliver ``{"id": …, "mode": "file_access",
    "file_access": "check_file_info"}`` instead of the file
    (https://api.slack.com/apis/channels-between-orgs, "Handling files")."""
    return file.get("file_access") == "check_file_info" or file.get("mode") == "file_access"


def is_slack_file_url(url: str, origins: Collection[Origin]) -> bool:
    """True when the bot token may be sent to ``url``: a Slack file URL on ``origins``.

    The URL must be absolute http(s) on one of ``origins`` (scheme, host and port all
    equal), carry no user info, and its path (after httpx's normalisation of ``.`` and
    ``..`` segments) must start with ``/files-pri/``; ``/api/`` anywhere is refused.
    """
    try:
        parsed = httpx.URL(url)
        origin = parse_origin(url)
    except (httpx.InvalidURL, ValueError, TypeError):
        return False
    if origin not in origins or parsed.userinfo or "@" in urlsplit(url).netloc:
        return False
    path = parsed.path
    segments = path.split("/")
    if ".." in segments or "." in segments or "/api/" in path.lower():
        return False
    return path.startswith(FILE_PATH_PREFIX) and len(path) > len(FILE_PATH_PREFIX)


async def fetch_slack_file(
    file: dict[str, Any],
    bot_token: str,
    *,
    origins: Collection[Origin],
    max_bytes: int,
    name: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 (applied via asyncio.timeout)
) -> bytes:
    """The bytes of a Slack file object (from a message's ``files``), at most ``max_bytes``.

    Refuses external files (Rejection.EXTERNAL, with ``service`` from ``external_type``)
    and file objects without a link (NO_LINK) before any request; otherwise downloads
    ``url_private_download`` (or ``url_private``) with :func:`download_slack_file`.
    Raises ImageRejected.
    """
    if is_external(file):
        service = file.get("external_type")
        log.info("refused an external file (%s)", service or "unknown service")
        raise ImageRejected(Rejection.EXTERNAL, name, service=str(service) if service else None)
    url = file.get("url_private_download") or file.get("url_private")
    if not isinstance(url, str) or not url:
        raise ImageRejected(Rejection.NO_LINK, name)
    return await download_slack_file(
        url,
        bot_token,
        origins=origins,
        max_bytes=max_bytes,
        name=name,
        client=client,
        timeout=timeout,
    )


def _where(url: str) -> str:
    """The URL without query or fragment, for logs (host and path only)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{parts.path}"[:200]


async def download_slack_file(
    url_private: str,
    bot_token: str,
    *,
    origins: Collection[Origin],
    max_bytes: int,
    name: str,
    client: httpx.AsyncClient | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 (the API the callers use; applied via asyncio.timeout)
) -> bytes:
    """The bytes of a Slack file, fetched with the bot token; at most ``max_bytes`` bytes.

    ``url_private`` must pass :func:`is_slack_file_url` for ``origins`` or nothing is
    requested (Rejection.NOT_SLACK_FILE). GETs it with ``Authorization: Bearer
    <bot_token>``; a redirect (301/302/303/307/308) is followed, at most
    :data:`MAX_REDIRECTS` hops, only when its target passes the same check, otherwise the
    download stops there (Rejection.REDIRECTED_AWAY) and nothing is sent to the target.
    The body is streamed and the download stops as soon as it exceeds ``max_bytes`` (or
    when ``Content-Length`` already says so: TOO_LARGE). Slack's HTML login page
    (LOGIN_PAGE), any other status (HTTP_STATUS), network errors (FAILED) and the
    ``timeout`` (seconds, whole download: TIMEOUT) raise ImageRejected too. ``client`` is
    used when given (and left open); otherwise one is made and closed here.
    """
    if not is_slack_file_url(url_private, origins):
        log.warning("refused to send the bot token to a non-file URL: %s", _where(url_private))
        raise ImageRejected(Rejection.NOT_SLACK_FILE, name)
    headers = {"Authorization": f"Bearer {bot_token}"}
    url = url_private
    try:
        async with contextlib.AsyncExitStack() as stack, asyncio.timeout(timeout):
            http = client
            if http is None:
                http = await stack.enter_async_context(httpx.AsyncClient())
            for _hop in range(MAX_REDIRECTS + 1):
                request = http.build_request("GET", url, headers=headers, timeout=timeout)
                response = await http.send(request, stream=True, follow_redirects=False)
                stack.push_async_callback(response.aclose)
                if response.status_code not in _REDIRECTS:
                    return await _read_body(
                        response, name=name, max_bytes=max_bytes, where=_where(url)
                    )
                url = _next_hop(response, url, origins, name)
            log.warning("download redirected more than %d times: %s", MAX_REDIRECTS, _where(url))
            raise ImageRejected(Rejection.REDIRECTED_AWAY, name)
    except ImageRejected:
        raise
    except (TimeoutError, httpx.TimeoutException):
        log.warning("download timed out after %.0f s: %s", timeout, _where(url))
        raise ImageRejected(Rejection.TIMEOUT, name) from None
    except (httpx.HTTPError, httpx.InvalidURL) as err:
        log.warning("download failed (%s): %s", type(err).__name__, _where(url))
        raise ImageRejected(Rejection.FAILED, name) from None


def _next_hop(response: httpx.Response, url: str, origins: Collection[Origin], name: str) -> str:
    """The target of a redirect when it is a Slack file URL; else ImageRejected."""
    location = response.headers.get("Location", "")
    try:
        target = str(httpx.URL(url).join(location)) if location else ""
    except (httpx.InvalidURL, ValueError):
        target = ""
    if not target or not is_slack_file_url(target, origins):
        log.warning(
            "download redirected off Slack's file origins, not followed: %s -> %s",
            _where(url),
            _where(target) if target else "(no valid Location)",
        )
        raise ImageRejected(Rejection.REDIRECTED_AWAY, name)
    return target


async def _read_body(response: httpx.Response, *, name: str, max_bytes: int, where: str) -> bytes:
    """Check status and type, then read the streamed body up to ``max_bytes`` bytes.

    Slack's login page is recognised by ``Content-Type: text/html`` before any byte is
    read, and by its first bytes (``<!DOCTYPE html``/``<html``) whatever the type says.
    """
    if response.status_code != 200:
        log.warning("download answered HTTP %d: %s", response.status_code, where)
        raise ImageRejected(Rejection.HTTP_STATUS, name, status=response.status_code)
    content_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if content_type == "text/html":
        log.warning("download got an HTML page instead of the file: %s", where)
        raise ImageRejected(Rejection.LOGIN_PAGE, name)
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        log.info(
            "download refused, Content-Length %s over %d bytes: %s", declared, max_bytes, where
        )
        raise ImageRejected(
            Rejection.TOO_LARGE, name, size=int(declared), limit=max_bytes, mask=False
        )
    body = bytearray()
    sniffed = False
    async for chunk in response.aiter_bytes():
        body += chunk
        if not sniffed and len(body) >= _HTML_SNIFF_BYTES:
            sniffed = True
            _refuse_html(body, name, where)
        if len(body) > max_bytes:
            log.info("download stopped over %d bytes: %s", max_bytes, where)
            raise ImageRejected(Rejection.TOO_LARGE, name, size=None, limit=max_bytes, mask=False)
    if not sniffed:
        _refuse_html(body, name, where)
    return bytes(body)


def _refuse_html(head: bytearray, name: str, where: str) -> None:
    """Raise the login-page ImageRejected when ``head`` starts an HTML page."""
    if looks_like_html(bytes(head[:_HTML_SNIFF_BYTES])):
        log.warning("download got an HTML page instead of the file: %s", where)
        raise ImageRejected(Rejection.LOGIN_PAGE, name)
