"""`/imagine`: parse, record the session and its first job in one transaction, ack.

No provider call and no Slack upload happens before the ack (Slack's budget is
3 seconds); the job engine opens the thread and does the rest.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import blocks, cost, messages
from bot.listeners import cost as cost_listeners
from bot.runtime import Runtime
from core import history, sessions
from core.flags import USAGE, FlagError, check_supported, parse_command
from core.quotas import DuplicateRequest, QuotaExceeded


async def imagine(
    ack: AsyncAck, command: dict[str, Any], context: dict[str, Any], respond: AsyncRespond
) -> None:
    """`/imagine <prompt> [flags]`, `/imagine help`, `/imagine history`, `/imagine usage`,
    `/imagine quota …`."""
    runtime: Runtime = context["runtime"]
    text = (command.get("text") or "").strip()
    if text.lower() in messages.HELP_WORDS:
        await ack(text=USAGE, response_type="ephemeral")
        return
    if text.lower() == "history":
        await ack(text=await _recent_sessions(runtime, command), response_type="ephemeral")
        return
    if word := cost_listeners.subcommand(text):
        return await cost_listeners.command(ack, runtime, command, word)
    try:
        parsed = parse_command(text)
        check_supported(parsed.params, runtime.provider.allowed_n, runtime.provider.label)
    except FlagError as err:
        await ack(text=messages.flag_error(str(err)), response_type="ephemeral")
        return
    try:
        await sessions.start(
            runtime.sessionmaker,
            team_id=command.get("team_id", ""),
            channel_id=command["channel_id"],
            user_id=command["user_id"],
            prompt=parsed.prompt,
            params=parsed.params,
            provider=runtime.settings.image_provider,
            model=runtime.settings.image_model,
            response_url=command.get("response_url"),
            cost=cost.policy(runtime.settings),
        )
    except QuotaExceeded as err:
        return await ack(text=messages.quota_refused(err), response_type="ephemeral")
    except DuplicateRequest as dup:
        await ack()
        return await cost_listeners.duplicate(runtime, dup, respond)
    await ack()
    runtime.jobs.wake()
    await cost.send_budget_alerts(runtime)


async def _recent_sessions(runtime: Runtime, command: dict[str, Any]) -> str:
    """The requester's recent sessions with links to their threads.

    Slack does not say which thread a slash command was typed in, so in a thread
    the *History* button on a result lists that thread's versions instead.
    """
    found = await history.recent_sessions(
        runtime.sessionmaker, command.get("team_id", ""), command["user_id"]
    )
    if not found:
        return messages.NO_SESSIONS
    lines = []
    for item in found:
        link = await runtime.publisher.permalink(item.channel_id, item.thread_ts)
        lines.append(messages.session_line(item, link))
    title = "Your recent imagine sessions"
    return blocks.history_text(lines, title) + messages.HISTORY_FOOTER
