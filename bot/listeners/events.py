"""Events API deliveries: message events in channels.

Bolt already drops the bot's own messages (ignoring_self_events). Edits and
deletions (`message_changed`, `message_deleted`) and other bots' posts are
acknowledged and ignored. Thread replies do nothing yet: refinement by reply
is a later issue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

if TYPE_CHECKING:
    from bot.app import Runtime

IGNORED_SUBTYPES = {"message_changed", "message_deleted", "bot_message", "channel_join"}


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the message event handler (acknowledge; ignore echoes and bots)."""

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        if event.get("subtype") in IGNORED_SUBTYPES or event.get("bot_id"):
            return
        # Human messages: refinement in threads arrives with issue 4.
        return
