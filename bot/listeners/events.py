"""Message events: replies in an imagine thread refine; images posted there become
references (or the mask). A message that mentions the bot is left to the `app_mention`
listener (`bot.listeners.mentions`): Slack sends both events for it.

Bolt already drops the bot's own messages (ignoring_self_events). Edits,
deletions and other bots' posts are ignored, and so is any thread that is not an
imagine session. Bolt acknowledges events before this runs, so downloads happen
after Slack has its 200. The listener only parses and downloads bytes; checking,
storing and recording them is `core.refinement.take_reply`.
"""

from __future__ import annotations

import re
from typing import Any

from bot import cost, messages
from bot.files import fetch_slack_file, file_is_too_large, is_tombstone, needs_file_info
from bot.runtime import Runtime
from core import refinement, styles
from core.flags import FlagError, check_supported, parse_command
from core.images import ImageLimits, ImageRejected, Rejection, is_mask_request, limits_for
from core.moderation import ModerationRefused
from core.quotas import QuotaExceeded
from core.refinement import PostedImage, SessionRef
from core.store import NotAnImage
from core.styles import StyleRefused

HANDLED_SUBTYPES = {None, "file_share", "thread_broadcast"}
MASK_ONLY = re.compile(r"^\W*mask\W*$", re.IGNORECASE)


async def on_message(event: dict[str, Any], context: dict[str, Any]) -> None:
    """A message in a channel: handled only as a person's reply in an imagine thread."""
    runtime: Runtime = context["runtime"]
    if event.get("subtype") not in HANDLED_SUBTYPES or event.get("bot_id"):
        return
    thread_ts = event.get("thread_ts")
    if not thread_ts or thread_ts == event.get("ts") or not event.get("user"):
        return
    if f"<@{context.get('bot_user_id')}" in (event.get("text") or ""):
        return  # Slack delivers it as app_mention too: bot.listeners.mentions handles it
    session = await refinement.find_session(runtime.sessionmaker, event["channel"], thread_ts)
    if session is None:
        return  # not an imagine thread: not ours to answer
    await handle_reply(runtime, session, event)


async def handle_reply(runtime: Runtime, session: SessionRef, event: dict[str, Any]) -> None:
    """Take a reply in a session's thread: its images, then a refinement with its text."""
    user_id = event["user"]
    text = (event.get("text") or "").strip()
    publisher = runtime.publisher
    base = await refinement.reply_defaults(runtime.sessionmaker, session.session_id)
    try:
        parsed = parse_command(text, base=base, require_prompt=False)
        check_supported(parsed.params, runtime.provider.allowed_n, runtime.provider.label)
    except FlagError as err:
        message = messages.flag_error(err, in_thread=True)
        await publisher.tell_user(session.channel_id, user_id, message, session.thread_ts)
        return
    instruction = "" if MASK_ONLY.match(parsed.prompt) else parsed.prompt
    files = [f for f in event.get("files") or [] if isinstance(f, dict)]
    if not instruction and not files:
        await publisher.tell_user(
            session.channel_id, user_id, messages.EMPTY_REPLY, session.thread_ts
        )
        return
    limits = limits_for(
        runtime.settings.image_provider, max_pixels=runtime.settings.max_image_pixels
    )
    posted, problems = await _download(runtime, limits, text, files)
    try:
        style = await styles.resolve(
            runtime.sessionmaker, session.team_id, session.channel_id, parsed.params.style
        )
        outcome = await refinement.take_reply(
            runtime.sessionmaker,
            runtime.store,
            session,
            user_id=user_id,
            instruction=instruction,
            params=parsed.params,
            images=posted,
            limits=limits,
            provider=runtime.settings.image_provider,
            model=runtime.settings.image_model,
            moderator=runtime.moderator,
            style=style,
            cost=cost.policy(runtime.settings),
        )
    except QuotaExceeded as err:
        message = messages.quota_refused(err)
        return await publisher.tell_user(session.channel_id, user_id, message, session.thread_ts)
    except StyleRefused as err:
        text = messages.style_refused(err.problem, err.name, err.known, request=True)
        await publisher.tell_user(session.channel_id, user_id, text, session.thread_ts)
        return
    except ModerationRefused as no:
        text = messages.moderation_refused(no.categories, no.terms, no.unavailable, no.retry_after)
        await publisher.tell_user(session.channel_id, user_id, text, session.thread_ts)
        return
    await _report(runtime, session, [*problems, *outcome.problems], outcome)


async def _report(
    runtime: Runtime,
    session: SessionRef,
    problems: list[ImageRejected | NotAnImage],
    outcome: refinement.ReplyOutcome,
) -> None:
    """Tell the thread what a reply did: refused files, images kept for later, references
    left out; wake the engine when a refinement was queued."""

    async def say(message: str) -> None:
        await runtime.publisher.say_in_thread(session.channel_id, session.thread_ts, message)

    if problems:
        await say(messages.image_problems(problems))
    if outcome.refined is None:
        if outcome.accepted:
            accepted = [messages.accepted_image(item) for item in outcome.accepted]
            await say(messages.images_waiting(accepted, outcome.waiting))
        return
    if outcome.refined.dropped:
        await say(messages.inputs_dropped(outcome.refined))
    runtime.jobs.wake()
    await cost.send_budget_alerts(runtime)


async def _download(
    runtime: Runtime, limits: ImageLimits, text: str, files: list[dict[str, Any]]
) -> tuple[list[PostedImage], list[ImageRejected | NotAnImage]]:
    """Download each posted file from Slack's file origins (within its size limit) with the
    token of the request's workspace; returns the images and the refusal of each file that
    could not be fetched."""
    token = await runtime.publisher.bot_token()
    posted: list[PostedImage] = []
    problems: list[ImageRejected | NotAnImage] = []
    for file in files:
        try:
            posted.append(await _fetch_one(runtime, limits, text, file, token))
        except ImageRejected as err:
            problems.append(err)
    return posted, problems


async def _fetch_one(
    runtime: Runtime, limits: ImageLimits, text: str, file: dict[str, Any], token: str
) -> PostedImage:
    """One posted file's bytes. A deleted file (tombstone) and one that files.info will
    not show are refused; a Slack Connect reference (check_file_info) is looked up with
    files.info first. Raises ImageRejected."""
    name = str(file.get("name") or file.get("title") or "the file")
    if is_tombstone(file):
        raise ImageRejected(Rejection.DELETED, name)
    if needs_file_info(file):
        found = await runtime.publisher.file_info(str(file.get("id") or ""))
        if found is None or needs_file_info(found) or is_tombstone(found):
            raise ImageRejected(Rejection.NOT_VISIBLE, name)
        file = found
        name = str(file.get("name") or file.get("title") or "the file")
    mask = is_mask_request(text, name)
    limit = limits.mask_max_bytes if mask else limits.max_bytes
    if file_is_too_large(file, limit):
        size = file.get("size")
        raise ImageRejected(Rejection.TOO_LARGE, name, size=size, limit=limit, mask=mask)
    data = await fetch_slack_file(
        file, token, origins=runtime.settings.file_origins(), max_bytes=limit, name=name
    )
    return PostedImage(name, data, mask, file.get("id"))
