"""`/imagine style save|list|show|delete|default …`: brand styles of the workspace.

Thin: parse the words, ask `bot.admins` where an admin may act, call `core.styles`, answer
privately (the slash command's ack). Every sentence is in `bot.messages`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck

from bot import messages
from bot.admins import is_admin
from bot.runtime import Runtime
from core import styles
from core.moderation import ModerationRefused
from core.styles import StyleRefused

WORD = "style"
ACTIONS = ("save", "list", "show", "delete", "default", "help")


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
        text = messages.moderation_refused(no.categories, no.terms, no.unavailable)
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
