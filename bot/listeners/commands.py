"""`/imagine`: parse, record the session and its first job in one transaction, ack.

No provider call and no Slack upload happens before the ack (Slack's budget is
3 seconds); the job engine opens the thread and does the rest.
"""

from __future__ import annotations

from collections.abc import Coroutine
from dataclasses import dataclass
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
from core.intake import StartedElsewhere
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
    taken = await start_session(
        runtime,
        team=(command.get("team_id", ""), command.get("enterprise_id") or None),
        channel_id=command["channel_id"],
        user_id=command["user_id"],
        parsed=parsed,
        response_url=command.get("response_url"),
    )
    await finish_start(runtime, taken, ack, respond)


StartRefused = (QuotaExceeded, StyleRefused, ModerationRefused)


@dataclass(frozen=True)
class Taken:
    """A new session's request once it is durable (`start_session`): its outcome `now`
    when it is known before the ack (recorded on PostgreSQL, refused before being stored,
    not stored), else the coroutine that starts it, to await `later`, after the ack."""

    now: int | str | DuplicateRequest = 0
    later: Coroutine[Any, Any, int] | None = None

    async def outcome(self) -> int | str:
        """The generation id (queued; 0 when the process stopped after storing it: it
        starts with the next one) or the private refusal (mrkdwn). Raises
        core.quotas.DuplicateRequest (nothing queued)."""
        if self.later is None:
            if isinstance(self.now, DuplicateRequest):
                raise self.now
            return self.now
        try:
            return await self.later
        except StartRefused as err:
            return refusal_text(err)
        except DuplicateRequest:
            raise  # the caller offers *Generate anyway*
        except (WriterClosed, StartedElsewhere):  # starts with the next process / elsewhere
            return 0
        except Exception:  # failed even alone (logged by the intake); nothing is queued
            return messages.START_FAILED


async def finish_start(
    runtime: Runtime, taken: Taken, ack: AsyncAck, respond: AsyncRespond
) -> None:
    """Ack a `/imagine` whose request `start_session` took, and tell its outcome: in the
    ack when it is known already, else (SQLite's intake: the request is stored, its
    session starts right after) in a private message through the command's
    `response_url`, the same text the ack would have carried. Queued: wakes the engine
    and sends the budget alerts."""
    acked = taken.later is not None
    if acked:  # stored: Slack hears now, the person hears the outcome in a moment
        await ack()
    try:
        outcome = await taken.outcome()
    except DuplicateRequest as dup:
        if not acked:
            await ack()
        return await cost_listeners.duplicate(runtime, dup, respond)
    if isinstance(outcome, str):  # refused
        if acked:
            await respond(text=outcome, response_type="ephemeral", replace_original=False)
        else:
            await ack(text=outcome, response_type="ephemeral")
        return
    if not acked:
        await ack()
    if outcome:  # 0: stored, and starts with the next process
        logs.bind(generation_id=outcome)  # issue 13: on every log line from here
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
) -> Taken:
    """Take a new session for `/imagine` or an `@imagine` mention of `team` (team id, Grid
    org id or None): its prompt moderated first, then recorded (PostgreSQL) or stored
    (SQLite: `runtime.intake`; the session starts once `Taken.outcome` is awaited).
    Returns once the request is durable, so the caller may acknowledge it. `thread_ts`
    names an existing message as the thread's root."""
    fields: dict[str, Any] = {
        "team_id": team[0],
        "enterprise_id": team[1],
        "channel_id": channel_id,
        "user_id": user_id,
        "prompt": parsed.prompt,
        "params": parsed.params,
        "provider": runtime.settings.image_provider,
        "model": runtime.settings.image_model,
        "response_url": response_url,
        "thread_ts": thread_ts,
        "resolve_style": True,
    }
    intake = runtime.intake
    try:
        if intake is None:
            return Taken(
                await sessions.start(
                    runtime.sessionmaker,
                    moderator=runtime.moderator,
                    cost=cost.policy(runtime.settings),
                    **fields,
                )
            )
        asked = sessions.new_request(**fields)
        await sessions.screen(runtime.moderator, runtime.sessionmaker, asked)
        return Taken(later=await intake.receive(asked))
    except WriterClosed:
        return Taken(messages.START_STOPPED)
    except DuplicateRequest as dup:
        return Taken(dup)
    except StartRefused as err:
        return Taken(refusal_text(err))


def refusal_text(err: QuotaExceeded | StyleRefused | ModerationRefused) -> str:
    """The private message (mrkdwn) telling the person why their request was refused."""
    if isinstance(err, QuotaExceeded):
        return messages.quota_refused(err)
    if isinstance(err, StyleRefused):
        return messages.style_refused(err.problem, err.name, err.known, request=True)
    return messages.moderation_refused(err.categories, err.terms, err.unavailable, err.retry_after)


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
