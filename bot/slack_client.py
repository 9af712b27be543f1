"""The one place the bot's Web API clients are made (`web_client`, `PacedWebClient.for_token`).

Every client is a :class:`PacedWebClient`: slack_sdk's ``AsyncWebClient`` whose calls
take a token from the workspace's :class:`bot.pacing.Pacer` first and are counted in
``imagine_slack_calls_total{method}``. Its retry handlers (slack_sdk's
``http_retry``, https://docs.slack.dev/tools/python-slack-sdk/web#retryhandler):

- :class:`RateLimitRetry`: an HTTP 429 answer is retried after its ``Retry-After``
  (slack_sdk's ``AsyncRateLimitErrorRetryHandler``, up to RATE_LIMIT_RETRIES times) when
  that is at most INLINE_RETRY_SECONDS; a longer wait goes back to the caller as the
  error (the job engine schedules the retry and frees the job meanwhile). The pacer's
  bucket is held for ``Retry-After`` either way and the 429 is counted in
  ``imagine_slack_ratelimited_total{method}``. Slack did not act on a 429'd call, so a
  retry cannot post twice.
- :class:`ReadRetry`: a dropped connection is retried for read methods only. A write
  (``chat.postMessage``, an upload) whose connection dropped may have been accepted by
  Slack; the job engine's retry looks for the tagged message instead of posting again.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.pacing import Pacer, TokenBucket
from core import metrics
from core.config import Settings

RATE_LIMIT_RETRIES = 2
INLINE_RETRY_SECONDS = 5.0
READ_METHODS = frozenset(
    {
        "auth.test",
        "chat.getPermalink",
        "conversations.history",
        "conversations.info",
        "conversations.replies",
        "files.info",
        "users.info",
        "usergroups.users.list",
    }
)
"""Methods that change nothing at Slack: safe to send again after a dropped connection."""

_BUCKET: ContextVar[TokenBucket | None] = ContextVar("slack_call_bucket", default=None)


def _method(request: HttpRequest) -> str:
    return request.url.rstrip("/").rsplit("/", 1)[-1]


def _retry_after(response: HttpResponse) -> float:
    for key, values in response.headers.items():
        if key.lower() == "retry-after" and values:
            try:
                return float(values[0])
            except ValueError:
                break
    return 1.0


class RateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 handler (sleeps ``Retry-After``, then retries) that also counts the
    429 and holds the call's pacing bucket for ``Retry-After`` seconds."""

    async def can_retry_async(self, **kwargs: Any) -> bool:
        """slack_sdk's check (keyword arguments `state`, `request`, `response`, `error`),
        after counting a 429 and holding the bucket."""
        response: HttpResponse | None = kwargs.get("response")
        if response is not None and response.status_code == 429:
            metrics.SLACK_RATELIMITED.labels(_method(kwargs["request"])).inc()
            wait = _retry_after(response)
            bucket = _BUCKET.get()
            if bucket is not None:
                bucket.hold(wait)
            if wait > INLINE_RETRY_SECONDS:
                return False
        return await super().can_retry_async(**kwargs)


class ReadRetry(AsyncConnectionErrorRetryHandler):
    """slack_sdk's connection-error handler, for READ_METHODS only."""

    async def _can_retry_async(self, **kwargs: Any) -> bool:
        if _method(kwargs["request"]) not in READ_METHODS:
            return False
        return await super()._can_retry_async(**kwargs)


def retry_handlers() -> list[AsyncRetryHandler]:
    """The retry handlers every client of ours uses (see the module docstring)."""
    return [RateLimitRetry(max_retry_count=RATE_LIMIT_RETRIES), ReadRetry()]


def _channel(args: dict[str, Any]) -> str | None:
    for part in ("json", "data", "params"):
        values = args.get(part)
        if isinstance(values, dict) and values.get("channel"):
            return str(values["channel"])
    return None


class Connections:
    """One aiohttp session (a pool of kept-alive connections) shared by a client and the
    clients it makes for other tokens; slack_sdk otherwise opens a session, and a new
    connection, for every call. Made on first use, on the running loop; `aclose()` at
    shutdown (made again if used after)."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def get(self) -> aiohttp.ClientSession:
        """The open session (made now when there is none)."""
        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession()
        return self.session

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self.session is not None and not self.session.closed:
            await self.session.close()


class PacedWebClient(AsyncWebClient):
    """An AsyncWebClient whose calls wait for the workspace's pacer (`pacer`; one per
    token), are counted by method, and share kept-alive connections (`connections`).
    Everything else is slack_sdk's."""

    def __init__(
        self,
        *args: Any,
        pacer: Pacer | None = None,
        connections: Connections | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retry_handlers", retry_handlers())
        super().__init__(*args, **kwargs)
        self.pacer = pacer or Pacer()
        self.connections = connections or Connections()

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:  # type: ignore[override]
        """slack_sdk's api_call after the pacer lets the call go (the method's bucket, the
        channel's for chat.postMessage)."""
        bucket = self.pacer.bucket(api_method, _channel(kwargs))
        if bucket is not None:
            await bucket.take()
        self.session = self.connections.get()
        metrics.SLACK_CALLS.labels(api_method).inc()
        token = _BUCKET.set(bucket)
        try:
            return await super().api_call(api_method, **kwargs)
        finally:
            _BUCKET.reset(token)

    def for_token(self, token: str) -> PacedWebClient:
        """A client for another workspace's bot token: same base URL, timeout and rate
        scale, its own pacer (Slack counts per workspace)."""
        return PacedWebClient(
            token=token,
            base_url=self.base_url,
            timeout=self.timeout,
            pacer=Pacer(self.pacer.scale),
            connections=self.connections,
        )

    async def aclose(self) -> None:
        """Close the connections this client shares (with the clients it made)."""
        await self.connections.aclose()


def web_client(settings: Settings, token: str | None = None) -> PacedWebClient:
    """A client for SLACK_API_URL with `token` (None: no token, as OAuth's flow and the
    installation lookups start), paced at Slack's rates times SLACK_RATE_SCALE."""
    return PacedWebClient(
        token=token, base_url=settings.slack_api_url, pacer=Pacer(settings.slack_rate_scale)
    )
