"""`/imagine forget-me` and its confirmation button (issue 12).

The command answers privately with what would be removed and a *Delete my data* button
whose value is the asker's user id; a click by anyone else changes nothing. On
confirmation `core.forget.forget` erases the person's data and records the bot's Slack
messages and files of their sessions, and the gallery posts of their images, for deletion
in the same transaction, and cancels their running versions (the engine is woken, and
`core.forget.settle` waits for them to stop and records what they posted meanwhile); then
`core.forget.run_deletions` deletes them (chat.delete, files.delete through the
publisher; the messages that share each file, read from files.info `shares`, are recorded
first and deleted too: Slack keeps them, showing a tombstone), each claimed before the
call, so a second click or a restart never deletes anything twice. Every sentence is in
`bot.messages`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import blocks, deletions, messages
from bot.listeners.actions import actor, private
from bot.runtime import Runtime
from core import forget

WORD = "forget-me"


def is_forget_command(text: str) -> bool:
    """Whether `/imagine` text is `forget-me`."""
    return text.strip().lower() == WORD


async def forget_command(
    ack: AsyncAck, command: dict[str, Any], runtime: Runtime, respond: AsyncRespond
) -> None:
    """`/imagine forget-me`: ack, then privately the preview and the confirmation button
    (or, with nothing to forget, say so after finishing deletions an earlier forget-me of
    the workspace left for later)."""
    await ack()
    team, user = command.get("team_id", ""), command["user_id"]
    found = await forget.preview(runtime.sessionmaker, team, user)
    if found.empty:
        await deletions.run(runtime, team)
        await respond(text=messages.FORGET_NOTHING, response_type="ephemeral")
        return
    text, body = blocks.forget_confirmation(messages.forget_preview(found), user)
    await respond(text=text, blocks=body, response_type="ephemeral")


async def confirm(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    context: dict[str, Any],
    respond: AsyncRespond,
) -> None:
    """*Delete my data*: only the person who asked may confirm; then forget them, delete
    the bot's messages and files of their sessions, and answer with what was removed."""
    await ack()
    runtime: Runtime = context["runtime"]
    clicker, team_id = actor(body)
    if not clicker or action.get("value") != clicker:
        await private(respond, messages.FORGET_NOT_YOURS)
        return
    report = await forget.forget(runtime.sessionmaker, team_id, clicker, runtime.store)
    if report.stopped:  # their running versions are cancelled, as by the Cancel button
        runtime.jobs.wake()
        await forget.settle(runtime.sessionmaker, team_id, report.stopped, runtime.store)
    done = await deletions.run(runtime, team_id)
    await private(respond, messages.forget_done(report, done))
