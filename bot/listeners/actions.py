"""Buttons on result messages: Approve and Regenerate.

Button values carry the generation id (and image index). Anyone in the channel
may click. A click on a version that no longer exists gets an ephemeral reply.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import blocks
from core import service
from core.service import GenerationGone

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

GONE = "This version is gone (its session was deleted). Start again with `/imagine`."


def _ids(value: str) -> tuple[int, int]:
    generation, _, index = value.partition(":")
    return int(generation), int(index or 0)


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the Approve and Regenerate button handlers."""

    @app.action(blocks.APPROVE)
    async def approve(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        user_id = body["user"]["id"]
        generation_id, index = _ids(action["value"])
        try:
            outcome = await service.approve(runtime.sessionmaker, generation_id, index, user_id)
        except GenerationGone:
            await respond(text=GONE, response_type="ephemeral", replace_original=False)
            return
        if not outcome.newly_approved:
            await respond(
                text=f"Image {index + 1} of v{outcome.view.version} was already approved "
                f"by <@{outcome.approved_by}>.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        await runtime.publisher.update_result(outcome.view)

    @app.action(blocks.REGENERATE)
    async def regenerate(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        generation_id, _ = _ids(action["value"])
        try:
            await service.regenerate(runtime.sessionmaker, generation_id, body["user"]["id"])
        except GenerationGone:
            await respond(text=GONE, response_type="ephemeral", replace_original=False)
            return
        runtime.jobs.wake()
