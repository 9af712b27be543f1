"""`/imagine`: parse, record the session and its first job in one transaction, ack.

No provider call and no Slack upload happens before the ack (Slack's budget is
3 seconds); the job engine opens the thread and does the rest.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import blocks, cost, messages
from bot.listeners import cost as cost_listeners
from bot.listeners import privacy, review
from bot.listeners.styles import is_style_command, style_command
from bot.review_text import is_review
from bot.runtime import Runtime
from core import history, logs, sessions
from core.db.writer import WriterClosed
from core.flags import FlagError, ParsedCommand, check_supported, parse_command
from core.moderation import ModerationRefused
from core.quotas import DuplicateRequest, QuotaExceeded
from core.styles import StyleRefused


async def imagine(
    ack: AsyncAck, command: dict[str, Any], context: dict[str, Any], respond: AsyncRespond
) -> None:
    """`/imagine <prompt> [flags]`, `/imagine help`, `/imagine history`, `/imagine usage`,
    `/imagine quota …`."""
    runtime: Runtime = context["runtime"]
    text = (command.get("text") or "").strip()
    if text.lower() in messages.HELP_WORDS:
        await ack(text=messages.USAGE, response_type="ephemeral")
        return
    if is_style_command(text):
        return await style_command(ack, command, runtime)
    if privacy.is_forget_command(text):
        return await privacy.forget_command(ack, command, runtime, respond)
    if is_review(text):
        return await review.review_command(ack, command, runtime)
    if text.lower() == "settings":
        return await review.settings_command(ack, command, runtime)
    if text.lower() == "history":
        await ack(text=await _recent_sessions(runtime, command), response_type="ephemeral")
        return
    if word := cost_listeners.subcommand(text):
        return await cost_listeners.command(ack, runtime, command, word)
    try:
        parsed = parse_command(text)
        check_supported(parsed.params, runtime.provider.allowed_n, runtime.provider.label)
    except FlagError as err:
        await ack(text=messages.flag_error(err), response_type="ephemeral")
        return
    try:
        refused = await start_session(
            runtime,
            team=(command.get("team_id", ""), command.get("enterprise_id") or None),
            channel_id=command["channel_id"],
            user_id=command["user_id"],
            parsed=parsed,
            response_url=command.get("response_url"),
        )
    except DuplicateRequest as dup:
        await ack()
        return await cost_listeners.duplicate(runtime, dup, respond)
    if refused is not None:
        await ack(text=refused, response_type="ephemeral")
        return
    await ack()
    runtime.jobs.wake()
    if runtime.settings.quota_team_monthly_usd is not None:  # only that budget alerts
        await cost.send_budget_alerts(runtime)


async def start_session(
    runtime: Runtime,
    *,
    team: tuple[str, str | None],
    channel_id: str,
    user_id: str,
    parsed: ParsedCommand,
    response_url: str | None,
    thread_ts: str | None = None,
) -> str | None:
    """Queue a new session for `/imagine` or an `@imagine` mention of `team` (team id, Grid
    org id or None): its prompt moderated first, its style resolved where it is recorded.
    Returns the private refusal (mrkdwn) when the style, the content policy or a quota
    refuses it, else None (queued; the caller wakes the engine and sends budget alerts).
    `thread_ts` names an existing message as the thread's root. Raises
    core.quotas.DuplicateRequest (nothing queued) for the same request within
    DUPLICATE_WINDOW_SECONDS. Returns only once the request is committed (on SQLite in a
    group with concurrent ones, `runtime.writer`), so the caller's ack follows a durable
    write."""
    try:
        generation_id = await sessions.start(
            runtime.sessionmaker,
            team_id=team[0],
            enterprise_id=team[1],
            channel_id=channel_id,
            user_id=user_id,
            prompt=parsed.prompt,
            params=parsed.params,
            provider=runtime.settings.image_provider,
            model=runtime.settings.image_model,
            response_url=response_url,
            thread_ts=thread_ts,
            moderator=runtime.moderator,
            resolve_style=True,
            cost=cost.policy(runtime.settings),
            writer=runtime.writer,
        )
    except WriterClosed:
        return messages.START_STOPPED
    except QuotaExceeded as err:
        return messages.quota_refused(err)
    except StyleRefused as err:
        return messages.style_refused(err.problem, err.name, err.known, request=True)
    except ModerationRefused as no:
        return messages.moderation_refused(no.categories, no.terms, no.unavailable, no.retry_after)
    logs.bind(generation_id=generation_id)  # issue 13: on every log line from here
    return None


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
