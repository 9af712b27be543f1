"""Team review on the Slack side: `/imagine review [set …|off]` and Approve under the
channel's review policy (issue 10).

The policy is judged in `core` (`core.policy.judge` inside `core.sessions.approve`); this
module only resolves which of the policy's user groups the clicker is in
(`usergroups.users.list`, asked when the click is judged so group changes apply at once),
words the outcome, updates the result message and publishes to the gallery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import gallery, home, messages
from bot.admins import is_admin
from bot.listeners.actions import Click, actor, button, private
from bot.listeners.events import handle_reply
from bot.publisher import SlackPublisher
from bot.review_text import ReviewSyntaxError, parse_review
from bot.review_views import (
    APPROVALS_BLOCK,
    COMMENT_ACTION,
    COMMENT_BLOCK,
    FIELD_BLOCKS,
    ChangeTarget,
    request_changes_modal,
    settings_modal,
    settings_values,
    submitted_text,
)
from bot.runtime import Runtime
from core import history as history_uc
from core import review, sessions
from core.policy import Policy, PolicyInvalid
from core.sessions import ActionRefused, Conversation

log = logging.getLogger(__name__)


async def member_groups(publisher: SlackPublisher, policy: Policy, user_id: str) -> frozenset[str]:
    """The policy's user groups `user_id` is a member of (Slack's `usergroups.users.list`
    per group; a group Slack will not list counts as "not a member")."""
    if user_id in policy.reviewer_users:
        return frozenset()  # named in person: no need to ask Slack
    return await publisher.groups_of(frozenset(policy.reviewer_groups), user_id)


async def review_command(ack: AsyncAck, command: dict[str, Any], runtime: Runtime) -> None:
    """`/imagine review` (anyone: shows the rules), `… set --…` and `… off` (admins)."""
    team_id, channel_id = command.get("team_id", ""), command["channel_id"]
    user_id = command["user_id"]
    try:
        parsed = parse_review((command.get("text") or "").strip())
    except ReviewSyntaxError as err:
        await ack(text=messages.review_error(str(err)), response_type="ephemeral")
        return
    sm = runtime.sessionmaker
    if parsed.action == "show":
        policy = await review.get_policy(sm, team_id, channel_id)
        await ack(text=messages.policy_text(policy, channel_id), response_type="ephemeral")
        return
    if not await is_admin(runtime.publisher, runtime.settings, user_id):
        log.info("review change by non-admin %s refused", user_id)
        await ack(text=messages.REVIEW_ADMIN_ONLY, response_type="ephemeral")
        return
    if parsed.action == "off":
        await review.reset_policy(sm, team_id=team_id, channel_id=channel_id, user_id=user_id)
        await ack(text=messages.policy_off(channel_id), response_type="ephemeral")
        return
    assert parsed.edit is not None
    current = await review.get_policy(sm, team_id, channel_id)
    try:
        change = await review.set_policy(
            sm,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            policy=parsed.edit.apply(current),
        )
    except PolicyInvalid as err:
        await ack(text=messages.review_error(str(err)), response_type="ephemeral")
        return
    await ack(text=messages.policy_saved(change.after, channel_id), response_type="ephemeral")


Notify = Callable[[str], Awaitable[None]]


async def approve_click(runtime: Runtime, click: Click, notify: Notify) -> None:
    """Judge and count an Approve click (from a result message or the Home tab) under the
    channel's policy; `notify` tells the clicker privately what did not count. Updates the
    result message and, at the required count, publishes to the gallery. Raises
    ActionRefused (GONE, WRONG_CONVERSATION)."""
    sm = runtime.sessionmaker
    policy = await review.get_policy(sm, click.where.team_id, click.where.channel_id)
    groups = await member_groups(runtime.publisher, policy, click.user_id)
    outcome = await sessions.approve(
        sm, click.generation_id, click.index, click.user_id, click.where, user_groups=groups
    )
    view = outcome.view
    if outcome.refused is not None:
        await notify(messages.approval_refused(outcome.refused, view))
        return
    if outcome.already_voted:
        await notify(messages.already_voted(click.index, view))
        return
    if not outcome.newly_approved:
        approver = outcome.approved_by or click.user_id
        await notify(messages.already_approved(click.index, view.version, approver))
        return
    await runtime.publisher.update_result(view)
    await runtime.publisher.review_items_changed(view)  # Home tabs, in the background
    if outcome.gallery is not None:
        await gallery.publish(runtime, outcome.gallery, notify)


@button(with_index=True)
async def approve(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
    """Approve: counted once per allowed person under the channel's policy; the result
    shows the progress; at the required count the image is approved and published."""

    async def notify(text: str) -> None:
        await private(respond, text)

    await approve_click(runtime, click, notify)


async def open_changes(
    runtime: Runtime, click: Click, trigger: str, notify: Notify, *, from_home: bool = False
) -> None:
    """Open the Request changes modal for a click (views.open with its trigger_id).
    Raises ActionRefused (GONE, WRONG_CONVERSATION)."""
    found = await history_uc.versions(runtime.sessionmaker, click.generation_id, click.where)
    version = next(v.version for v in found.versions if v.generation_id == click.generation_id)
    target = ChangeTarget(click.generation_id, click.index, click.where.channel_id, from_home)
    label = f"v{version} image {click.index + 1}"
    if await runtime.publisher.open_view(trigger, request_changes_modal(target, label)) is None:
        await notify(messages.CHANGES_NOT_OPENED)


@button(with_index=True, opens_modal=True)
async def request_changes(
    runtime: Runtime, click: Click, trigger: str, respond: AsyncRespond
) -> None:
    """Request changes: open the comment modal (views.open with the click's trigger_id)."""

    async def notify(text: str) -> None:
        await private(respond, text)

    await open_changes(runtime, click, trigger, notify)


async def changes_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]
) -> None:
    """The Request changes modal was submitted: validate in the modal, then post the note
    in the thread and take the comment as the thread's next reply (`handle_reply`)."""
    runtime: Runtime = context["runtime"]
    comment = submitted_text(view, COMMENT_BLOCK, COMMENT_ACTION).strip()
    if not comment:
        await ack(response_action="errors", errors={COMMENT_BLOCK: messages.EMPTY_COMMENT})
        return
    await ack()
    target = ChangeTarget.parse(view.get("private_metadata"))
    user_id, team_id = actor(body)
    if target is None or not user_id:
        log.info("a Request changes submission with unusable metadata")
        return
    where = Conversation(team_id, target.channel_id)
    try:
        request = await review.request_changes(
            runtime.sessionmaker, target.generation_id, target.index, user_id, where, comment
        )
    except (ActionRefused, ValueError) as err:
        log.info("Request changes on %s refused: %s", target.generation_id, err)
        return
    session = request.session
    note = messages.change_note(user_id, request.label, comment)
    await runtime.publisher.say_in_thread(session.channel_id, session.thread_ts, note)
    await runtime.publisher.update_result(request.view)
    await runtime.publisher.review_items_changed(request.view)
    await handle_reply(runtime, session, {"user": user_id, "text": comment})
    await review.link_change(runtime.sessionmaker, request, user_id)
    if target.from_home:
        await home.refresh(runtime, where.team_id, user_id)


async def settings_command(ack: AsyncAck, command: dict[str, Any], runtime: Runtime) -> None:
    """`/imagine settings`: admins get the review settings modal (views.open with the
    command's trigger_id); others a private explanation."""
    if not await is_admin(runtime.publisher, runtime.settings, command["user_id"]):
        await ack(text=messages.REVIEW_ADMIN_ONLY, response_type="ephemeral")
        return
    channel_id = command["channel_id"]
    policy = await review.get_policy(runtime.sessionmaker, command.get("team_id", ""), channel_id)
    opened = await runtime.publisher.open_view(
        str(command.get("trigger_id") or ""), settings_modal(policy, channel_id)
    )
    if opened:
        await ack()
    else:
        await ack(text=messages.SETTINGS_NOT_OPENED, response_type="ephemeral")


async def settings_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]
) -> None:
    """The settings modal was submitted: checked in the modal (`response_action: errors`
    on the block to fix), saved and audited like `/imagine review set`."""
    runtime: Runtime = context["runtime"]
    user_id, team_id = actor(body)
    channel_id = str(view.get("private_metadata") or "")
    if not await is_admin(runtime.publisher, runtime.settings, user_id):
        await ack(response_action="errors", errors={APPROVALS_BLOCK: messages.REVIEW_ADMIN_ONLY})
        return
    current = await review.get_policy(runtime.sessionmaker, team_id, channel_id)
    wanted = settings_values(view, current)
    if isinstance(wanted, str):
        await ack(response_action="errors", errors={APPROVALS_BLOCK: wanted})
        return
    try:
        await review.set_policy(
            runtime.sessionmaker,
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            policy=wanted,
        )
    except PolicyInvalid as err:
        block = FIELD_BLOCKS.get(err.field, APPROVALS_BLOCK)
        await ack(response_action="errors", errors={block: str(err)})
        return
    await ack()
