"""Request hygiene for `POST /slack/events`: bodies are read with a size cap and a time
limit, their Slack signature is checked, and they must parse, before Bolt sees them.

Slack signs every request it sends (https://api.slack.com/authentication/verifying-
requests-from-slack): ``X-Slack-Signature: v0=hex(HMAC-SHA256(signing secret,
"v0:{X-Slack-Request-Timestamp}:{raw body}"))``, and a request more than five minutes
old is to be refused. Checking that here first (with slack_sdk's `SignatureVerifier`)
means nothing unsigned reaches Bolt, whose own checks log whole bodies in some paths,
and a malformed body that Bolt would fail to parse (a 500 and a traceback) gets a 400.

Answers: 401 for a missing, malformed, stale or wrong signature; 400 for a body that is
not UTF-8 or does not parse the way Slack's deliveries do (a JSON object, a form, or a
form whose ``payload`` is a JSON object); 413 for a body over `MAX_BODY_BYTES`; 408 when
the body does not arrive within `READ_TIMEOUT_SECONDS`. Each rejection is logged as one
fixed line with the reason and the body's size: never the body or a header value.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

# Largest body accepted, in bytes; Slack's deliveries (events, interactivity payloads,
# slash commands) are far smaller. Passed to aiohttp as `client_max_size`.
MAX_BODY_BYTES = 1024 * 1024
# Seconds a sender has to deliver the whole body once its headers arrived.
READ_TIMEOUT_SECONDS = 10.0
# Longest plausible X-Slack-Request-Timestamp (Unix seconds): digits only.
MAX_TIMESTAMP_DIGITS = 12

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Rejected(Exception):
    """A request refused before Bolt: HTTP `status` and a fixed `reason` (no user data)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def read_body(request: web.Request, within: float) -> bytes:
    """The request body, read within `within` seconds and at most the application's
    `client_max_size` bytes. Raises Rejected (408, 413 or 400 for a broken stream)."""
    try:
        async with asyncio.timeout(within):
            return await request.read()
    except TimeoutError:
        raise Rejected(408, "body not received in time") from None
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, "body too large") from None
    except (aiohttp.ClientError, ConnectionError, ValueError):
        raise Rejected(400, "body could not be read") from None


def check_signature(verifier: SignatureVerifier, body: bytes, headers: Mapping[str, str]) -> str:
    """The body as text when it carries a valid, fresh Slack signature.

    `headers` are the request headers (case-insensitive mapping). Raises Rejected: 401
    for a missing or non-numeric timestamp, a missing, stale or wrong signature; 400 for
    a body that is not UTF-8 (Slack sends UTF-8 only).
    """
    timestamp = headers.get("X-Slack-Request-Timestamp") or ""
    signature = headers.get("X-Slack-Signature") or ""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise Rejected(401, "missing or malformed X-Slack-Request-Timestamp")
    if not signature:
        raise Rejected(401, "missing X-Slack-Signature")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Rejected(400, "body is not UTF-8") from None
    if not verifier.is_valid(body=text, timestamp=timestamp, signature=signature):
        raise Rejected(401, "invalid or stale signature")
    return text


def check_parses(text: str, content_type: str) -> None:
    """Refuse (400) a body Bolt could not turn into a payload dict.

    Mirrors `slack_bolt.request.internals.parse_body`: JSON when the content type says so
    or the body starts with ``{``; else a form, whose ``payload`` field (interactivity)
    must be a JSON object. A form without ``payload`` (a slash command) is not parsed
    here: Bolt's `parse_qsl` (lenient, blank values kept) turns any text into a dict.
    """
    if not text:
        return
    try:
        if content_type == "application/json" or text.startswith("{"):
            parsed = json.loads(text)
        elif "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            parsed = {} if payload is None else json.loads(payload)
        else:
            return
    except ValueError:
        raise Rejected(400, "body does not parse") from None
    if not isinstance(parsed, dict):
        raise Rejected(400, "body is not a JSON object")


def slack_request_guard(signing_secret: str, path: str = "/slack/events") -> Middleware:
    """An aiohttp middleware that checks every `POST path` as the module doc says before
    the handler (Bolt) runs; other requests pass through untouched."""
    verifier = SignatureVerifier(signing_secret)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or request.path != path:
            return await handler(request)
        size = request.content_length
        try:
            body = await read_body(request, READ_TIMEOUT_SECONDS)
            size = len(body)
            text = check_signature(verifier, body, request.headers)
            check_parses(text, request.content_type)
        except Rejected as err:
            log.warning("refused a request to %s: %s (%s bytes)", path, err.reason, size)
            return web.Response(status=err.status, text=err.reason)
        return await handler(request)

    return guard
