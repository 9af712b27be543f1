"""Buttons: Regenerate, Refine this and History on results; Cancel on status (Approve and
Request changes are in `bot.listeners.review`).

Button values carry the generation id (and image index): "<generation_id>:<index>" for
Approve and Refine this, "<generation_id>" for the others. Every click is acknowledged
first, then validated (`button`): a value that names nothing gets a private "this button
is out of date", a generation of another channel or team a private "this button belongs
to another conversation", a deleted one "this version is gone"; none of them changes
anything. Anyone in the channel may click, except Cancel (the requester or the session's
owner). A click that opens a modal (Request changes, *Save style…*) also needs the
payload's `trigger_id` (`button(opens_modal=True)`); without one it is out of date too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import blocks, cost, messages
from bot.runtime import Runtime
from core import history as history_uc
from core import logs, refinement, sessions
from core.quotas import QuotaExceeded
from core.sessions import ActionRefused, Conversation

log = logging.getLogger(__name__)

# "<generation id>" or "<generation id>:<image index>"; ids fit SQL's 64-bit integers.
VALUE = re.compile(r"([0-9]{1,18})(?::([0-9]{1,3}))?", re.ASCII)


@dataclass(frozen=True)
class Click:
    """A validated button click: who, where (team and channel), which generation, which
    image (0-based; 0 for buttons that name only the generation)."""

    user_id: str
    where: Conversation
    generation_id: int
    index: int


Handler = Callable[[Runtime, Click, AsyncRespond], Awaitable[None]]
Opener = Callable[[Runtime, Click, str, AsyncRespond], Awaitable[None]]  # str: trigger_id
Listener = Callable[..., Awaitable[None]]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def actor(body: dict[str, Any]) -> tuple[str, str]:
    """(user id, team id) of who acted in an interactivity payload (`user.id`, and `team.id`
    or else `user.team_id`); "" for a part that is missing."""
    user = body.get("user") if isinstance(body.get("user"), dict) else {}
    team = body.get("team") if isinstance(body.get("team"), dict) else {}
    return _str(user.get("id")), _str(team.get("id")) or _str(user.get("team_id"))


def parse_click(body: dict[str, Any], action: dict[str, Any], *, with_index: bool) -> Click | None:
    """The click a `block_actions` payload describes, or None when a part is missing or
    malformed (Slack's payload: `user.id`, `channel.id`, `team.id`, `actions[].value`)."""
    channel = body.get("channel") if isinstance(body.get("channel"), dict) else {}
    user_id, team_id = actor(body)
    channel_id = _str(channel.get("id"))
    match = VALUE.fullmatch(_str(action.get("value")))
    if not (user_id and channel_id and match) or with_index != (match[2] is not None):
        return None
    generation_id = int(match[1])
    if generation_id < 1:
        return None
    return Click(user_id, Conversation(team_id, channel_id), generation_id, int(match[2] or 0))


async def private(respond: AsyncRespond, text: str) -> None:
    """Answer only the clicker (ephemeral, through the payload's response_url)."""
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception as err:  # no response_url, or Slack refused it: nothing else to do
        log.warning("could not answer a click privately: %s", type(err).__name__)


@overload
def button(
    *, with_index: bool, opens_modal: Literal[False] = False, menu: bool = False
) -> Callable[[Handler], Listener]: ...


@overload
def button(
    *, with_index: bool, opens_modal: Literal[True], menu: bool = False
) -> Callable[[Opener], Listener]: ...


def button(
    *, with_index: bool, opens_modal: bool = False, menu: bool = False
) -> Callable[[Any], Listener]:
    """Make a Bolt listener of `handler(runtime, click, respond)`: ack first, validate the
    payload, and word a refusal (ActionRefused) privately.

    `opens_modal`: the handler is `opener(runtime, click, trigger_id, respond)`, given the
    payload's `trigger_id` for views.open (a trigger expires 3 seconds after the click,
    https://docs.slack.dev/reference/methods/views.open); a payload without one gets the
    private "out of date" answer. `menu`: the value is the chosen option's (an overflow
    menu's `selected_option.value`), not the button's."""

    def wrap(handler: Any) -> Listener:
        async def listener(
            ack: AsyncAck,
            body: dict[str, Any],
            action: dict[str, Any],
            respond: AsyncRespond,
            context: dict[str, Any],
        ) -> None:
            await ack()
            if menu:
                action = {**action, "value": _chosen(action)}
            click = parse_click(body, action, with_index=with_index)
            trigger = body.get("trigger_id")
            if click is None or (opens_modal and not isinstance(trigger, str)):
                log.info("%s: a click with an unusable payload", handler.__name__)
                await private(respond, messages.STALE_BUTTON)
                return
            logs.bind(generation_id=click.generation_id)  # issue 13: on every log line
            try:
                if opens_modal:
                    await handler(context["runtime"], click, trigger, respond)
                else:
                    await handler(context["runtime"], click, respond)
            except ActionRefused as refused:
                log.info(
                    "%s on %s refused: %s",
                    handler.__name__,
                    click.generation_id,
                    refused.reason.value,
                )
                text = messages.refusal(refused.reason)
                if text:
                    await private(respond, text)

        listener.__name__ = handler.__name__
        listener.__qualname__ = handler.__qualname__
        listener.__doc__ = handler.__doc__
        return listener

    return wrap


def _chosen(action: dict[str, Any]) -> Any:
    """The value of an overflow menu's chosen option (`selected_option.value`), or None."""
    option = action.get("selected_option")
    return option.get("value") if isinstance(option, dict) else None


@button(with_index=False)
async def regenerate(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
    """Regenerate: the same request with a new seed as the next version."""
    policy = cost.policy(runtime.settings)
    try:
        await sessions.regenerate(
            runtime.sessionmaker, click.generation_id, click.user_id, click.where, policy
        )
    except QuotaExceeded as err:
        return await private(respond, messages.quota_refused(err))
    runtime.jobs.wake()
    await cost.send_budget_alerts(runtime)


@button(with_index=True)
async def refine_this(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
    """Refine this: the picked image becomes the base the next replies refine."""
    picked = await refinement.pick_base(
        runtime.sessionmaker, click.generation_id, click.index, click.where
    )
    await runtime.publisher.say_in_thread(
        picked.session.channel_id,
        picked.session.thread_ts,
        messages.picked_base(click.user_id, picked.label),
    )


@button(with_index=False)
async def cancel(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
    """Cancel: stop a running version (its requester or the session's owner only)."""
    outcome = await sessions.cancel(
        runtime.sessionmaker, click.generation_id, click.user_id, click.where
    )
    view = outcome.view
    if not outcome.allowed:
        text = messages.cancel_not_allowed(view.version, view.requested_by, view.owner_user_id)
        await private(respond, text)
    elif not outcome.running:
        await private(respond, messages.already_finished(view.version, view.state))
    else:
        runtime.jobs.wake()


@button(with_index=False)
async def history(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
    """History: every version of this thread, privately, linked to its result."""
    found = await history_uc.versions(runtime.sessionmaker, click.generation_id, click.where)
    lines = []
    for item in found.versions:
        link = None
        if item.result_ts:
            link = await runtime.publisher.permalink(found.channel_id, item.result_ts)
        lines.append(messages.version_line(item, link))
    await private(respond, blocks.history_text(lines, "Versions in this thread"))
