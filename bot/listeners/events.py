"""Message events: replies in an imagine thread refine; images posted there become
references (or the mask).

Bolt already drops the bot's own messages (ignoring_self_events). Edits,
deletions and other bots' posts are ignored, and so is any thread that is not an
imagine session. Bolt acknowledges events before this runs, so downloads happen
after Slack has its 200.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp

from bot import messages
from bot.files import fetch_slack_file, file_is_too_large
from core import refine
from core.flags import FlagError, check_supported, parse_command
from core.images import (
    ImageRejected,
    Rejection,
    check_reference,
    is_mask_request,
    limits_for,
    prepare_mask,
)
from core.refine import MAX_INPUTS, SessionRef
from core.store import NotAnImage

if TYPE_CHECKING:
    from bot.app import Runtime

log = logging.getLogger(__name__)

HANDLED_SUBTYPES = {None, "file_share", "thread_broadcast"}
MASK_ONLY = re.compile(r"^\W*mask\W*$", re.IGNORECASE)
EMPTY_REPLY = (
    "Tell me what to change, e.g. _make the sky stormier_, or post an image to use as a "
    "reference. Flags work here too: `--ar 3:2`, `--n 2`, `--no people`."
)


def register(app: AsyncApp, runtime: Runtime) -> None:
    """Register the message event handler."""

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        if event.get("subtype") not in HANDLED_SUBTYPES or event.get("bot_id"):
            return
        thread_ts = event.get("thread_ts")
        if not thread_ts or thread_ts == event.get("ts") or not event.get("user"):
            return
        session = await refine.find_session(runtime.sessionmaker, event["channel"], thread_ts)
        if session is None:
            return  # not an imagine thread: not ours to answer
        await handle_reply(runtime, session, event)


async def handle_reply(runtime: Runtime, session: SessionRef, event: dict[str, Any]) -> None:
    """Take a reply in a session's thread: store its images, then refine with its text."""
    user_id = event["user"]
    text = (event.get("text") or "").strip()
    publisher = runtime.publisher

    async def private(message: str) -> None:
        await publisher.tell_user(session.channel_id, user_id, message, session.thread_ts)

    base = await refine.session_params(runtime.sessionmaker, session.session_id)
    try:
        parsed = parse_command(text, base=base, require_prompt=False)
        check_supported(parsed.params, runtime.provider.allowed_n, runtime.provider.label)
    except FlagError as err:
        await private(f":warning: {err}\nNothing was queued.")
        return
    instruction = "" if MASK_ONLY.match(parsed.prompt) else parsed.prompt
    files = [f for f in event.get("files") or [] if isinstance(f, dict)]
    if not instruction and not files:
        await private(EMPTY_REPLY)
        return

    accepted, problems = await _take_images(runtime, session, user_id, text, files)
    if problems:
        await publisher.say_in_thread(
            session.channel_id, session.thread_ts, "\n".join(f":warning: {p}" for p in problems)
        )
    if not instruction:
        if accepted:
            waiting = await refine.pending_attachments(runtime.sessionmaker, session.session_id)
            await publisher.say_in_thread(
                session.channel_id,
                session.thread_ts,
                f":frame_with_picture: Got {', '.join(accepted)}. "
                f"{waiting} image{'s' if waiting != 1 else ''} will go with the next "
                "refinement: reply with what to change.",
            )
        return
    outcome = await refine.refine(
        runtime.sessionmaker,
        session.session_id,
        user_id=user_id,
        instruction=instruction,
        params=parsed.params,
        provider=runtime.settings.image_provider,
        model=runtime.settings.image_model,
    )
    if outcome.dropped:
        await publisher.say_in_thread(
            session.channel_id,
            session.thread_ts,
            f":information_source: v{outcome.version} takes {MAX_INPUTS} images at most"
            f"{' (the base image counts as one)' if outcome.base_label else ''}; "
            f"the newest are used, not {', '.join(outcome.dropped)}.",
        )
    runtime.jobs.wake()


async def _take_images(
    runtime: Runtime,
    session: SessionRef,
    user_id: str,
    text: str,
    files: list[dict[str, Any]],
) -> tuple[list[str], list[str]]:
    """Download, check and keep each posted file; returns (accepted labels, problems)."""
    limits = limits_for(
        runtime.settings.image_provider, max_pixels=runtime.settings.max_image_pixels
    )
    origins = runtime.settings.file_origins()
    token = runtime.settings.slack_bot_token
    assert token is not None
    accepted: list[str] = []
    problems: list[str] = []
    for file in files:
        name = str(file.get("name") or file.get("title") or "the file")
        mask = is_mask_request(text, name)
        limit = limits.mask_max_bytes if mask else limits.max_bytes
        try:
            if file_is_too_large(file, limit):
                size = file.get("size")
                raise ImageRejected(Rejection.TOO_LARGE, name, size=size, limit=limit, mask=mask)
            data = await fetch_slack_file(
                file, token.get_secret_value(), origins=origins, max_bytes=limit, name=name
            )
            if mask:
                data, label = await _prepare_mask(runtime, session, name, data)
            else:
                await asyncio.to_thread(check_reference, data, name, limits)
                label = f"`{name}` as a reference"
            await refine.add_attachment(
                runtime.sessionmaker,
                session.session_id,
                role="mask" if mask else "reference",
                name=name,
                blob=await runtime.store.put(data),
                posted_by=user_id,
                slack_file_id=file.get("id"),
            )
            accepted.append(label)
        except ImageRejected as err:
            problems.append(messages.image_rejected(err))
        except NotAnImage as err:
            problems.append(str(err))
    return accepted, problems


async def _prepare_mask(
    runtime: Runtime, session: SessionRef, name: str, data: bytes
) -> tuple[bytes, str]:
    """Check a mask and size it to the current base (or the session's size before any
    image exists); returns the PNG to keep and how to describe it."""
    base = await refine.current_base(runtime.sessionmaker, session.session_id)
    if base is not None:
        size = (base.width, base.height)
    else:
        size = (await refine.session_params(runtime.sessionmaker, session.session_id)).size()
    prepared = await asyncio.to_thread(
        prepare_mask, data, name, size, max_pixels=runtime.settings.max_image_pixels
    )
    label = f"`{name}` as the mask (transparent area = repaint)"
    if prepared.scaled_from:
        w, h = prepared.scaled_from
        target = base.label if base else "the image"
        label += f"; it was {w}×{h}, so I scaled it to {size[0]}×{size[1]} to fit {target}"
    return prepared.data, label
