"""Buttons: Approve, Regenerate, Refine this and History on results; Cancel on status.

Button values carry the generation id (and image index). Anyone in the channel
may click, except Cancel (the requester or the session's owner). A click on a
version that no longer exists gets an ephemeral "this version is gone".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from bot import blocks
from core import refine, service
from core.service import GenerationGone

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

GONE = "This version is gone (its session was deleted). Start again with `/imagine`."


def _ids(value: str) -> tuple[int, int]:
    generation, _, index = value.partition(":")
    return int(generation), int(index or 0)


async def _private(respond: AsyncRespond, text: str) -> None:
    await respond(text=text, response_type="ephemeral", replace_original=False)


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the button handlers."""

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
            await _private(respond, GONE)
            return
        if not outcome.newly_approved:
            await _private(
                respond,
                f"Image {index + 1} of v{outcome.view.version} was already approved "
                f"by <@{outcome.approved_by}>.",
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
            await _private(respond, GONE)
            return
        runtime.jobs.wake()

    @app.action(blocks.REFINE_THIS)
    async def refine_this(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        generation_id, index = _ids(action["value"])
        try:
            session, label = await refine.pick_base(runtime.sessionmaker, generation_id, index)
        except GenerationGone:
            await _private(respond, GONE)
            return
        await runtime.publisher.say_in_thread(
            session.channel_id,
            session.thread_ts,
            f":dart: <@{body['user']['id']}> picked *{label}*: "
            "replies in this thread now refine that image.",
        )

    @app.action(blocks.CANCEL)
    async def cancel(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        generation_id, _ = _ids(action["value"])
        user_id = body["user"]["id"]
        try:
            outcome = await refine.request_cancel(runtime.sessionmaker, generation_id, user_id)
        except GenerationGone:
            await _private(respond, GONE)
            return
        view = outcome.view
        if not outcome.allowed:
            await _private(
                respond,
                f"Only <@{view.requested_by}> (who asked for v{view.version}) or "
                f"<@{view.owner_user_id}> (who started this thread) can cancel it.",
            )
            return
        if not outcome.running:
            await _private(respond, f"v{view.version} has already finished ({view.state}).")
            return
        runtime.jobs.wake()

    @app.action(blocks.HISTORY)
    async def history(ack: AsyncAck, action: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        generation_id, _ = _ids(action["value"])
        try:
            view = await service.get_view(runtime.sessionmaker, generation_id)
        except GenerationGone:
            await _private(respond, GONE)
            return
        versions = await refine.history(runtime.sessionmaker, view.session_id)
        lines = []
        for item in versions:
            link = None
            if item.result_ts:
                link = await runtime.publisher.permalink(view.channel_id, item.result_ts)
            title = f"<{link}|v{item.version}>" if link else f"v{item.version}"
            what = (
                f"from {item.parent_label}: {item.instruction}"
                if item.kind == "refine" and item.instruction
                else ("new seed" if item.kind == "regenerate" else item.prompt)
            )
            extra = f" · approved {', '.join(item.approved)}" if item.approved else ""
            state = "" if item.state == "posted" else f" · {item.state}"
            lines.append(f"{title} {what}{state}{extra}")
        await _private(respond, blocks.history_text(lines, "Versions in this thread"))
