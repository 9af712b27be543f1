"""Clicks that open a modal (*Request changes*, *Save style…*): `button` from
`bot.listeners.actions` plus the payload's `trigger_id`, which `views.open` needs
(https://docs.slack.dev/reference/methods/views.open: a trigger expires 3 seconds after the
click).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncRespond

from bot import messages
from bot.listeners.actions import Click, Listener, button, private
from bot.runtime import Runtime

Opener = Callable[[Runtime, Click, str, AsyncRespond], Awaitable[None]]


def opens_modal(*, menu: bool = False) -> Callable[[Opener], Listener]:
    """Make a Bolt listener of `opener(runtime, click, trigger_id, respond)`, validated and
    answered like `button(with_index=True)`; a payload without a trigger_id gets the private
    "out of date" answer. `menu`: the value is the chosen option's (an overflow menu's
    `selected_option.value`), not the button's."""

    def wrap(opener: Opener) -> Listener:
        async def listener(
            ack: AsyncAck,
            body: dict[str, Any],
            action: dict[str, Any],
            respond: AsyncRespond,
            context: dict[str, Any],
        ) -> None:
            trigger = body.get("trigger_id")
            if menu:
                action = {**action, "value": (action.get("selected_option") or {}).get("value")}

            async def handler(runtime: Runtime, click: Click, respond: AsyncRespond) -> None:
                if not isinstance(trigger, str):
                    return await private(respond, messages.STALE_BUTTON)
                await opener(runtime, click, trigger, respond)

            handler.__name__ = handler.__qualname__ = opener.__name__
            await button(with_index=True)(handler)(ack, body, action, respond, context)

        listener.__name__ = opener.__name__
        listener.__qualname__ = opener.__qualname__
        listener.__doc__ = opener.__doc__
        return listener

    return wrap
