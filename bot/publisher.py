"""The Slack side of the Publisher port: every Web API call the job engine makes.

Errors are translated for core: `not_in_channel`, `channel_not_found`,
`is_archived` → ChannelUnreachable (no retry helps); `ratelimited` (HTTP 429,
Retry-After) and other API or network failures → PublishError (retried by the
engine). Status updates are throttled per message so the bot stays well under
Slack's limits (chat.update is Tier 3, about 50 calls a minute, and a channel
takes about one message a second).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import blocks, messages, mrkdwn
from core.models import GenerationState
from core.ports import ChannelUnreachable, Failure, GenerationView, PublishError

log = logging.getLogger(__name__)

UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived", "missing_scope"}


def _translate(err: Exception) -> Exception:
    if isinstance(err, SlackApiError):
        code = str(err.response.get("error", ""))
        if code in UNREACHABLE:
            return ChannelUnreachable(code)
        retry_after = err.response.headers.get("Retry-After") if err.response.headers else None
        return PublishError(
            f"Slack answered {code or err.response.status_code}",
            float(retry_after) if retry_after else None,
        )
    return PublishError(f"Slack could not be reached: {type(err).__name__}")


class SlackPublisher:
    """Publisher backed by the Slack Web API (`client`), throttling status updates to one
    per `status_interval` seconds per generation (terminal states always go out)."""

    def __init__(self, client: AsyncWebClient, *, status_interval: float = 1.5) -> None:
        self.client = client
        self.status_interval = status_interval
        self._last_status: dict[int, float] = {}

    async def _call(self, method: str, **kwargs: object) -> dict:
        try:
            response = await self.client.api_call(method, json=kwargs)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as err:
            raise _translate(err) from err
        return dict(response.data)  # type: ignore[arg-type]

    async def open_thread(self, view: GenerationView) -> str:
        """chat.postMessage of the root message in the channel; its ts is the thread."""
        text, body = blocks.root_message(view)
        data = await self._call("chat.postMessage", channel=view.channel_id, text=text, blocks=body)
        return str(data["ts"])

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        """Post the status message in the thread, or chat.update it (throttled)."""
        now = time.monotonic()
        last = self._last_status.get(view.generation_id)
        if view.status_ts and not force and last is not None and now - last < self.status_interval:
            return None
        if view.state in GenerationState.TERMINAL:
            self._last_status.pop(view.generation_id, None)  # no more updates will follow
        else:
            self._last_status[view.generation_id] = now
        text, body = blocks.status_message(view)
        if view.status_ts is None:
            data = await self._call(
                "chat.postMessage",
                channel=view.channel_id,
                thread_ts=view.thread_ts,
                text=text,
                blocks=body,
            )
            return str(data["ts"])
        await self._call(
            "chat.update", channel=view.channel_id, ts=view.status_ts, text=text, blocks=body
        )
        return view.status_ts

    async def upload_images(self, view: GenerationView) -> dict[int, str]:
        """files_upload_v2 of the images without a file id into the thread; {index: file_id}."""
        pending = [image for image in view.images if image.file_id is None]
        if not pending:
            return {}
        uploads = [
            {
                "file": str(image.path),
                "filename": f"v{view.version}-{image.index + 1}.{image.path.suffix.lstrip('.')}",
                "title": f"v{view.version} image {image.index + 1}",
                "alt_txt": blocks.upload_alt_text(view),
            }
            for image in pending
        ]
        try:
            response = await self.client.files_upload_v2(
                file_uploads=uploads,
                channel=view.channel_id,
                thread_ts=view.thread_ts,
                initial_comment=blocks.upload_comment(view),
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as err:
            raise _translate(err) from err
        files = response.get("files") or []
        return {image.index: str(file["id"]) for image, file in zip(pending, files, strict=True)}

    async def post_result(self, view: GenerationView) -> str:
        """chat.postMessage of the result message (buttons) in the thread."""
        text, body = blocks.result_message(view)
        data = await self._call(
            "chat.postMessage",
            channel=view.channel_id,
            thread_ts=view.thread_ts,
            text=text,
            blocks=body,
        )
        return str(data["ts"])

    async def update_result(self, view: GenerationView) -> None:
        """chat.update of the result message after an approval."""
        if view.result_ts is None:
            return
        text, body = blocks.result_message(view)
        await self._call(
            "chat.update", channel=view.channel_id, ts=view.result_ts, text=text, blocks=body
        )

    async def report_failure(self, view: GenerationView, failure: Failure) -> None:
        """A thread reply that says what failed and what to do."""
        await self._call(
            "chat.postMessage",
            channel=view.channel_id,
            thread_ts=view.thread_ts,
            text=blocks.failure_message(view, failure),
        )

    async def tell_requester(self, view: GenerationView, failure: Failure) -> None:
        """An ephemeral message to the requester saying why the image could not start:
        through the command's response_url when there is one (it works even where the bot
        is not a member), else chat.postEphemeral."""
        message = mrkdwn.clip(messages.requester_notice(failure), mrkdwn.MESSAGE_TEXT)
        if view.response_url:
            webhook = AsyncWebhookClient(view.response_url)
            response = await webhook.send(text=message, response_type="ephemeral")
            if response.status_code >= 300:
                log.warning("response_url answered %s", response.status_code)
            return
        await self.tell_user(view.channel_id, view.requested_by, message, view.thread_ts)

    async def say_in_thread(self, channel_id: str, thread_ts: str, text: str) -> str:
        """chat.postMessage of a mrkdwn reply in a thread; returns its ts.

        `text` is mrkdwn the caller built (user text in it already escaped with
        `bot.mrkdwn.escape`); it is clipped to Slack's 40,000 characters.
        """
        text = mrkdwn.clip(text, mrkdwn.MESSAGE_TEXT)
        data = await self._call(
            "chat.postMessage", channel=channel_id, thread_ts=thread_ts, text=text
        )
        return str(data["ts"])

    async def permalink(self, channel_id: str, ts: str) -> str | None:
        """chat.getPermalink of a message, or None when Slack will not say."""
        try:
            data = await self._call("chat.getPermalink", channel=channel_id, message_ts=ts)
        except (PublishError, ChannelUnreachable):
            return None
        return str(data.get("permalink") or "") or None

    async def user_info(self, user_id: str) -> dict[str, Any] | None:
        """users.info (form arguments, slack_sdk's typed method) of one member: Slack's user
        object (`is_admin`, `is_owner`, `tz`, …), or None when Slack will not say (unknown
        user, missing `users:read`, Slack unreachable)."""
        try:
            response = await self.client.users_info(user=user_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as err:
            log.warning("users.info failed: %s", _translate(err))
            return None
        user = response.get("user")
        return dict(user) if isinstance(user, dict) else None

    async def tell_user(
        self, channel_id: str, user_id: str, message: str, thread_ts: str | None = None
    ) -> None:
        """chat.postEphemeral to one user in a channel (optionally in a thread).

        `message` is mrkdwn the caller built (user text in it already escaped with
        `bot.mrkdwn.escape`); it is clipped to Slack's 40,000 characters.
        """
        text = mrkdwn.clip(message, mrkdwn.MESSAGE_TEXT)
        kwargs: dict[str, object] = {"channel": channel_id, "user": user_id, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        await self._call("chat.postEphemeral", **kwargs)

    async def send_dm(self, user_id: str, text: str) -> None:
        """chat.postMessage with `channel` set to a user id: a message in the app's DM with
        that person (Slack opens it; https://docs.slack.dev/reference/methods/chat.postMessage,
        "channel": "an encoded ID ... or a user ID"). `text` is mrkdwn the caller built."""
        await self._call(
            "chat.postMessage", channel=user_id, text=mrkdwn.clip(text, mrkdwn.MESSAGE_TEXT)
        )
