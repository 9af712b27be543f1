"""The App Home tab (issue 10): `app_home_opened` publishes it; its Approve and Request
changes buttons go through the same review handlers as the ones in threads.

A click on a Home tab comes with no channel: the button's value names the image's channel
("<generation>:<index>:<channel>:home", `bot.review_views.ChangeTarget`), the handlers
check that the generation belongs to that channel and team like any click, and here the
clicker must also be a member of that channel (users.conversations), so a forged value
cannot reach a conversation the person cannot see. The policy's rights are judged as for
a click in the thread. Afterwards the clicker's Home tab is published again.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck

from bot import home, messages
from bot.listeners.actions import Click, actor
from bot.listeners.review import approve_click, open_changes
from bot.review_views import ChangeTarget
from bot.runtime import Runtime
from core import home as home_uc
from core.jobs.outcomes import best_effort
from core.sessions import ActionRefused, Conversation

log = logging.getLogger(__name__)


async def on_app_home_opened(event: dict[str, Any], context: dict[str, Any]) -> None:
    """`app_home_opened` on the Home tab: remember that the person opened it (their Home is
    republished when its items change, bot.home_refresh) and publish it (views.publish).
    https://docs.slack.dev/reference/events/app_home_opened"""
    if event.get("tab") != "home" or not isinstance(event.get("user"), str):
        return  # the Messages tab, or a payload without a person
    runtime: Runtime = context["runtime"]
    team_id = str(context.get("team_id") or "")
    await home_uc.mark_seen(runtime.sessionmaker, team_id, event["user"])
    await home.refresh(runtime, team_id, event["user"])


def _home_click(body: dict[str, Any], action: dict[str, Any]) -> Click | None:
    """The click a Home tab button describes (channel from the value), or None."""
    user_id, team_id = actor(body)
    target = ChangeTarget.parse(action.get("value"))
    if target is None or not target.from_home or not user_id:
        return None
    where = Conversation(team_id, target.channel_id)
    return Click(user_id, where, target.generation_id, target.index)


async def _checked(runtime: Runtime, body: dict[str, Any], action: dict[str, Any]) -> Click | None:
    """The Home click if it is usable and the clicker is in its channel; else None, after
    telling them why (ephemeral in the channel) and refreshing their Home."""
    click = _home_click(body, action)
    if click is None:
        log.info("a Home tab click with an unusable value")
        return None
    if click.where.channel_id not in await runtime.publisher.member_channels(click.user_id):
        log.info("a Home tab click by %s on a channel they are not in", click.user_id)
        await best_effort(runtime.publisher.send_dm(click.user_id, messages.HOME_NOT_A_MEMBER))
        await home.refresh(runtime, click.where.team_id, click.user_id)
        return None
    return click


def _notifier(runtime: Runtime, click: Click) -> Any:
    async def notify(text: str) -> None:
        try:
            await runtime.publisher.tell_user(click.where.channel_id, click.user_id, text)
        except Exception as err:  # the answer is best effort; the Home tab shows the state
            log.warning("could not answer a Home tab click: %s", type(err).__name__)

    return notify


async def home_approve(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: dict[str, Any]
) -> None:
    """Approve on the Home tab: `approve_click` as in the thread, then a fresh Home."""
    await ack()
    runtime: Runtime = context["runtime"]
    click = await _checked(runtime, body, action)
    if click is None:
        return
    notify = _notifier(runtime, click)
    try:
        await approve_click(runtime, click, notify)
    except ActionRefused as refused:
        await notify(messages.refusal(refused.reason) or messages.STALE_BUTTON)
    await home.refresh(runtime, click.where.team_id, click.user_id)


async def home_request_changes(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: dict[str, Any]
) -> None:
    """Request changes on the Home tab: the same modal as in the thread; its submission
    refreshes the Home tab."""
    await ack()
    runtime: Runtime = context["runtime"]
    click = await _checked(runtime, body, action)
    trigger = body.get("trigger_id")
    if click is None or not isinstance(trigger, str):
        return
    notify = _notifier(runtime, click)
    try:
        await open_changes(runtime, click, trigger, notify, from_home=True)
    except ActionRefused as refused:
        await notify(messages.refusal(refused.reason) or messages.STALE_BUTTON)
        await home.refresh(runtime, click.where.team_id, click.user_id)
