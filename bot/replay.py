"""At start, the requests a stopped process acknowledged and did not start (core.intake):
started now, and each person told the outcome the way the listener would have."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.listeners.commands import Taken, finish_start
from bot.listeners.mentions import tell_outcome
from bot.runtime import Runtime
from core.intake import Replayed

log = logging.getLogger(__name__)


# A response_url takes messages for 30 minutes after the command
# (https://docs.slack.dev/interactivity/handling-user-interaction#message_responses); past
# this age (a minute's margin) a replayed /imagine is told in its channel instead.
RESPONSE_URL_SECONDS = 29 * 60


async def replay_stored(runtime: Runtime) -> None:
    """Start every request left in the inbox (in arrival order, as one group when they
    fit) and tell each outcome: a `/imagine` through its `response_url` while Slack still
    takes it (`RESPONSE_URL_SECONDS`), after that and for a mention privately in its
    channel or thread (`chat.postEphemeral`)."""
    if runtime.intake is None:
        return
    await asyncio.gather(*(_tell(runtime, left) for left in await runtime.intake.replay()))


class _Respond(AsyncRespond):
    """Bolt's `respond` for a replayed `/imagine`: through its `response_url` while Slack
    still takes it, after that (decided when the message is sent) the same private
    message by `chat.postEphemeral` in the command's channel."""

    def __init__(self, runtime: Runtime, left: Replayed, response_url: str) -> None:
        super().__init__(response_url=response_url)
        self._runtime, self._left = runtime, left

    async def __call__(self, text: str = "", blocks: Any = None, **kwargs: Any) -> Any:
        """Bolt's `respond(text=…, blocks=…, response_type=…, …)`; returns its answer, or
        None when told by chat.postEphemeral."""
        if time.time() - self._left.received_at < RESPONSE_URL_SECONDS:
            return await super().__call__(text=text, blocks=blocks, **kwargs)
        where = self._left.request.session
        await self._runtime.publisher.tell_user(
            where.channel_id, where.owner, text, where.thread_ts, blocks=blocks
        )
        return None


async def _tell(runtime: Runtime, left: Replayed) -> None:
    """Start one stored request and tell its outcome as its listener would have."""
    request, taken = left.request, Taken(later=left.start)
    where = request.session
    here = runtime.for_request({"team_id": where.team_id, "enterprise_id": where.enterprise_id})
    try:
        if request.response_url:
            respond = _Respond(here, left, request.response_url)
            await finish_start(here, taken, _acked_before, respond)
        else:
            await tell_outcome(here, taken, where.channel_id, where.owner, where.thread_ts)
    except Exception:  # one person not told must not stop the others' sessions
        log.exception("could not tell the outcome of a stored request")


async def _acked_before(*_: Any, **__: Any) -> None:
    """The ack: Slack had it from the process that stored the request."""
