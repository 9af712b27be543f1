"""Pacing of Web API calls within Slack's published rate limits (issue 13).

Slack counts most methods per app, per workspace, per method, in tiers of calls per
minute (Tier 1: 1+, Tier 2: 20+, Tier 3: 50+, Tier 4: 100+), and ``chat.postMessage``
per channel: about one message a second, with short bursts allowed
(https://api.slack.com/docs/rate-limits,
https://api.slack.com/methods/chat.postMessage#rate_limiting). A call over the limit is
answered HTTP 429 with ``Retry-After`` (seconds).

Each workspace's client (one token, `bot.slack_client.PacedWebClient`) owns a
:class:`Pacer`: one token bucket per method of :data:`PER_MINUTE`, and one per channel for
``chat.postMessage``. A call takes a token first; waiting calls are served by priority
(:func:`priority`: a result post goes before a root or status post in the same channel),
then in order. ``chat.update`` has its own bucket, so status edits never hold up a post.
The rates are Slack's published ones times ``SLACK_RATE_SCALE``; our bursts are smaller
than Slack tolerates so the bot stays under the limit when requests bunch up on the way.
Methods not in the table are not paced. Limits are per process: several processes on one
workspace share Slack's budget, and a 429 is then retried after ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

HIGH = 0
"""Priority of a call a person waits for: the result post, a failure, an approval edit."""
NORMAL = 1
"""Priority of everything else (root and status posts, status edits, reads)."""
LOW = 2
"""Priority of background work nobody waits for (App Home refreshes, bot.home_refresh)."""

POST_PER_SECOND = 1.0  # chat.postMessage per channel
POST_BURST = 3
PER_MINUTE: dict[str, float] = {
    # https://api.slack.com/methods/<method>, "Rate limits"; the bot's own calls only.
    "chat.update": 50,  # Tier 3
    "chat.delete": 50,  # Tier 3
    "chat.postEphemeral": 100,  # Tier 4
    "chat.getPermalink": 100,  # special, Tier 4-like
    "conversations.history": 50,  # Tier 3
    "conversations.replies": 50,  # Tier 3
    "conversations.info": 50,  # Tier 3
    "files.info": 100,  # Tier 4
    "files.getUploadURLExternal": 100,  # Tier 4
    "files.completeUploadExternal": 100,  # Tier 4
    "users.info": 100,  # Tier 4
    "usergroups.users.list": 20,  # Tier 2
    "views.publish": 100,  # Tier 4
}
BURST_SHARE = 0.1
"""A method's burst: this share of its per-minute rate (at least 2 calls)."""
KEPT_BUCKETS = 1024  # buckets kept before the idle ones are dropped (one per channel posted in)

_PRIORITY: ContextVar[int] = ContextVar("slack_call_priority", default=NORMAL)


@contextlib.contextmanager
def priority(level: int) -> Iterator[None]:
    """Calls made inside the block (in this task) wait in line at `level` (HIGH/NORMAL/LOW)."""
    token = _PRIORITY.set(level)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


@dataclass(order=True)
class _Waiter:
    level: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class TokenBucket:
    """`rate` calls a second on average, `burst` at once; waiters by priority, then order.

    `take()` returns when the call may go; `hold(seconds)` empties the bucket for that long
    (after Slack answered 429 with Retry-After)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = time.monotonic()
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._drainer: asyncio.Task[None] | None = None

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, level: int | None = None) -> None:
        """Wait for a token at `level` (default: the current `priority`)."""
        self._refill()
        if not self._waiters and self.tokens >= 1:
            self.tokens -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(
            self._waiters,
            _Waiter(_PRIORITY.get() if level is None else level, next(self._seq), future),
        )
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(), name="slack-pacer")
        await future

    def idle(self) -> bool:
        """True when nobody waits and the bucket is full (it holds no state worth keeping)."""
        self._refill()
        return not self._waiters and self.tokens >= self.burst

    def hold(self, seconds: float) -> None:
        """Let no call through for `seconds` (Slack's Retry-After)."""
        self._refill()
        self.tokens = min(self.tokens, 0.0) - seconds * self.rate

    async def _drain(self) -> None:
        while self._waiters:
            self._refill()
            if self.tokens < 1:
                await asyncio.sleep((1 - self.tokens) / self.rate)
                continue
            waiter = heapq.heappop(self._waiters)
            if not waiter.future.done():  # a cancelled caller gives its turn away
                self.tokens -= 1
                waiter.future.set_result(None)


class Pacer:
    """The token buckets of one workspace (see the module docstring); `scale` multiplies
    every rate (SLACK_RATE_SCALE)."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def bucket(self, method: str, channel: str | None) -> TokenBucket | None:
        """The bucket a call of `method` (in `channel`, for chat.postMessage) takes from,
        or None when the method is not paced."""
        if method == "chat.postMessage":
            key, rate, burst = (method, channel or ""), POST_PER_SECOND, POST_BURST
        elif method in PER_MINUTE:
            per_minute = PER_MINUTE[method]
            key, rate, burst = (
                (method, ""),
                per_minute / 60,
                max(2, round(per_minute * BURST_SHARE)),
            )
        else:
            return None
        found = self._buckets.get(key)
        if found is None:
            if len(self._buckets) >= KEPT_BUCKETS:
                self._forget_idle()
            found = self._buckets[key] = TokenBucket(rate * self.scale, round(burst * self.scale))
        return found

    def _forget_idle(self) -> None:
        """Drop the buckets nobody waits on that are full again: a new one would start the
        same (one bucket per channel that ever had a post would otherwise pile up)."""
        for key, bucket in list(self._buckets.items()):
            if bucket.idle():
                del self._buckets[key]

    async def take(self, method: str, channel: str | None) -> None:
        """Wait until a call of `method` in `channel` may go (no wait when not paced)."""
        found = self.bucket(method, channel)
        if found is not None:
            await found.take()
