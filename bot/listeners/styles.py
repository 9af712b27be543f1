"""`/imagine style save|list|show|delete|default …`: brand styles of the workspace; and
*Save style…* on a result (an image's "…" menu), which opens a modal to name the style.

Thin: parse the words, ask `bot.admins` where an admin may act, call `core.styles`, answer
privately (the slash command's ack). Every sentence is in `bot.messages`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import messages
from bot.admins import is_admin
from bot.listeners.actions import Click, actor, button
from bot.review_views import ChangeTarget, submitted_text
from bot.runtime import Runtime
from bot.style_views import NAME_ACTION, NAME_BLOCK, TEXT_ACTION, TEXT_BLOCK, save_style_modal
from core import style_results, styles
from core.moderation import ModerationRefused
from core.sessions import ActionRefused, Conversation
from core.styles import StyleProblem, StyleRefused

WORD = "style"
ACTIONS = ("save", "list", "show", "delete", "default", "help")
TEXT_PROBLEMS = (StyleProblem.NO_TEXT, StyleProblem.TOO_LONG)  # the modal's text field


def is_style_command(text: str) -> bool:
    """Whether `/imagine` text is a style subcommand (`style list`, …), not a prompt that
    starts with the word ("style of Monet, a pond")."""
    words = text.lower().split(None, 2)
    return bool(words) and words[0] == WORD and (len(words) == 1 or words[1] in ACTIONS)


async def style_command(ack: AsyncAck, command: dict[str, Any], runtime: Runtime) -> None:
    """Answer `/imagine style …` privately."""
    words = (command.get("text") or "").strip().split(None, 3)
    action = words[1].lower() if len(words) > 1 else "help"
    try:
        text = await _run(runtime, command, action, words[2:])
    except StyleRefused as err:
        text = messages.style_refused(err.problem, err.name, err.known)
    except ModerationRefused as no:
        text = messages.moderation_refused(no.categories, no.terms, no.unavailable, no.retry_after)
    await ack(text=text, response_type="ephemeral")


async def _run(runtime: Runtime, command: dict[str, Any], action: str, args: list[str]) -> str:
    sm, team = runtime.sessionmaker, command.get("team_id", "")
    user, channel = command["user_id"], command["channel_id"]
    if action == "list":
        return messages.style_list(await styles.listing(sm, team))
    if action in ("show", "delete", "default", "save") and not args:
        return messages.STYLE_USAGE
    if action == "show":
        return messages.style_shown(await styles.show(sm, team, args[0]))
    if action == "delete":
        admin = await is_admin(runtime.publisher, runtime.settings, user)
        await styles.delete(sm, team, args[0], user, admin, runtime.store)
        return messages.style_deleted(args[0])
    if action == "default":
        if not await is_admin(runtime.publisher, runtime.settings, user):
            return messages.STYLE_DEFAULT_ADMINS_ONLY
        await styles.set_default(sm, team, channel, args[0], user)
        return messages.style_default_set(args[0])
    if action == "save":
        new = await styles.save(
            sm,
            team_id=team,
            channel_id=channel,
            user_id=user,
            name=args[0],
            text=" ".join(args[1:]),
            is_admin=await is_admin(runtime.publisher, runtime.settings, user),
            moderator=runtime.moderator,
        )
        return messages.style_saved(args[0], new)
    return messages.STYLE_USAGE


@button(with_index=True, opens_modal=True, menu=True)
async def save_style_chosen(
    runtime: Runtime, click: Click, trigger: str, respond: AsyncRespond
) -> None:
    """*Save style…* in an image's "…" menu: open the modal (views.open with the click's
    trigger_id) prefilled with the version's prompt."""
    found = await style_results.describe(
        runtime.sessionmaker, click.generation_id, click.index, click.where
    )
    target = ChangeTarget(click.generation_id, click.index, click.where.channel_id)
    await runtime.publisher.open_view(trigger, save_style_modal(target, found.label, found.prompt))


async def save_style_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: dict[str, Any]
) -> None:
    """The *Save style* modal was submitted: save, or keep the modal open with the reason
    under the field to change (`response_action: errors`); once saved, say so privately in
    the thread."""
    runtime: Runtime = context["runtime"]
    target = ChangeTarget.parse(view.get("private_metadata"))
    user_id, team_id = actor(body)
    if target is None or not user_id:
        await ack(response_action="errors", errors={NAME_BLOCK: messages.STYLE_IMAGE_GONE})
        return
    name = submitted_text(view, NAME_BLOCK, NAME_ACTION)
    where = Conversation(team_id, target.channel_id)
    try:
        saved = await style_results.save_from_result(
            runtime.sessionmaker,
            where=where,
            user_id=user_id,
            generation_id=target.generation_id,
            index=target.index,
            name=name,
            text=submitted_text(view, TEXT_BLOCK, TEXT_ACTION),
            is_admin=await is_admin(runtime.publisher, runtime.settings, user_id),
            moderator=runtime.moderator,
        )
    except StyleRefused as err:
        field = TEXT_BLOCK if err.problem in TEXT_PROBLEMS else NAME_BLOCK
        text = messages.style_field_error(err.problem, err.name)
        return await ack(response_action="errors", errors={field: text})
    except ModerationRefused as no:
        text = messages.style_text_refused(no.categories, no.terms, no.unavailable)
        return await ack(response_action="errors", errors={TEXT_BLOCK: text})
    except ActionRefused:
        return await ack(response_action="errors", errors={NAME_BLOCK: messages.STYLE_IMAGE_GONE})
    await ack()
    note = messages.style_saved_from_result(saved)
    await runtime.publisher.tell_user(saved.channel_id, user_id, note, saved.thread_ts)
