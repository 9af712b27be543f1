"""Cost control listeners (issue 11): `/imagine usage`, `/imagine quota …`, the answer to a
refused or duplicate `/imagine`, and the *Generate anyway* button.

Quota overrides are per channel and admin-only (`bot.admins.is_admin`):
`/imagine quota set --user-daily N --team-monthly-usd X` (either or both; `none` clears
one), `/imagine quota off`, and `/imagine quota` to show what is in force.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import blocks, cost, messages
from bot.admins import is_admin
from bot.listeners.actions import Click, button, private
from bot.runtime import Runtime
from core import duplicates, usage
from core.db import usage as usage_db
from core.quotas import DuplicateRequest, QuotaExceeded

QUOTA_FLAG = re.compile(r"--(user-daily|team-monthly-usd)\s+(\S+)")


QUOTA_COMMAND = re.compile(r"quota(\s+(set|off)\b.*)?", re.IGNORECASE | re.DOTALL)


def subcommand(text: str) -> str | None:
    """`usage` for `/imagine usage`, `quota` for `/imagine quota [set …|off]`, else None
    (a prompt such as "usage of colour" stays a prompt)."""
    if text.strip().lower() == "usage":
        return "usage"
    return "quota" if QUOTA_COMMAND.fullmatch(text.strip()) else None


async def command(ack: AsyncAck, runtime: Runtime, cmd: dict[str, Any], word: str) -> None:
    """`/imagine usage` or `/imagine quota …`, answered privately."""
    if word == "usage":
        text = await _usage(runtime, cmd)
    else:
        text = await _quota(runtime, cmd, (cmd.get("text") or "").strip()[len("quota") :].strip())
    await ack(text=text, response_type="ephemeral")


async def _usage(runtime: Runtime, cmd: dict[str, Any]) -> str:
    policy = cost.policy(runtime.settings)
    team_id, user_id = cmd.get("team_id", ""), cmd["user_id"]
    mine = await usage.personal(runtime.sessionmaker, policy, team_id, cmd["channel_id"], user_id)
    text = messages.usage_personal(mine)
    if await is_admin(runtime.publisher, runtime.settings, user_id):
        team = await usage.team(runtime.sessionmaker, policy, team_id)
        text += "\n\n" + messages.usage_team(team)
    return text


def _parse_set(args: str) -> dict[str, float | None] | str:
    """The values of `set --user-daily N --team-monthly-usd X`, or what is wrong."""
    found = dict(QUOTA_FLAG.findall(args))
    rest = QUOTA_FLAG.sub("", args).strip()
    if not found or rest:
        return messages.QUOTA_USAGE
    values: dict[str, float | None] = {}
    for flag, raw in found.items():
        if raw.lower() == "none":
            values[flag] = None
            continue
        try:
            value = int(raw) if flag == "user-daily" else float(raw)
        except ValueError:
            value = -1
        if value < 0 or value != value or value == float("inf"):
            kind = "a whole number" if flag == "user-daily" else "an amount in USD"
            return f"`--{flag}` needs {kind} (0 or more) or `none`. " + messages.QUOTA_USAGE
        values[flag] = value
    return values


async def _quota(runtime: Runtime, cmd: dict[str, Any], args: str) -> str:
    team_id, channel_id, user_id = cmd.get("team_id", ""), cmd["channel_id"], cmd["user_id"]
    settings = runtime.settings
    if args:
        if not await is_admin(runtime.publisher, settings, user_id):
            return messages.QUOTA_ADMINS_ONLY
        async with runtime.sessionmaker.begin() as db:
            if args.lower() == "off":
                await usage_db.clear_channel_quota(db, team_id, channel_id)
            elif args.lower().startswith("set"):
                parsed = _parse_set(args[3:].strip())
                if isinstance(parsed, str):
                    return parsed
                old = await usage_db.channel_quota(db, team_id, channel_id) or (None, None)
                daily = parsed.get("user-daily", old[0])
                monthly = parsed.get("team-monthly-usd", old[1])
                await usage_db.set_channel_quota(
                    db, team_id, channel_id, None if daily is None else int(daily), monthly, user_id
                )
            else:
                return messages.QUOTA_USAGE
    async with runtime.sessionmaker() as db:
        override = await usage_db.channel_quota(db, team_id, channel_id)
    return messages.quota_status(
        settings.quota_user_daily_images, settings.quota_team_monthly_usd, override
    )


async def duplicate(runtime: Runtime, dup: DuplicateRequest, respond: AsyncRespond) -> None:
    """Answer a duplicate `/imagine` privately (after the ack): when it was asked, a link
    to that thread, and *Generate anyway*."""
    link = await cost.thread_link(runtime, dup.previous_id)
    text, body = blocks.duplicate_message(
        messages.duplicate_text(dup.seconds_ago, link), dup.previous_id
    )
    await respond(text=text, blocks=body, response_type="ephemeral")


@button(with_index=False)
async def generate_anyway(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
    """Generate anyway: queue the earlier request again (quotas still apply)."""
    try:
        await duplicates.generate_anyway(
            runtime.sessionmaker,
            click.generation_id,
            click.user_id,
            click.where,
            cost=cost.policy(runtime.settings),
        )
    except QuotaExceeded as err:
        await private(respond, messages.quota_refused(err))
        return
    runtime.jobs.wake()
    await cost.send_budget_alerts(runtime)
