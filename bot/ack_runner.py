"""Bolt's listener runner, answering Slack the moment a listener acks (issue 13).

With `process_before_response=False` (how the bot runs) Bolt starts the listener as a task
and then looks at `ack.response` every 10 ms until it is set
(`slack_bolt/listener/asyncio_runner.py`, `AsyncioListenerRunner.run`, slack-bolt 1.x). So
each answer leaves up to 10 ms after the ack, and every request still waiting for its ack
wakes the event loop 100 times a second: under a burst of slash commands, whose acks wait
for their group commit (core.db.writer), that is (requests waiting) x (looks each), e.g.
300 x 30 wake-ups in a burst of 300, all on the loop that parses the burst.

`AckRunner` does what Bolt's runner does in that mode (the listener started as its own
task, with Bolt's start, error and completion handlers; lazy listeners started; Bolt's
500 when the listener fails before acking; Bolt's warning and no answer when it never
acks within `ack_timeout`) but waits for the ack itself: its `ack` resolves a future when
called, and the answer leaves at once. `process_before_response` and lazy-only requests
stay Bolt's own code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.listener.async_listener import AsyncListener
from slack_bolt.listener.asyncio_runner import AsyncioListenerRunner
from slack_bolt.logger.messages import warning_did_not_call_ack
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

log = logging.getLogger(__name__)

_running: set[asyncio.Future[Any]] = set()  # listener tasks still going after an ack


class SignallingAck(AsyncAck):
    """Bolt's `ack`, which also resolves `acked` (a future) when called."""

    def __init__(self, acked: asyncio.Future[None]) -> None:
        super().__init__()
        self._acked = acked

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        """Bolt's ack (same arguments, same answer), then the signal."""
        answer = await super().__call__(*args, **kwargs)
        _resolve(self._acked)
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
        """Bolt's answer for this listener (see `AsyncioListenerRunner.run`): the ack's
        response, Bolt's 500 when the listener failed before acking, or None (logged) when
        it did not ack within `listener.ack_timeout` seconds."""
        if self.process_before_response or request.lazy_only:
            return await super().run(request, response, listener_name, listener, starting_time)
        starting_time = starting_time if starting_time is not None else time.time()
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()
        request.context["ack"] = SignallingAck(acked)  # Bolt's context.ack reads this key
        ack = request.context.ack
        if listener.auto_acknowledgement:  # Events API: acknowledged at once (as Bolt does)
            await ack()
        task = loop.create_task(self._listen(ack, request, response, listener))
        _running.add(task)
        task.add_done_callback(_running.discard)
        task.add_done_callback(lambda _: _resolve(acked))  # ended without acking
        for lazy_func in listener.lazy_functions:  # as Bolt: start each, no lazy-only here
            self._start_lazy_function(lazy_func, request)
        left = listener.ack_timeout - (time.time() - starting_time)
        # One timer instead of asyncio.timeout + shield: this runs once per Slack request.
        timer = loop.call_later(max(0.0, left), _resolve, acked)
        try:
            await acked
        finally:
            timer.cancel()
        if ack.response is None:
            self.logger.warning(warning_did_not_call_ack(listener_name))
            return None
        # What Bolt returns once it sees the ack (the end of AsyncioListenerRunner.run).
        return ack.response if response is None else response

    async def _listen(
        self,
        ack: AsyncAck,
        request: AsyncBoltRequest,
        response: BoltResponse | None,
        listener: AsyncListener,
    ) -> None:
        """The listener with Bolt's handlers around it (Bolt's
        `run_ack_function_asynchronously`): an error before the ack answers 500."""
        try:
            await self.listener_start_handler.handle(request=request, response=response)
            await listener.run_ack_function(request=request, response=response)
        except Exception as err:
            if response is None:
                response = BoltResponse(status=500)
            response.status = 500
            if ack.response is not None:  # already acknowledged: no answer to change
                response = None
            await self.listener_error_handler.handle(
                error=err,
                request=request,
                response=response,
            )
            ack.response = response
        finally:
            await self.listener_completion_handler.handle(request=request, response=response)


def _resolve(acked: asyncio.Future[None]) -> None:
    """Stop the wait for the ack (the ack came, the listener ended, or the time is up)."""
    if not acked.done():
        acked.set_result(None)


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
