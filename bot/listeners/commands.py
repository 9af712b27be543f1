"""`/imagine`: parse, record the session and its first job in one transaction, ack.

No provider call and no Slack upload happens before the ack (Slack's budget is
3 seconds); the job engine opens the thread and does the rest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from bot import blocks
from core import refine, service
from core.flags import USAGE, FlagError, check_supported, parse_command

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

HELP_WORDS = {"", "help", "--help", "-h", "?"}


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the `/imagine` slash command."""

    @app.command("/imagine")
    async def imagine(ack: AsyncAck, command: dict[str, Any]) -> None:
        text = (command.get("text") or "").strip()
        if text.lower() in HELP_WORDS:
            await ack(text=USAGE, response_type="ephemeral")
            return
        if text.lower() == "history":
            await ack(text=await _recent_sessions(runtime, command), response_type="ephemeral")
            return
        try:
            parsed = parse_command(text)
            check_supported(parsed.params, runtime.provider.allowed_n, runtime.provider.label)
        except FlagError as err:
            await ack(
                text=f":warning: {err}\nNothing was queued. Type `/imagine help` for all flags.",
                response_type="ephemeral",
            )
            return
        await service.start_session(
            runtime.sessionmaker,
            team_id=command.get("team_id", ""),
            channel_id=command["channel_id"],
            user_id=command["user_id"],
            prompt=parsed.prompt,
            params=parsed.params,
            provider=runtime.settings.image_provider,
            model=runtime.settings.image_model,
            response_url=command.get("response_url"),
        )
        await ack()
        runtime.jobs.wake()


async def _recent_sessions(runtime: Runtime, command: dict[str, Any]) -> str:
    """The requester's recent sessions with links to their threads.

    Slack does not say which thread a slash command was typed in, so in a thread
    the *History* button on a result lists that thread's versions instead.
    """
    sessions = await refine.recent_sessions(
        runtime.sessionmaker, command.get("team_id", ""), command["user_id"]
    )
    if not sessions:
        return "You have no imagine sessions yet. Start one with `/imagine <prompt>`."
    lines = []
    for item in sessions:
        link = await runtime.publisher.permalink(item.channel_id, item.thread_ts)
        prompt = item.prompt if len(item.prompt) <= 60 else item.prompt[:57] + "…"
        title = f"<{link}|{prompt}>" if link else prompt
        versions = f"{item.versions} version{'s' if item.versions != 1 else ''}"
        lines.append(f"{title} in <#{item.channel_id}> · {versions}")
    footer = "\nIn a thread, click *History* on a result to list its versions."
    return blocks.history_text(lines, "Your recent imagine sessions") + footer
