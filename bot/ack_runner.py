"""Bolt's listener runner, answering Slack the moment a listener acks (issue 13).

With `process_before_response=False` (how the bot runs) Bolt starts the listener as a task
and then looks at `ack.response` every 10 ms until it is set
(`slack_bolt/listener/asyncio_runner.py`, `AsyncioListenerRunner.run`, slack-bolt 1.x). So
each answer leaves up to 10 ms after the ack, and under a burst of slash commands every
request still waiting for its ack wakes the event loop 100 times a second. `AckRunner`
runs Bolt's own `run` unchanged, with an ack that signals when it is called: the answer
then leaves at once, as Bolt would send it at its next look (`ack.response`), and Bolt's
task ends at that look. Errors, timeouts, lazy listeners and `process_before_response` stay
Bolt's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.listener.async_listener import AsyncListener
from slack_bolt.listener.asyncio_runner import AsyncioListenerRunner
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)

_running: set[asyncio.Future[Any]] = set()  # Bolt's tasks still finishing after an ack


class SignallingAck(AsyncAck):
    """Bolt's `ack`, which also resolves `acked` (a future) when called."""

    def __init__(self, acked: asyncio.Future[None]) -> None:
        super().__init__()
        self._acked = acked

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        """Bolt's ack (same arguments, same answer), then the signal."""
        answer = await super().__call__(*args, **kwargs)
        if not self._acked.done():
            self._acked.set_result(None)
        return answer


class AckRunner(AsyncioListenerRunner):
    """`AsyncioListenerRunner` that returns as soon as the listener acks (module doc)."""

    async def run(
        self,
        request: AsyncBoltRequest,
        response: BoltResponse,
        listener_name: str,
        listener: AsyncListener,
        starting_time: float | None = None,
    ) -> BoltResponse | None:
        """Bolt's answer for this listener (see `AsyncioListenerRunner.run`)."""
        if self.process_before_response or request.lazy_only:
            return await super().run(request, response, listener_name, listener, starting_time)
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        request.context["ack"] = SignallingAck(acked)  # Bolt's context.ack reads this key
        bolt = asyncio.ensure_future(
            super().run(request, response, listener_name, listener, starting_time)
        )
        bolt.add_done_callback(lambda _: acked.done() or acked.set_result(None))
        try:
            await acked
        except asyncio.CancelledError:
            bolt.cancel()
            raise
        if bolt.done():  # an error, a timeout without ack, or Bolt saw the ack first
            return bolt.result()
        _running.add(bolt)
        bolt.add_done_callback(_running.discard)
        ack = request.context.ack
        # What Bolt returns once it sees the ack (the end of AsyncioListenerRunner.run).
        return ack.response if response is None else response


def install(app: Any) -> None:
    """Put an `AckRunner` in place of `app`'s (a slack_bolt AsyncApp) listener runner, with
    the same handlers. Bolt has no public hook for this (`AsyncApp._async_listener_runner`):
    when a Bolt release has changed it (no such runner, another class), Bolt's own runner
    stays, and the answers leave at its next 10 ms look as before (logged once)."""
    old = getattr(app, "_async_listener_runner", None)
    if type(old) is not AsyncioListenerRunner:
        log.warning("Bolt's listener runner is %s: acks are answered by Bolt's", type(old))
        return
    app._async_listener_runner = AckRunner(
        logger=old.logger,
        process_before_response=old.process_before_response,
        listener_error_handler=old.listener_error_handler,
        listener_start_handler=old.listener_start_handler,
        listener_completion_handler=old.listener_completion_handler,
        lazy_listener_runner=old.lazy_listener_runner,
    )
