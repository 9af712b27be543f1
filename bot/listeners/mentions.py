"""`@imagine <prompt> [flags]`: a mention of the bot (Slack's `app_mention` event,
https://api.slack.com/events/app_mention).

In a channel (or in a thread that is no imagine session) it starts a session like
`/imagine`, whose thread hangs under the person's own message: that message is the root,
so the engine posts no root message of its own. Inside a session's thread it is a reply
like any other (a refinement). Slack also delivers the same message as a `message` event;
`bot.listeners.events.on_message` leaves messages that mention the bot to this listener,
so each is handled once.
"""

from __future__ import annotations

import re
from typing import Any

from bot import cost, messages
from bot.listeners.commands import Taken, start_session
from bot.listeners.events import handle_reply
from bot.runtime import Runtime
from core import refinement
from core.flags import FlagError, check_supported, parse_command
from core.quotas import DuplicateRequest

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def mentions_bot(text: str, bot_user_id: str | None) -> bool:
    """True when `text` (Slack's message text) mentions the user `bot_user_id`."""
    return bool(bot_user_id) and any(m[1] == bot_user_id for m in _MENTION.finditer(text))


def strip_mentions(text: str, bot_user_id: str | None) -> str:
    """`text` without the mentions of `bot_user_id` (``<@U…>`` or ``<@U…|name>``)."""
    return " ".join(
        _MENTION.sub(lambda m: "" if m[1] == bot_user_id else m[0], text).split()
    ).strip()


async def on_mention(event: dict[str, Any], body: dict[str, Any], context: dict[str, Any]) -> None:
    """An `app_mention`: a refinement in a session's thread, else a new session.

    The session's workspace is Bolt's `team_id`, or for an org-wide Grid install (whose
    `authorizations[].team_id` is null) the envelope's `team_id`."""
    runtime: Runtime = context["runtime"]
    user_id, channel_id, ts = event.get("user"), event.get("channel"), event.get("ts")
    if event.get("bot_id") or not (user_id and channel_id and ts):
        return
    text = strip_mentions(event.get("text") or "", context.get("bot_user_id"))
    thread_ts = event.get("thread_ts")
    if thread_ts and thread_ts != ts:
        session = await refinement.find_session(runtime.sessionmaker, channel_id, thread_ts)
        if session is not None:
            await handle_reply(runtime, session, {**event, "text": text})
            return
    team_id = str(context.get("team_id") or body.get("team_id") or event.get("team") or "")
    await _start(runtime, event, (team_id, context.get("enterprise_id")), text, thread_ts or ts)


async def _start(
    runtime: Runtime,
    event: dict[str, Any],
    team: tuple[str, str | None],
    text: str,
    root: str,
) -> None:
    """Queue a new session of `team` (team id, Grid org id or None) whose thread is `root`
    (the mention, or the thread it is in); help and bad flags are answered privately, and
    nothing is queued."""
    user_id, channel_id = event["user"], event["channel"]
    in_thread = event.get("thread_ts")
    publisher = runtime.publisher
    if not text or text.lower() in messages.HELP_WORDS:
        await publisher.tell_user(channel_id, user_id, messages.USAGE, in_thread)
        return
    try:
        parsed = parse_command(text)
        check_supported(parsed.params, runtime.provider.allowed_n, runtime.provider.label)
    except FlagError as err:
        await publisher.tell_user(channel_id, user_id, messages.flag_error(err), in_thread)
        return
    taken = await start_session(
        runtime,
        team=(team[0], team[1] or None),
        channel_id=channel_id,
        user_id=user_id,
        parsed=parsed,
        response_url=None,
        thread_ts=root,
    )
    await tell_outcome(runtime, taken, channel_id, user_id, in_thread)


async def tell_outcome(
    runtime: Runtime,
    taken: Taken,
    channel_id: str,
    user_id: str,
    thread_ts: str | None,
) -> None:
    """A mention's new session once it is taken (`start_session`): a refusal or a
    duplicate told to the person privately (in `thread_ts`), else the engine woken."""
    try:
        outcome = await taken.outcome()
    except DuplicateRequest as dup:
        link = await cost.thread_link(runtime, dup.previous_id)
        outcome = messages.duplicate_text(dup.seconds_ago, link)
    if isinstance(outcome, str):
        await runtime.publisher.tell_user(channel_id, user_id, outcome, thread_ts)
        return
    runtime.jobs.wake()
