"""Uploads in steps, so each step can be recorded and resumed (exactly once).

Slack's external upload flow (https://docs.slack.dev/messaging/working-with-files,
"Uploading files"): `files.getUploadURLExternal` reserves a file id and an upload URL,
the bytes are POSTed to that URL, and `files.completeUploadExternal` (`channel_id`,
`thread_ts`, `initial_comment`) shares the files as one message. Slack shares the files
asynchronously after `files.completeUploadExternal` answers, so `wait_visible` checks
`files.info` `shares` until the thread shows them (bounded, with backoff).

The bot token is never sent to the upload URL: the URL itself authorises the upload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from core.ports import GenerationView, PublishError, UploadState

log = logging.getLogger(__name__)

# Seconds to wait before each files.info check of a fresh share (total about 6 s); Slack
# usually shares within a second, so the first check normally finds the files.
SHARE_CHECKS: tuple[float, ...] = (0.4, 0.6, 1.0, 1.5, 2.5)
ALT_TEXT_MAX = 1000  # files.getUploadURLExternal `alt_txt`: "up to 1000 characters"
GONE = {"file_not_found", "file_deleted"}


def file_name(view: GenerationView, index: int, suffix: str) -> str:
    """ "v2-1.png": the uploaded name of image `index` (0-based) of a version."""
    return f"v{view.version}-{index + 1}.{suffix.lstrip('.')}"


async def reserve(client: AsyncWebClient, view: GenerationView, seconds: float) -> dict[int, str]:
    """files.getUploadURLExternal (with `alt_txt`, the key Slack reads for alt text) and
    the byte upload of each image without a file id; {index: file_id}, nothing shared yet.
    Each byte upload may take `seconds`. Raises SlackApiError, aiohttp.ClientError,
    PublishError (the upload URL refused)."""
    file_ids: dict[int, str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds)) as http:
        for image in view.images:
            if image.file_id is not None:
                continue
            data = await asyncio.to_thread(image.path.read_bytes)
            reserved = await client.files_getUploadURLExternal(
                filename=file_name(view, image.index, image.path.suffix),
                length=len(data),
                alt_txt=view.ask.prompt[:ALT_TEXT_MAX],
            )
            async with http.post(str(reserved["upload_url"]), data=data) as response:
                if response.status != 200:
                    raise PublishError(f"Slack's upload URL answered {response.status}")
            file_ids[image.index] = str(reserved["file_id"])
    return file_ids


async def complete(client: AsyncWebClient, view: GenerationView, file_ids: dict[int, str]) -> None:
    """files.completeUploadExternal: share the reserved files into the thread, one message
    with the upload comment. Raises SlackApiError, aiohttp.ClientError."""
    files = [
        {"id": file_id, "title": f"v{view.version} image {index + 1}"}
        for index, file_id in sorted(file_ids.items())
    ]
    await client.files_completeUploadExternal(
        files=files,  # type: ignore[arg-type]
        channel_id=view.channel_id,
        thread_ts=view.thread_ts,
        initial_comment=blocks.upload_comment(view),
    )


def shared_in_thread(file: dict[str, Any], channel_id: str, thread_ts: str | None) -> bool:
    """Whether a files.info `file` object shows a share into the thread (Slack's `shares`:
    {"public"|"private": {channel: [{"ts", "thread_ts", …}]}})."""
    for kind in ("public", "private"):
        for share in (file.get("shares") or {}).get(kind, {}).get(channel_id, []):
            if thread_ts is None or thread_ts in (share.get("thread_ts"), share.get("ts")):
                return True
    return False


def share_messages(file: dict[str, Any]) -> list[tuple[str, str]]:
    """The messages ((channel id, ts)) that share a files.info `file` object, from its
    `shares` field (https://docs.slack.dev/reference/methods/files.info)."""
    return [
        (channel, str(share["ts"]))
        for kind in ("public", "private")
        for channel, entries in ((file.get("shares") or {}).get(kind) or {}).items()
        for share in entries
        if share.get("ts")
    ]


async def state(client: AsyncWebClient, view: GenerationView, file_id: str) -> UploadState:
    """Where a reserved file stands, from one files.info call. Raises SlackApiError (other
    than a missing file), aiohttp.ClientError."""
    try:
        response = await client.files_info(file=file_id)
    except SlackApiError as err:
        data = err.response.data
        if isinstance(data, dict) and data.get("error") in GONE:
            return UploadState.MISSING
        raise
    file = response.get("file") or {}
    if shared_in_thread(file, view.channel_id, view.thread_ts):
        return UploadState.SHARED
    return UploadState.UPLOADED


async def wait_visible(
    client: AsyncWebClient,
    view: GenerationView,
    file_ids: dict[int, str],
    checks: Sequence[float] = SHARE_CHECKS,
) -> UploadState:
    """Check the batch's last file with files.info after each delay of `checks` (seconds)
    until it is shared into the thread (one message shares the whole batch); the last state
    seen. Not visible after the last check: logged, and the caller goes on anyway."""
    last = file_ids[max(file_ids)]
    seen = UploadState.MISSING
    for delay in checks:
        await asyncio.sleep(delay)
        seen = await state(client, view, last)
        if seen is UploadState.SHARED:
            return seen
    log.warning(
        "generation %s: files %s not visible in the thread after %.1f s; going on",
        view.generation_id,
        sorted(file_ids.values()),
        sum(checks),
    )
    return seen
