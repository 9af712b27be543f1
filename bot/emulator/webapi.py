"""Slack Web API methods implemented over :class:`~bot.emulator.state.Workspace`.

Each handler takes the merged request parameters (query string + form or JSON body, as
slack_sdk sends them) and returns Slack's documented response body, or raises
:class:`ApiError`, which the server turns into ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import limits, reads
from .state import (
    Channel,
    Ephemeral,
    Message,
    SlackFile,
    View,
    Workspace,
    ensure_block_ids,
    truthy,
)

JSON_PARAMS = ("blocks", "attachments", "files", "metadata", "view")
# Methods that read a JSON body (each method's reference page lists application/json among
# its accepted content types; "Most write methods", https://docs.slack.dev/apis/web-api).
# Read methods (chat.getPermalink, conversations.*, files.info, users.info, …) and
# files.getUploadURLExternal take form or query arguments only.
JSON_METHODS = frozenset(
    {
        "api.test",
        "auth.test",
        "apps.connections.open",
        "chat.postMessage",
        "chat.update",
        "chat.delete",
        "chat.postEphemeral",
        "chat.scheduleMessage",
        "chat.unfurl",
        "files.completeUploadExternal",
        "files.delete",
        "views.open",
        "views.push",
        "views.update",
        "views.publish",
    }
)


class ApiError(Exception):
    """A Slack API error: ``{"ok": false, "error": error}`` with HTTP ``status``;
    ``messages`` go into ``response_metadata.messages`` (as with ``invalid_blocks``)."""

    def __init__(
        self,
        error: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        messages: list[str] | None = None,
    ):
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.messages = messages or []


@dataclass
class ApiCall:
    """One recorded Web API call: ``method``, ``params`` (JSON fields parsed), ``at``."""

    method: str
    params: dict[str, Any]
    at: float
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether Slack answered ``ok: true``."""
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The ``error`` code, if the call failed."""
        return self.response.get("error")

    def __getitem__(self, key: str) -> Any:
        """Dict-style access (``call["params"]``) for tests."""
        return getattr(self, key)


def parse_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode JSON-string fields (``blocks``, ``files``…) that form bodies carry as text."""
    out = dict(raw)
    for key in JSON_PARAMS:
        value = out.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                out[key] = json.loads(value)
            except ValueError as exc:
                raise ApiError(f"invalid_{key}") from exc
    return out


MessageHook = Callable[[Message], None]
EditHook = Callable[[dict[str, Any], Message], None]


class WebApi:
    """The Web API methods. ``on_post``/``on_edit`` fire after bot posts and edits."""

    def __init__(self, ws: Workspace, on_post: MessageHook, on_edit: EditHook) -> None:
        self.ws = ws
        self.on_post = on_post
        self.on_edit = on_edit
        self.share_delay = 0.3
        """Seconds between files.completeUploadExternal answering and the files being shared
        (Slack shares them asynchronously); 0 shares them before it answers."""
        self.pending_shares: set[asyncio.TimerHandle] = set()
        self.review = ReviewApi(ws)
        self.methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "api.test": lambda p: {"args": p},
            "auth.test": self.auth_test,
            "chat.postMessage": self.chat_post_message,
            "chat.update": self.chat_update,
            "chat.delete": self.chat_delete,
            "chat.postEphemeral": self.chat_post_ephemeral,
            "chat.getPermalink": self.chat_get_permalink,
            "files.getUploadURLExternal": self.files_get_upload_url,
            "files.completeUploadExternal": self.files_complete_upload,
            "files.info": self.files_info,
            "files.delete": self.files_delete,
            "files.upload": self.files_upload_v1,
            "conversations.info": self.conversations_info,
            "conversations.replies": self.conversations_replies,
            "conversations.history": self.conversations_history,
            "users.info": self.users_info,
            "usergroups.users.list": self.review.usergroups_users_list,
            "views.open": self.review.views_open,
            "views.update": self.review.views_update,
            "views.publish": self.review.views_publish,
            "users.conversations": self.review.users_conversations,
        }

    # -- helpers ---------------------------------------------------------------------
    def _channel_for_bot(self, ref: str | None) -> Channel:
        """Slack: unknown -> ``channel_not_found``; bot not a member -> ``not_in_channel``."""
        if not ref:
            raise ApiError("channel_not_found")
        chan = self.ws.resolve_channel(ref)
        if chan is None:
            raise ApiError("channel_not_found")
        if self.ws.bot_user_id not in chan.members:
            raise ApiError("not_in_channel")
        return chan

    def _thread_root(self, chan: Channel, thread_ts: str | None) -> str | None:
        """A reply to a reply lands in the parent's thread, as in Slack."""
        if not thread_ts:
            return None
        parent = self.ws.message(chan.id, thread_ts)
        if parent is None:
            raise ApiError("thread_not_found")
        return parent.thread_ts or parent.ts

    @staticmethod
    def _blocks(params: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The call's blocks, checked against Slack's documented limits (see
        :mod:`bot.emulator.limits`): Slack refuses the whole call with ``invalid_blocks``."""
        blocks = params.get("blocks")
        if blocks is None or blocks == "":
            return None
        if not isinstance(blocks, list):
            raise ApiError("invalid_blocks")
        problem = limits.blocks_problem(blocks)
        if problem:
            raise ApiError("invalid_blocks", messages=[f"[ERROR] {problem}"])
        return copy.deepcopy(blocks)

    @staticmethod
    def _text(params: dict[str, Any], key: str = "text") -> str:
        """A message text; Slack answers ``msg_too_long`` above 40,000 characters."""
        text = params.get(key) or ""
        if limits.text_too_long(text):
            raise ApiError("msg_too_long")
        return str(text)

    def _bot_message(self, chan: Channel, **kwargs: Any) -> Message:
        return Message(
            channel=chan.id,
            ts=self.ws.clock.next(),
            user=self.ws.bot_user_id,
            bot_id=self.ws.bot_id,
            app_id=self.ws.app_id,
            **kwargs,
        )

    # -- auth ------------------------------------------------------------------------
    def auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        """``auth.test``: who the token belongs to."""
        ws = self.ws
        return {
            "url": f"https://{ws.team_domain}.slack.com/",
            "team": ws.team_domain.title(),
            "user": ws.users[ws.bot_user_id].name,
            "team_id": ws.team_id,
            "user_id": ws.bot_user_id,
            "bot_id": ws.bot_id,
            "is_enterprise_install": False,
        }

    # -- chat ------------------------------------------------------------------------
    def chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """``chat.postMessage``: post as the bot (root or thread reply)."""
        chan = self._channel_for_bot(params.get("channel"))
        text = self._text(params)
        blocks = self._blocks(params)
        if not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        msg = self._bot_message(
            chan,
            text=text,
            blocks=blocks or [],
            thread_ts=self._thread_root(chan, params.get("thread_ts")),
            reply_broadcast=truthy(params.get("reply_broadcast")),
            metadata=params.get("metadata") if isinstance(params.get("metadata"), dict) else None,
        )
        self.ws.add_message(msg)
        self.on_post(msg)
        return {"channel": chan.id, "ts": msg.ts, "message": self.ws.message_dict(msg)}

    def chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        """``chat.update``: edit a bot message; omitted ``blocks`` are kept (as in Slack)."""
        chan = self.ws.resolve_channel(params.get("channel") or "")
        if chan is None:
            raise ApiError("channel_not_found")
        msg = self.ws.message(chan.id, params.get("ts") or "")
        if msg is None:
            raise ApiError("message_not_found")
        if msg.bot_id != self.ws.bot_id:
            raise ApiError("cant_update_message")
        previous = self.ws.message_dict(msg)
        blocks = self._blocks(params)
        text = params.get("text")
        self._text(params)
        if text is None and blocks is None and "file_ids" not in params:
            raise ApiError("no_text")
        if text is not None:
            msg.text = text
        if blocks is not None:
            msg.blocks = blocks
            ensure_block_ids(msg.blocks)
        if isinstance(params.get("metadata"), dict):  # chat.update `metadata`: replaces it
            msg.metadata = params["metadata"]
        msg.edits += 1
        self.on_edit(previous, msg)
        return {
            "channel": chan.id,
            "ts": msg.ts,
            "text": msg.text,
            "message": self.ws.message_dict(msg),
        }

    def chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        """``chat.delete`` (https://docs.slack.dev/reference/methods/chat.delete): a bot
        token removes only the bot's own messages (``cant_delete_message`` otherwise);
        ``message_not_found`` for an unknown or already deleted message."""
        chan = self.ws.resolve_channel(params.get("channel") or "")
        if chan is None:
            raise ApiError("channel_not_found")
        msg = self.ws.message(chan.id, params.get("ts") or "")
        if msg is None:
            raise ApiError("message_not_found")
        if msg.bot_id != self.ws.bot_id:
            raise ApiError("cant_delete_message")
        msg.deleted = True
        return {"channel": chan.id, "ts": msg.ts}

    def chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        """``chat.postEphemeral``: visible to one member of the channel only."""
        chan = self._channel_for_bot(params.get("channel"))
        user = params.get("user") or ""
        if user not in self.ws.users:
            raise ApiError("user_not_found")
        if user not in chan.members:
            raise ApiError("user_not_in_channel")
        text = self._text(params)
        blocks = self._blocks(params) or []
        if not text and not blocks and not params.get("attachments"):
            raise ApiError("no_text")
        ts = self.ws.clock.next()
        thread_ts = params.get("thread_ts") or None
        self.ws.ephemerals.append(Ephemeral(chan.id, user, text, blocks, thread_ts, ts))
        return {"message_ts": ts}

    def chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        """``chat.getPermalink``: a link to a message."""
        chan = self.ws.resolve_channel(params.get("channel") or "")
        if chan is None:
            raise ApiError("channel_not_found")
        ts = params.get("message_ts") or ""
        if self.ws.message(chan.id, ts) is None:
            raise ApiError("message_not_found")
        link = f"https://{self.ws.team_domain}.slack.com/archives/{chan.id}/p{ts.replace('.', '')}"
        return {"channel": chan.id, "permalink": link}

    # -- files -----------------------------------------------------------------------
    def files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        """``files.getUploadURLExternal``: reserve a file id and hand out an upload URL."""
        filename = params.get("filename")
        length = params.get("length")
        if not filename or length in (None, ""):
            raise ApiError("invalid_arguments")
        try:
            size = int(length)
        except (TypeError, ValueError) as exc:
            raise ApiError("invalid_arguments") from exc
        f = self.ws.new_file(filename, None, self.ws.bot_user_id)
        f.length = size
        f.alt_txt = params.get("alt_txt") or params.get("alt_text") or None
        return {"upload_url": f"{self.ws.base_url}upload/{f.id}", "file_id": f.id}

    def files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        """``files.completeUploadExternal``: finish uploads and share them (one message)."""
        items = params.get("files")
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_arguments")
        files = []
        for item in items:
            f = self.ws.files.get(str(item.get("id")))
            if f is None or f.data is None or f.deleted:
                raise ApiError("file_not_found")
            if item.get("title"):
                f.title = item["title"]
            files.append(f)
        channel_ref = params.get("channel_id") or (params.get("channels") or "").split(",")[0]
        if channel_ref:
            chan = self._channel_for_bot(channel_ref)
            msg = self._bot_message(
                chan,
                text=self._text(params, "initial_comment"),
                blocks=self._blocks(params) or [],
                files=files,
                subtype="file_share",
                thread_ts=self._thread_root(chan, params.get("thread_ts")),
            )
            self._share_later(chan, msg, files)
        return {"files": [f.to_dict() for f in files]}

    def _share_later(self, chan: Channel, msg: Message, files: list[SlackFile]) -> None:
        """Share the files after `share_delay` seconds. Slack answers
        files.completeUploadExternal (https://docs.slack.dev/reference/methods/files.completeUploadExternal)
        before the file_share message exists: the files it returns carry no `shares` yet
        and the message appears a moment later, so an app that posts right away can land
        above its own files."""

        def share() -> None:
            msg.ts = self.ws.clock.next()  # the message exists from now on
            for f in files:
                f.share(chan, msg.ts, msg.thread_ts)
            self.ws.add_message(msg)
            self.on_post(msg)

        if self.share_delay <= 0:
            share()
            return

        def fire() -> None:
            self.pending_shares.discard(handle)
            share()

        handle = asyncio.get_running_loop().call_later(self.share_delay, fire)
        self.pending_shares.add(handle)

    def files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """``files.info``: the file object."""
        f = self.ws.files.get(params.get("file") or "")
        if f is None or f.data is None:
            raise ApiError("file_not_found")
        if f.deleted:
            raise ApiError("file_deleted")
        return {"file": f.to_dict(), "comments": [], "response_metadata": {"next_cursor": ""}}

    def files_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        """``files.delete`` (https://docs.slack.dev/reference/methods/files.delete): a bot
        token deletes only files the bot uploaded (``cant_delete_file`` otherwise);
        ``file_not_found`` for an unknown file, ``file_deleted`` for one deleted already.
        Messages that shared it show it as a tombstone afterwards."""
        f = self.ws.files.get(params.get("file") or "")
        if f is None:
            raise ApiError("file_not_found")
        if f.deleted:
            raise ApiError("file_deleted")
        if f.user != self.ws.bot_user_id:
            raise ApiError("cant_delete_file")
        f.deleted = True
        return {}

    def files_upload_v1(self, params: dict[str, Any]) -> dict[str, Any]:
        """``files.upload`` was retired by Slack in 2025."""
        raise ApiError("method_deprecated")

    # -- conversations / users -------------------------------------------------------
    def conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """``conversations.info``."""
        chan = self.ws.resolve_channel(params.get("channel") or "")
        if chan is None:
            raise ApiError("channel_not_found")
        return {"channel": chan.to_dict(self.ws.bot_user_id)}

    def conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """``conversations.replies``: a thread, root first, then the replies in the window
        (``oldest``/``latest``), paged; metadata only with ``include_all_metadata``."""
        chan = self._channel_for_bot(params.get("channel"))
        msgs = self.ws.replies(chan.id, params.get("ts") or "")
        if not msgs:
            raise ApiError("thread_not_found")
        try:
            replies = reads.in_window(msgs[1:], params)
            return reads.page(self.ws, [msgs[0], *replies], params, head=1)
        except reads.BadArguments as err:
            raise ApiError(str(err)) from err

    def conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        """``conversations.history``: channel-level messages in the window, newest first,
        paged; metadata only with ``include_all_metadata``."""
        chan = self._channel_for_bot(params.get("channel"))
        msgs = [
            m
            for m in self.ws.messages.get(chan.id, [])
            if not m.deleted and (m.thread_ts is None or m.reply_broadcast)
        ]
        try:
            return reads.page(self.ws, list(reversed(reads.in_window(msgs, params))), params)
        except reads.BadArguments as err:
            raise ApiError(str(err)) from err

    def users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        """``users.info``."""
        user = self.ws.users.get(params.get("user") or "")
        if user is None:
            raise ApiError("user_not_found")
        return {"user": user.to_dict(self.ws.team_id)}


class ReviewApi:
    """Web API methods for team review (issue 10): user groups, modals, the Home tab.

    Limits and errors follow Slack's method pages:
    https://docs.slack.dev/reference/methods/usergroups.users.list (``no_such_subteam``),
    https://docs.slack.dev/reference/methods/views.open (``invalid_trigger_id``,
    ``expired_trigger_id``: a trigger is good for 3 seconds and once),
    https://docs.slack.dev/reference/methods/views.update (``not_found``, ``hash_conflict``),
    https://docs.slack.dev/reference/methods/views.publish (``user_id`` required), and the
    view object's limits: https://docs.slack.dev/reference/views/modal-views (title and
    button texts at most 24 characters, at most 100 blocks, ``private_metadata`` at most
    3,000 characters, ``callback_id`` at most 255).
    """

    TRIGGER_SECONDS = 3.0
    VIEW_TITLE = 24
    VIEW_BLOCKS = 100
    VIEW_BYTES = 250_000
    PRIVATE_METADATA = 3000
    CALLBACK_ID = 255

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def usergroups_users_list(self, params: dict[str, Any]) -> dict[str, Any]:
        """``usergroups.users.list``: the user ids of a user group."""
        group = self.ws.usergroups.get(params.get("usergroup") or "")
        if group is None:
            raise ApiError("no_such_subteam")
        if group.disabled and not truthy(params.get("include_disabled")):
            raise ApiError("no_such_subteam")
        return {"users": list(group.users)}

    def users_conversations(self, params: dict[str, Any]) -> dict[str, Any]:
        """``users.conversations``: the conversations a user is a member of, of the
        ``types`` asked for (default ``public_channel``), paged by ``limit`` (under 1,000)
        and ``cursor``. With a bot token a private channel is listed only when the bot is
        in it too. https://docs.slack.dev/reference/methods/users.conversations"""
        user = str(params.get("user") or self.ws.bot_user_id)
        if user not in self.ws.users:
            raise ApiError("user_not_found")
        types = set(str(params.get("types") or "public_channel").split(","))
        if not types <= {"public_channel", "private_channel", "mpim", "im"}:
            raise ApiError("invalid_types")
        try:
            limit = int(params.get("limit") or 100)
            start = int(base64.b64decode(str(params.get("cursor") or "")).decode() or 0)
        except ValueError as err:
            raise ApiError("invalid_cursor" if params.get("cursor") else "invalid_limit") from err
        if not 1 <= limit < 1000:
            raise ApiError("invalid_limit")
        found = [
            c
            for c in self.ws.channels.values()
            if user in c.members
            and ("im" if c.is_im else "private_channel" if c.is_private else "public_channel")
            in types
            and (not c.is_private or self.ws.bot_user_id in c.members)
        ]
        chunk = found[start : start + limit]
        more = start + limit < len(found)
        cursor = base64.b64encode(str(start + limit).encode()).decode() if more else ""
        return {
            "channels": [c.to_dict(self.ws.bot_user_id) for c in chunk],
            "response_metadata": {"next_cursor": cursor},
        }

    def _check_view(self, view: Any, kind: str) -> dict[str, Any]:
        if not isinstance(view, dict) or view.get("type") != kind:
            raise ApiError("invalid_arguments", messages=[f"[ERROR] view type must be {kind}"])
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > self.VIEW_BLOCKS:
            raise ApiError("invalid_arguments", messages=["[ERROR] 0-100 blocks"])
        problem = limits.blocks_problem(blocks, self.VIEW_BLOCKS) if blocks else None
        for key in ("title", "submit", "close"):
            text = (view.get(key) or {}).get("text", "") if isinstance(view.get(key), dict) else ""
            if key == "title" and kind == "modal" and not 1 <= len(text) <= self.VIEW_TITLE:
                problem = problem or f"title must be 1-{self.VIEW_TITLE} characters"
            elif len(text) > self.VIEW_TITLE:
                problem = problem or f"{key} must be at most {self.VIEW_TITLE} characters"
        if len(str(view.get("private_metadata") or "")) > self.PRIVATE_METADATA:
            problem = problem or "private_metadata too long"
        if len(str(view.get("callback_id") or "")) > self.CALLBACK_ID:
            problem = problem or "callback_id too long"
        if problem:
            raise ApiError("invalid_arguments", messages=[f"[ERROR] {problem}"])
        ensure_block_ids(blocks)
        return copy.deepcopy(view)

    def _new_view(self, user: str, view: dict[str, Any], trigger: str | None) -> View:
        seq = next(self.ws._view_seq)
        made = View(f"V0EMU{seq:06d}", user, view, f"{time.time():.6f}.{seq}", trigger)
        self.ws.views[made.id] = made
        return made

    def views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        """``views.open``: open a modal for the person whose click or command made the
        trigger (once, within 3 seconds)."""
        trigger = str(params.get("trigger_id") or "")
        issued = self.ws.triggers.pop(trigger, None)
        if issued is None:
            raise ApiError("invalid_trigger_id")
        user, at = issued
        if time.monotonic() - at > self.TRIGGER_SECONDS:
            raise ApiError("expired_trigger_id")
        view = self._new_view(user, self._check_view(params.get("view"), "modal"), trigger)
        return {"view": view.to_dict(self.ws.team_id, self.ws.app_id)}

    def views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        """``views.update``: replace an open view (``hash`` guards against races)."""
        found = self.ws.views.get(str(params.get("view_id") or ""))
        if found is None or found.closed:
            raise ApiError("not_found")
        if params.get("hash") and params["hash"] != found.hash:
            raise ApiError("hash_conflict")
        found.view = self._check_view(params.get("view"), str(found.view.get("type")))
        found.hash = f"{time.time():.6f}.{next(self.ws._view_seq)}"
        return {"view": found.to_dict(self.ws.team_id, self.ws.app_id)}

    def views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        """``views.publish``: set a person's Home tab. ``user_id`` and ``view`` are required
        (``invalid_arguments``), the view must be ``type: home`` with at most 100 blocks,
        at most 250 kB (``view_too_large``), and the app's Home tab must be enabled
        (``not_enabled``): https://docs.slack.dev/reference/methods/views.publish (formerly
        https://api.slack.com/methods/views.publish)"""
        user = str(params.get("user_id") or "")
        if not user or params.get("view") is None:
            raise ApiError("invalid_arguments", messages=["[ERROR] user_id and view are required"])
        if user not in self.ws.users:
            raise ApiError("user_not_found")
        if not self.ws.home_tab_enabled:
            raise ApiError("not_enabled")
        if len(json.dumps(params["view"])) > self.VIEW_BYTES:
            raise ApiError("view_too_large")
        home = self.ws.home_views.get(user)
        if home is not None and params.get("hash") and params["hash"] != home.hash:
            raise ApiError("hash_conflict")
        view = self._new_view(user, self._check_view(params.get("view"), "home"), None)
        self.ws.home_views[user] = view
        return {"view": view.to_dict(self.ws.team_id, self.ws.app_id)}


def now() -> float:
    """The clock used for :attr:`ApiCall.at`."""
    return time.monotonic()
