"""Status message edits, coalesced per message (issue 13).

The engine reports every stage and progress step; a person needs only what changed, and
Slack allows about 50 ``chat.update`` calls a minute per workspace (Tier 3,
https://api.slack.com/docs/rate-limits). So per status message:

- an edit whose *signature* (what a person would see, progress rounded to the bar's
  cells) equals the last one sent, or the one waiting, is skipped;
- at most one edit waits: a newer one replaces it (the older is *superseded*);
- one sender task per message sends the waiting edit, then leaves `gap` seconds before
  the next non-final one; a final edit (a terminal state) goes without the gap.

The edit itself goes through the workspace's paced client (`bot.slack_client`), in the
``chat.update`` lane, so it never holds up a post. Callers do not wait for an edit to be
sent (the engine moves on); `submit` returns a future that is done once the edit was
sent, superseded or given up. Outcomes are counted in ``imagine_status_edits_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core import metrics
from core.ports import ChannelUnreachable, PublishError

log = logging.getLogger(__name__)

SEND_TRIES = 3
REMEMBERED = 10_000
"""Messages whose last sent signature is kept (least recently edited are forgotten)."""


@dataclass
class _Edit:
    signature: str
    send: Callable[[], Awaitable[object]]
    final: bool
    done: asyncio.Future[None]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class StatusEdits:
    """The coalescer (see the module docstring). `gap`: seconds between two edits of one
    message (final edits excepted). Keys name a message (workspace, channel, ts)."""

    def __init__(self, gap: float = 1.5) -> None:
        self.gap = gap
        self._sent: OrderedDict[str, tuple[str, float]] = OrderedDict()  # signature, when
        self._pending: dict[str, _Edit] = {}
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._closed = False

    def remember(self, key: str, signature: str) -> None:
        """Record `signature` as what message `key` shows now (it was just posted)."""
        self._sent[key] = (signature, time.monotonic())
        self._sent.move_to_end(key)
        while len(self._sent) > REMEMBERED:
            self._sent.popitem(last=False)

    def submit(
        self, key: str, signature: str, send: Callable[[], Awaitable[object]], *, final: bool
    ) -> asyncio.Future[None]:
        """Queue `send` (one chat.update) as message `key`'s next edit, unless `signature`
        is already shown or waiting. Returns a future done when it is sent or dropped."""
        loop = asyncio.get_running_loop()
        if self._closed:  # the process is stopping: the next one shows the state
            return _done(loop)
        waiting = self._pending.get(key)
        shown = waiting.signature if waiting else self._sent.get(key, ("", 0.0))[0]
        if signature == shown:
            metrics.STATUS_EDITS.labels("skipped").inc()
            return waiting.done if waiting else _done(loop)
        if waiting is not None:
            metrics.STATUS_EDITS.labels("superseded").inc()
            _settle(waiting.done)
        edit = _Edit(signature, send, final, loop.create_future())
        self._pending[key] = edit
        if key not in self._senders:
            self._wake[key] = asyncio.Event()
            self._senders[key] = asyncio.create_task(self._run(key), name=f"status-{key}")
        elif final:
            self._wake[key].set()
        return edit.done

    async def _run(self, key: str) -> None:
        try:
            while not self._closed and (edit := self._pending.get(key)) is not None:
                last = self._sent.get(key)
                wait = last[1] + self.gap - time.monotonic() if last else 0.0
                if wait > 0 and not edit.final:
                    wake = self._wake[key]
                    wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), wait)
                    continue  # the waiting edit may have been replaced meanwhile
                del self._pending[key]
                await self._send(key, edit)
        finally:
            self._senders.pop(key, None)
            self._wake.pop(key, None)

    async def _send(self, key: str, edit: _Edit) -> None:
        try:
            for attempt in range(1, SEND_TRIES + 1):
                try:
                    await edit.send()
                except PublishError as err:
                    if key in self._pending or attempt == SEND_TRIES or self._closed:
                        log.warning("status edit dropped: %s", err)
                        return  # a newer edit says more, or we gave up
                    await asyncio.sleep(err.retry_after or attempt)
                    continue
                except ChannelUnreachable as err:
                    log.warning("status edit dropped: %s", err.reason)
                    return
                except Exception:
                    log.exception("status edit failed")
                    return
                self.remember(key, edit.signature)
                metrics.STATUS_EDITS.labels("sent").inc()
                return
        finally:
            _settle(edit.done)

    async def close(self, within: float = 5.0) -> None:
        """Send what is waiting (for at most `within` seconds), then stop the senders."""
        senders = list(self._senders.values())
        if senders:
            await asyncio.wait(senders, timeout=within)
        self._closed = True
        for task in senders:
            task.cancel()
        if senders:
            await asyncio.wait(senders, timeout=within)


def _done(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    future.set_result(None)
    return future
