"""At start, the requests a stopped process acknowledged and did not start (core.intake):
started now, and each person told the outcome the way the listener would have."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond

from bot.listeners.commands import Taken, finish_start
from bot.listeners.mentions import tell_outcome
from bot.runtime import Runtime
from core.sessions import StartRequest

log = logging.getLogger(__name__)


async def replay_stored(runtime: Runtime) -> None:
    """Start every request left in the inbox (in arrival order, as one group when they
    fit) and tell each outcome: a `/imagine` through its `response_url` (valid for 30
    minutes, https://docs.slack.dev/interactivity/handling-user-interaction#message_responses),
    a mention in its thread."""
    if runtime.intake is None:
        return
    await asyncio.gather(
        *(_tell(runtime, request, start) for request, start in await runtime.intake.replay())
    )


async def _tell(runtime: Runtime, request: StartRequest, start: Coroutine[Any, Any, int]) -> None:
    """Start one stored request and tell its outcome as its listener would have."""
    where = request.session
    here = runtime.for_request({"team_id": where.team_id, "enterprise_id": where.enterprise_id})
    taken = Taken(later=start)
    try:
        if request.response_url:
            respond = AsyncRespond(response_url=request.response_url)
            await finish_start(here, taken, _acked_before, respond)
        else:
            await tell_outcome(here, taken, where.channel_id, where.owner, where.thread_ts)
    except Exception:  # one person not told must not stop the others' sessions
        log.exception("could not tell the outcome of a stored request")


async def _acked_before(*_: Any, **__: Any) -> None:
    """The ack: Slack had it from the process that stored the request."""
