"""The Slack side of the Publisher port: every Web API call the job engine makes.

Every call goes through slack_sdk's typed methods on the workspace's client
(`_client_for`); they send what each method accepts (read methods such as
chat.getPermalink, conversations.* and files.info take form or query arguments only,
https://docs.slack.dev/apis/web-api, "POST bodies").

Errors are translated for core: `not_in_channel`, `channel_not_found`,
`is_archived` → ChannelUnreachable (no retry helps); `ratelimited` (HTTP 429,
Retry-After) and other API or network failures → PublishError (retried by the
engine). Slack's rate limits are kept by design (issue 13): every call is paced by the
workspace's client (`bot.slack_client`, `bot.pacing`: chat.update is Tier 3, about 50
calls a minute, and a channel takes about one message a second), status edits are
coalesced per message (`bot.status_edits`) and sent without holding up the engine, and
the result and failure posts go first in their channel's line.

Exactly once: every message is tagged with message metadata
(https://docs.slack.dev/messaging/message-metadata): `event_type` "imagine_<effect>" and
`event_payload` {"generation_id": …}; `find_posted` reads it back with
`include_all_metadata=true` on conversations.history (root) or conversations.replies.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Any, Protocol, Self, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot import blocks, messages, mrkdwn, pacing, uploads
from bot.slack_client import PacedWebClient
from bot.status_edits import StatusEdits
from bot.workspaces import NotInstalled, Team, Workspaces
from core.models import GenerationState
from core.ports import (
    ChannelUnreachable,
    Effect,
    Failure,
    GenerationView,
    PublishError,
    UploadState,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived", "missing_scope"}
CLOCK_SKEW = 60.0  # seconds looked back before an intent's time (database vs Slack clocks)
HISTORY_PAGE = 200  # conversations.history / replies `limit` (Slack: at most 999, 200 advised)
HISTORY_PAGES = 5  # pages read when looking for a message posted before a crash
# chat.delete / files.delete answers (their method pages' error tables): deleted already,
# or refused for good (not ours, not deletable, the channel is gone).
GONE_MESSAGE = frozenset({"message_not_found"})
REFUSED_MESSAGE = frozenset({"cant_delete_message", "compliance_exports_prevent_deletion"})
GONE_FILE = frozenset({"file_not_found", "file_deleted"})
REFUSED_FILE = frozenset({"cant_delete_file", "delete_not_allowed", "file_deleting_disabled"})

FINAL_WAIT = 1.0  # seconds show_status waits for a terminal state's edit to go out
PROGRESS_STEP = 100 // blocks.PROGRESS_CELLS  # percent: progress shown changes per cell


def _signature(view: GenerationView) -> str:
    """What a person would see of the status message, progress rounded down to the bar's
    cells: two views with one signature need one edit."""
    shown = replace(view, progress=view.progress // PROGRESS_STEP * PROGRESS_STEP)
    return json.dumps(blocks.status_message(shown), sort_keys=True)


def _translate(err: Exception) -> Exception:
    if isinstance(err, SlackApiError):
        data = err.response.data  # a 500 page or a proxy's answer is not JSON
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if code in UNREACHABLE:
            return ChannelUnreachable(code)
        retry_after = err.response.headers.get("Retry-After") if err.response.headers else None
        return PublishError(
            f"Slack answered {code or err.response.status_code}",
            float(retry_after) if retry_after else None,
        )
    return PublishError(f"Slack could not be reached: {type(err).__name__}")


HOME_CHANNEL_PAGES = 5  # users.conversations pages read for one Home tab


async def _user_channels(
    user_id: str, cursor: str | None, client: AsyncWebClient
) -> AsyncSlackResponse:
    return await client.users_conversations(
        user=user_id,
        types="public_channel,private_channel",
        exclude_archived=True,
        limit=HISTORY_PAGE,
        cursor=cursor,
    )


def metadata(effect: Effect, view: GenerationView) -> dict[str, Any]:
    """The message metadata tagging a message of `effect` for `view`'s generation."""
    return {
        "event_type": f"imagine_{effect.value}",
        "event_payload": {"generation_id": view.generation_id, "version": view.version},
    }


def is_tagged(message: dict[str, Any], effect: Effect, generation_id: int) -> bool:
    """Whether a message (as conversations.* return it) carries our tag for `effect`."""
    meta = message.get("metadata") or {}
    payload = meta.get("event_payload") or {}
    return (
        meta.get("event_type") == f"imagine_{effect.value}"
        and payload.get("generation_id") == generation_id
    )


class HomeChanges(Protocol):
    """What republishes App Home tabs when review items change (`bot.home_refresh`)."""

    def changed(self, team: Team, view: GenerationView) -> None:
        """Refresh, in the background, the Home tabs showing `view`'s generation."""
        ...

    def published(self, team: Team, user_id: str) -> None:
        """A publish of `user_id`'s Home starts now outside the refresher (it reads the state
        from now on), so changes noted before now need no publish of their own for them."""
        ...

    async def aclose(self) -> None:
        """Stop the refreshes still waiting."""
        ...


class SlackCalls:
    """The Web API seam every Slack call goes through: the workspace's client (`client`,
    or with `workspaces` in OAuth mode the token of the workspace the object is bound to
    with `for_team`), errors translated for core, and the plain calls listeners use (thread
    replies, ephemerals, permalinks, users.info, files.info).

    `status_interval` (seconds) is the least time between two edits of one status message
    (bot.status_edits; terminal states go at once); `share_checks` are
    the delays (seconds) between files.info checks of a fresh share (see SlackPublisher)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        status_interval: float = 1.5,
        workspaces: Workspaces | None = None,
        share_checks: tuple[float, ...] = uploads.SHARE_CHECKS,
    ) -> None:
        self.client = client
        self.status_interval = status_interval
        self.share_checks = share_checks
        self.status_edits = StatusEdits(status_interval)
        self.workspaces = workspaces or Workspaces(client)
        self.team: Team | None = None
        # issue 10: republishes Home tabs on review changes (set by bot.worker.job_engine)
        self.home_changes: HomeChanges | None = None

    def for_team(self, team: Team) -> Self:
        """This publisher speaking for `team` (shares the status throttle)."""
        bound = copy.copy(self)
        bound.team = team
        return bound

    async def aclose(self, within: float = 5.0) -> None:
        """Send the status edits still waiting (at most `within` seconds), then stop."""
        await self.status_edits.close(within)
        if self.home_changes is not None:
            await self.home_changes.aclose()
        if isinstance(self.client, PacedWebClient):
            await self.client.aclose()  # its kept-alive connections

    async def _client_for(self) -> AsyncWebClient:
        """The Web API client with the token of `self.team` (the one seam for tokens).

        An uninstalled workspace raises ChannelUnreachable("not_installed"): no retry helps.
        """
        try:
            return await self.workspaces.client_for(self.team)
        except NotInstalled as err:
            log.warning("no installation for %s", err)
            raise ChannelUnreachable("not_installed") from None

    async def file_info(self, file_id: str) -> dict | None:
        """files.info (slack_sdk's `files_info`, query arguments) of a file: Slack's file
        object, or None when Slack says it is gone or not visible to the bot."""
        client = await self._client_for()
        try:
            response = await client.files_info(file=file_id)
        except SlackApiError as err:
            if err.response.get("error") in ("file_not_found", "file_deleted", "access_denied"):
                return None
            raise _translate(err) from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _translate(err) from err
        found = response.get("file")
        return dict(found) if isinstance(found, dict) else None

    async def bot_token(self) -> str:
        """The bot token of `self.team`, for downloading its files (Slack's file origins
        only: `bot.files`)."""
        token = (await self._client_for()).token
        assert token is not None
        return token

    async def _call(self, call: Callable[[AsyncWebClient], Awaitable[T]]) -> T:
        """Run `call(client)` (a typed slack_sdk method) with the client of this publisher's
        workspace (`_client_for`), translating its errors."""
        client = await self._client_for()
        try:
            return await call(client)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as err:
            raise _translate(err) from err

    async def say_in_thread(self, channel_id: str, thread_ts: str, text: str) -> str:
        """chat.postMessage of a mrkdwn reply in a thread; returns its ts.

        `text` is mrkdwn the caller built (user text in it already escaped with
        `bot.mrkdwn.escape`); it is clipped to Slack's 40,000 characters.
        """
        text = mrkdwn.clip(text, mrkdwn.MESSAGE_TEXT)
        response = await self._call(
            lambda c: c.chat_postMessage(channel=channel_id, thread_ts=thread_ts, text=text)
        )
        return str(response["ts"])

    async def permalink(self, channel_id: str, ts: str) -> str | None:
        """chat.getPermalink of a message (query arguments), or None when Slack will not say."""
        try:
            response = await self._call(
                lambda c: c.chat_getPermalink(channel=channel_id, message_ts=ts)
            )
        except (PublishError, ChannelUnreachable):
            return None
        return str(response.get("permalink") or "") or None

    async def user_info(self, user_id: str) -> dict[str, Any] | None:
        """users.info (form arguments, slack_sdk's typed method) of one member: Slack's user
        object (`is_admin`, `is_owner`, `tz`, …), or None when Slack will not say (unknown
        user, missing `users:read`, Slack unreachable)."""
        try:
            client = await self._client_for()
            response = await client.users_info(user=user_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, ChannelUnreachable) as err:
            log.warning(
                "users.info failed: %s",
                err if isinstance(err, ChannelUnreachable) else _translate(err),
            )
            return None
        user = response.get("user")
        return dict(user) if isinstance(user, dict) else None

    async def tell_user(
        self,
        channel_id: str,
        user_id: str,
        message: str,
        thread_ts: str | None = None,
        blocks: list[dict] | None = None,
    ) -> None:
        """chat.postEphemeral to one user in a channel (optionally in a thread).

        `message` is mrkdwn the caller built (user text in it already escaped with
        `bot.mrkdwn.escape`); it is clipped to Slack's 40,000 characters. `blocks`, when
        given, are built by `bot.blocks` (within Slack's limits); `message` is then their
        notification text.
        """
        message = mrkdwn.clip(message, mrkdwn.MESSAGE_TEXT)
        await self._call(
            lambda c: c.chat_postEphemeral(
                channel=channel_id, user=user_id, text=message, thread_ts=thread_ts, blocks=blocks
            )
        )

    async def delete_message(self, channel_id: str, ts: str) -> str:
        """chat.delete of one of the bot's messages (JSON; `chat:write` covers the bot's
        own messages, https://docs.slack.dev/reference/methods/chat.delete). Returns
        "deleted", "gone" (`message_not_found`: deleted already) or Slack's refusal code
        (`cant_delete_message`, …). Raises PublishError when a later try may work."""
        return await self._delete(
            lambda c: c.chat_delete(channel=channel_id, ts=ts), GONE_MESSAGE, REFUSED_MESSAGE
        )

    async def delete_file(self, file_id: str) -> str:
        """files.delete of one of the bot's files (needs `files:write`; a bot may delete
        only files it uploaded, https://docs.slack.dev/reference/methods/files.delete).
        Returns "deleted", "gone" (`file_not_found`, `file_deleted`) or Slack's refusal code
        (`cant_delete_file`, …). Raises PublishError when a later try may work."""
        return await self._delete(lambda c: c.files_delete(file=file_id), GONE_FILE, REFUSED_FILE)

    async def _delete(
        self,
        call: Callable[[AsyncWebClient], Awaitable[Any]],
        gone: frozenset[str],
        refused: frozenset[str],
    ) -> str:
        client = await self._client_for()
        try:
            await call(client)
        except SlackApiError as err:
            data = err.response.data
            code = str(data.get("error", "")) if isinstance(data, dict) else ""
            if code in gone:
                return "gone"
            if code in refused or code in UNREACHABLE:
                return code
            raise _translate(err) from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _translate(err) from err
        return "deleted"

    async def send_dm(self, user_id: str, text: str) -> None:
        """chat.postMessage with `channel` set to a user id: a message in the app's DM with
        that person (Slack opens it; https://docs.slack.dev/reference/methods/chat.postMessage,
        "channel": "an encoded ID ... or a user ID"). `text` is mrkdwn the caller built."""
        message = mrkdwn.clip(text, mrkdwn.MESSAGE_TEXT)
        await self._call(lambda c: c.chat_postMessage(channel=user_id, text=message))


class ReviewCalls(SlackCalls):
    """The Web API calls of team review (issue 10): user groups, the gallery post, modals
    and the App Home tab."""

    async def usergroup_members(self, group_id: str) -> frozenset[str] | None:
        """usergroups.users.list (form arguments, slack_sdk's typed method; needs
        `usergroups:read`): the user ids in a user group, or None when Slack will not say
        (unknown group, missing scope, Slack unreachable): the caller treats that as "not a
        member", the safe side. https://docs.slack.dev/reference/methods/usergroups.users.list
        """
        try:
            response = await self._call(lambda c: c.usergroups_users_list(usergroup=group_id))
        except (PublishError, ChannelUnreachable) as err:
            log.warning("usergroups.users.list failed: %s", err)
            return None
        users = response.get("users")
        return frozenset(str(u) for u in users) if isinstance(users, list) else None

    async def groups_of(self, group_ids: frozenset[str], user_id: str) -> frozenset[str]:
        """Which of `group_ids` `user_id` is in (`usergroup_members` per group; a group
        Slack will not list counts as "not a member")."""
        found = set()
        for group in sorted(group_ids):
            members = await self.usergroup_members(group)
            if members is not None and user_id in members:
                found.add(group)
        return frozenset(found)

    async def find_gallery_post(self, channel_id: str, image_id: int) -> str | None:
        """The ts of a gallery post already made for `image_id` (found by its message
        metadata in the channel's recent history), or None. Used before posting again an
        intent whose poster crashed. conversations.history with `include_all_metadata`."""
        response = await self._call(
            lambda c: c.conversations_history(
                channel=channel_id, limit=100, include_all_metadata=True
            )
        )
        for message in response.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if (
                meta.get("event_type") == blocks.GALLERY_EVENT
                and payload.get("image_id") == image_id
            ):
                return str(message["ts"])
        return None

    async def publish_to_gallery(self, post: blocks.GalleryPost) -> str:
        """chat.postMessage of a fully approved image in the gallery channel: the image (the
        file already uploaded in the thread, shown with an image block's `slack_file`), the
        prompt, who asked, who approved, the version lineage and a link to the thread; tagged
        with message metadata (`imagine_gallery_post`, the image id) so a resumed post can
        be found. Returns the message ts. Raises ChannelUnreachable (`not_in_channel`, …) or
        PublishError."""
        text, body = blocks.gallery_message(post)
        tag = {
            "event_type": blocks.GALLERY_EVENT,
            "event_payload": {"image_id": post.image_id, "generation_id": post.generation_id},
        }
        response = await self._call(
            lambda c: c.chat_postMessage(
                channel=post.channel_id, text=text, blocks=body, unfurl_links=False, metadata=tag
            )
        )
        return str(response["ts"])

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> str | None:
        """views.open of a modal for the person whose click or command gave `trigger_id`
        (good once, within 3 seconds: https://docs.slack.dev/reference/methods/views.open).
        Returns the view id, or None when Slack refused (an expired trigger: the person
        clicks again)."""
        try:
            response = await self._call(lambda c: c.views_open(trigger_id=trigger_id, view=view))
        except (PublishError, ChannelUnreachable) as err:
            log.warning("views.open failed: %s", err)
            return None
        return str((response.get("view") or {}).get("id") or "") or None

    async def member_channels(self, user_id: str) -> frozenset[str]:
        """users.conversations (query arguments, slack_sdk's typed method; `channels:read` /
        `groups:read`): the public and private channels `user_id` is a member of, as far as
        the bot can see them (at most HOME_CHANNEL_PAGES pages of 200). Empty when Slack
        will not say: the caller then lists nothing channel-bound, the safe side.
        https://docs.slack.dev/reference/methods/users.conversations"""
        found: set[str] = set()
        cursor: str | None = None
        for _ in range(HOME_CHANNEL_PAGES):
            try:
                page = await self._call(partial(_user_channels, user_id, cursor))
            except (PublishError, ChannelUnreachable) as err:
                log.warning("users.conversations failed: %s", err)
                return frozenset()
            found.update(str(c["id"]) for c in page.get("channels") or [] if c.get("id"))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return frozenset(found)

    async def publish_home(self, user_id: str, view: dict[str, Any]) -> None:
        """views.publish of a person's App Home tab
        (https://docs.slack.dev/reference/methods/views.publish). Raises PublishError."""
        await self._call(lambda c: c.views_publish(user_id=user_id, view=view))


class SlackPublisher(ReviewCalls):
    """The Publisher port over the Slack Web API: the thread, the status message (edits
    coalesced and paced, see bot.status_edits; terminal states always go out), uploads,
    the result message, failures; every message tagged with metadata so a lost answer is
    found again instead of posted twice. `bot.routing.RoutedPublisher` binds each call to
    its generation's workspace."""

    async def _post(self, view: GenerationView, effect: Effect, **kwargs: Any) -> str:
        level = pacing.HIGH if effect in (Effect.RESULT, Effect.FAILURE) else pacing.NORMAL
        with pacing.priority(level):  # the result goes first in the channel's line
            response: AsyncSlackResponse = await self._call(
                lambda c: c.chat_postMessage(
                    channel=view.channel_id, metadata=metadata(effect, view), **kwargs
                )
            )
        return str(response["ts"])

    async def open_thread(self, view: GenerationView) -> str:
        """chat.postMessage of the root message in the channel; its ts is the thread."""
        text, body = blocks.root_message(view)
        return await self._post(view, Effect.ROOT, text=text, blocks=body)

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        """Post the status message in the thread (returns its ts), or queue its edit
        (bot.status_edits: skipped when a person would see no change, replaced by a newer
        one while it waits). A terminal state's edit is waited for up to FINAL_WAIT
        seconds; other edits are not waited for. `force` is accepted for the port: every
        change goes out, paced."""
        text, body = blocks.status_message(view)
        if view.status_ts is None:
            ts = await self._post(
                view, Effect.STATUS, thread_ts=view.thread_ts, text=text, blocks=body
            )
            self.status_edits.remember(self._status_key(view, ts), _signature(view))
            return ts
        status_ts = view.status_ts
        tag = metadata(Effect.STATUS, view)
        final = view.state in GenerationState.TERMINAL

        async def send() -> None:
            # A terminal state goes ahead of progress edits waiting in the workspace's lane.
            with pacing.priority(pacing.HIGH if final else pacing.NORMAL):
                await self._call(
                    lambda c: c.chat_update(
                        channel=view.channel_id, ts=status_ts, text=text, blocks=body, metadata=tag
                    )
                )

        key = self._status_key(view, status_ts)
        done = self.status_edits.submit(key, _signature(view), send, final=final)
        if final:
            await asyncio.wait([done], timeout=FINAL_WAIT)
        return status_ts

    def _status_key(self, view: GenerationView, ts: str) -> str:
        return f"{view.team_id}/{view.channel_id}/{ts}"

    async def find_posted(self, view: GenerationView, effect: Effect, since: float) -> str | None:
        """The ts of our message of `effect` for the generation posted since `since` (epoch
        seconds, less CLOCK_SKEW): conversations.history for the root message,
        conversations.replies in the thread for the others; both with include_all_metadata."""
        async for message in self._messages_since(view, effect, since - CLOCK_SKEW):
            if is_tagged(message, effect, view.generation_id):
                return str(message["ts"])
        return None

    async def _messages_since(
        self, view: GenerationView, effect: Effect, oldest: float
    ) -> AsyncIterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            args: dict[str, Any] = {
                "channel": view.channel_id,
                "oldest": f"{max(oldest, 0):.6f}",
                "limit": HISTORY_PAGE,
                "include_all_metadata": True,
                "cursor": cursor,
            }
            page = await self._call(partial(self._read_page, view, effect, args))
            for message in page.get("messages") or []:
                yield message
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return

    @staticmethod
    async def _read_page(
        view: GenerationView, effect: Effect, args: dict[str, Any], client: AsyncWebClient
    ) -> AsyncSlackResponse:
        if effect is Effect.ROOT or view.thread_ts is None:
            return await client.conversations_history(**args)
        return await client.conversations_replies(ts=view.thread_ts, **args)

    async def reserve_uploads(self, view: GenerationView) -> dict[int, str]:
        """files.getUploadURLExternal and the byte upload per image without a file id;
        {index: file_id}, not shared yet."""
        seconds = float((await self._client_for()).timeout)
        return await self._call(lambda c: uploads.reserve(c, view, seconds))

    async def share_uploads(self, view: GenerationView, file_ids: dict[int, str]) -> None:
        """files.completeUploadExternal into the thread, then files.info until the files
        are visible there (bounded by `share_checks`; after that it goes on and logs)."""
        await self._call(lambda c: uploads.complete(c, view, file_ids))
        await self._call(lambda c: uploads.wait_visible(c, view, file_ids, self.share_checks))

    async def uploads_state(self, view: GenerationView, file_ids: dict[int, str]) -> UploadState:
        """files.info of the batch's last file: shared into the thread, uploaded, or missing.
        An uploaded file is watched for a while first: its share may still be on its way."""
        last = file_ids[max(file_ids)]
        seen = await self._call(lambda c: uploads.state(c, view, last))
        if seen is UploadState.UPLOADED:
            seen = await self._call(
                lambda c: uploads.wait_visible(c, view, file_ids, self.share_checks)
            )
        return seen

    async def post_result(self, view: GenerationView) -> str:
        """chat.postMessage of the result message (buttons) in the thread."""
        text, body = blocks.result_message(view)
        thread_ts = view.thread_ts
        return await self._post(view, Effect.RESULT, thread_ts=thread_ts, text=text, blocks=body)

    async def update_result(self, view: GenerationView) -> None:
        """chat.update of the result message after an approval."""
        if view.result_ts is None:
            return
        text, body = blocks.result_message(view)
        result_ts = view.result_ts
        with pacing.priority(pacing.HIGH):  # a person just clicked
            await self._call(
                lambda c: c.chat_update(
                    channel=view.channel_id,
                    ts=result_ts,
                    text=text,
                    blocks=body,
                    metadata=metadata(Effect.RESULT, view),
                )
            )

    async def mention_reviewers(self, view: GenerationView) -> str:
        """chat.postMessage in the thread mentioning the policy's reviewers (`<@U…>` and
        `<!subteam^S…>`, which notify them), tagged Effect.MENTION; returns its ts."""
        text = messages.reviewers_wanted(view.review, view.version)
        return await self._post(view, Effect.MENTION, thread_ts=view.thread_ts, text=text)

    async def report_failure(self, view: GenerationView, failure: Failure) -> None:
        """A thread reply that says what failed and what to do."""
        text = blocks.failure_message(view, failure)
        await self._post(view, Effect.FAILURE, thread_ts=view.thread_ts, text=text)

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

    async def review_items_changed(self, view: GenerationView) -> None:
        """Hand the change to `home_changes` (Home tabs republished in the background, see
        bot.home_refresh); nothing when none is set. Returns at once, never raises."""
        if self.home_changes is not None:
            self.home_changes.changed(Team(view.team_id, view.enterprise_id), view)
