"""`/imagine`: parse, record the session and its first job in one transaction, ack.

No provider call and no Slack upload happens before the ack (Slack's budget is
3 seconds); the job engine opens the thread and does the rest.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp

from core import service
from core.flags import USAGE, FlagError, parse_command

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
        try:
            parsed = parse_command(text)
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
