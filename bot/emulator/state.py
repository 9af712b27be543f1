"""Workspace state of the Slack emulator: users, channels, messages, files, ephemerals.

The shapes follow Slack's documented objects (message, file, channel, user) closely
enough that the bot, Bolt and the tests cannot tell them apart from the real thing.
"""

from __future__ import annotations

import io
import itertools
import mimetypes
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

try:  # Pillow is a project dependency, but the emulator still works without it.
    from PIL import Image
except ImportError:  # pragma: no cover
    Image = None  # type: ignore[assignment]


class TsClock:
    """Issues Slack message timestamps: unique, increasing strings like ``1764061234.000100``."""

    def __init__(self) -> None:
        self._last_us = 0

    def next(self) -> str:
        """Return a new ``ts`` strictly greater than every previous one."""
        now_us = int(time.time()) * 1_000_000
        self._last_us = max(now_us, self._last_us + 100)
        seconds, micros = divmod(self._last_us, 1_000_000)
        return f"{seconds}.{micros:06d}"


@dataclass
class User:
    """A workspace member (``users.info`` shape via :meth:`to_dict`)."""

    id: str
    name: str
    real_name: str = ""
    is_bot: bool = False
    is_admin: bool = False
    is_owner: bool = False

    def to_dict(self, team_id: str) -> dict[str, Any]:
        """Slack's user object (trimmed to the fields apps read)."""
        real = self.real_name or self.name.title()
        return {
            "id": self.id,
            "team_id": team_id,
            "name": self.name,
            "real_name": real,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_admin": self.is_admin or self.is_owner,  # owners are admins too
            "is_owner": self.is_owner,
            "tz": "UTC",
            "profile": {"display_name": self.name, "real_name": real, "team": team_id},
        }


@dataclass
class Channel:
    """A conversation: public/private channel or a DM (``D…``)."""

    id: str
    name: str
    members: set[str] = field(default_factory=set)  # user ids
    is_private: bool = False
    is_im: bool = False
    created: int = field(default_factory=lambda: int(time.time()))  # UTC epoch seconds

    @property
    def channel_type(self) -> str:
        """The ``channel_type`` field of Events API message events."""
        if self.is_im:
            return "im"
        return "group" if self.is_private else "channel"

    def to_dict(self, bot_user_id: str) -> dict[str, Any]:
        """Slack's conversation object as returned by ``conversations.info``."""
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private and not self.is_im,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_private": self.is_private or self.is_im,
            "is_archived": False,
            "is_general": False,
            "is_member": bot_user_id in self.members,
            "created": self.created,
            "num_members": len(self.members),
        }


@dataclass
class SlackFile:
    """An uploaded file. ``data`` is ``None`` until the bytes arrive at the upload URL."""

    id: str
    name: str
    title: str
    user: str
    base_url: str
    team_id: str
    data: bytes | None = None
    length: int | None = None
    alt_txt: str | None = None
    mimetype: str = "application/octet-stream"
    filetype: str = "binary"
    width: int | None = None
    height: int | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    shares: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    deleted: bool = False  # files.delete: gone; messages show it as a tombstone

    @property
    def size(self) -> int:
        """Size in bytes of the uploaded content."""
        return len(self.data or b"")

    @property
    def url_private(self) -> str:
        """Where the bytes live; needs ``Authorization: Bearer <token>`` like Slack."""
        return self._file_url("")

    @property
    def url_private_download(self) -> str:
        """Download variant of :attr:`url_private` (same auth rule)."""
        return self._file_url("download/")

    def _file_url(self, folder: str) -> str:
        """``<base>files-pri/<team>-<file id>/<folder><quoted name>`` (the server's routes)."""
        return f"{self.base_url}files-pri/{self.team_id}-{self.id}/{folder}{quote(self.name)}"

    def set_content(self, data: bytes) -> None:
        """Store the bytes and detect mimetype, filetype and image dimensions."""
        self.data = data
        guessed, _ = mimetypes.guess_type(self.name)
        self.mimetype = guessed or "application/octet-stream"
        ext = self.name.rsplit(".", 1)[-1].lower() if "." in self.name else ""
        self.filetype = {"jpeg": "jpg"}.get(ext, ext) or "binary"
        self.width = self.height = None
        if Image is None:  # pragma: no cover
            return
        try:
            with Image.open(io.BytesIO(data)) as img:
                self.width, self.height = img.size
                fmt = (img.format or "").lower()
                self.mimetype = Image.MIME.get(img.format or "", self.mimetype)
                self.filetype = {"jpeg": "jpg"}.get(fmt, fmt) or self.filetype
        except Exception:  # not an image: keep the name-based guess
            pass

    def share(self, channel: Channel, ts: str, thread_ts: str | None) -> None:
        """Record a share the way Slack's ``shares`` field does."""
        kind = "private" if channel.is_private or channel.is_im else "public"
        entry: dict[str, Any] = {"ts": ts, "channel_name": channel.name, "team_id": self.team_id}
        if thread_ts:
            entry["thread_ts"] = thread_ts
        self.shares.setdefault(kind, {}).setdefault(channel.id, []).append(entry)

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to the Slack file object (``f["name"]``) for tests."""
        return self.to_dict()[key]

    def to_dict(self) -> dict[str, Any]:
        """Slack's file object (``files.info``, message ``files``); a deleted file is a
        tombstone, ``{"id", "mode": "tombstone"}`` (https://api.slack.com/types/file)."""
        if self.deleted:
            return {"id": self.id, "mode": "tombstone"}
        out: dict[str, Any] = {
            "id": self.id,
            "created": self.created,
            "timestamp": self.created,
            "name": self.name,
            "title": self.title,
            "mimetype": self.mimetype,
            "filetype": self.filetype,
            "pretty_type": self.filetype.upper(),
            "user": self.user,
            "user_team": self.team_id,
            "editable": False,
            "size": self.size,
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": "public" in self.shares,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "url_private": self.url_private,
            "url_private_download": self.url_private_download,
            "permalink": f"{self.base_url}files/{self.user}/{self.id}/{quote(self.name)}",
            "permalink_public": f"{self.base_url}{self.team_id}-{self.id}-public",
            "file_access": "visible",
            "shares": self.shares,
            "channels": sorted(self.shares.get("public", {})),
            "groups": sorted(self.shares.get("private", {})),
            "ims": [],
            "has_rich_preview": False,
        }
        if self.alt_txt:
            out["alt_txt"] = self.alt_txt
        if self.width is not None:
            out["original_w"] = self.width
            out["original_h"] = self.height
            out["thumb_360"] = self.url_private
        return out


@dataclass
class Message:
    """A channel message as stored by the emulator (readable by tests)."""

    channel: str
    ts: str
    text: str = ""
    user: str | None = None
    bot_id: str | None = None
    app_id: str | None = None
    blocks: list[dict[str, Any]] = field(default_factory=list)
    files: list[SlackFile] = field(default_factory=list)
    subtype: str | None = None
    thread_ts: str | None = None
    edits: int = 0
    reply_broadcast: bool = False
    metadata: dict[str, Any] | None = None
    deleted: bool = False

    def __getitem__(self, key: str) -> Any:
        """Dict-style access to the stored fields (``msg["text"]``) for tests."""
        return getattr(self, key)

    @property
    def file_dicts(self) -> list[dict[str, Any]]:
        """The files as Slack file objects."""
        return [f.to_dict() for f in self.files]

    def to_dict(self, team_id: str) -> dict[str, Any]:
        """Slack's message object (``conversations.replies``, ``chat.postMessage``)."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        if self.user:
            out["user"] = self.user
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
        if self.subtype:
            out["subtype"] = self.subtype
        if self.blocks:
            out["blocks"] = self.blocks
        if self.files:
            out["files"] = self.file_dicts
            out["upload"] = self.bot_id is not None
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.edits:
            out["edited"] = {"user": self.user, "ts": self.ts}
        if self.metadata:
            out["metadata"] = self.metadata
        out["team"] = team_id
        return out


@dataclass
class Ephemeral:
    """An ephemeral message shown to one user (``chat.postEphemeral`` or a response_url)."""

    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    message_ts: str = ""
    source: str = "chat.postEphemeral"

    def __getitem__(self, key: str) -> Any:
        """Dict-style access (``e["text"]``) for tests."""
        return getattr(self, key)


class Workspace:
    """Everything the emulated workspace knows. Pure state: no I/O."""

    def __init__(self, team_id: str, team_domain: str, bot_user_id: str, bot_id: str) -> None:
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = "A0IMAGINE"
        self.base_url = "http://127.0.0.1/"
        self.clock = TsClock()
        self.users: dict[str, User] = {}
        self.channels: dict[str, Channel] = {}
        self.messages: dict[str, list[Message]] = {}
        self.files: dict[str, SlackFile] = {}
        self.ephemerals: list[Ephemeral] = []
        self._file_seq = itertools.count(1)
        self.usergroups: dict[str, UserGroup] = {}  # issue 10
        self.views: dict[str, View] = {}  # issue 10: open modals and Home tabs by view id
        self.home_views: dict[str, View] = {}  # issue 10: user id -> published Home tab
        # the manifest's features.app_home.home_tab_enabled (views.publish: not_enabled)
        self.home_tab_enabled = True
        self._view_seq = itertools.count(1)
        self.triggers: dict[str, tuple[str, float]] = {}  # issue 10: trigger -> (user, issued)
        self.add_user(bot_user_id, "imagine", is_bot=True)

    # -- setup -------------------------------------------------------------------------
    def add_user(self, user_id: str, name: str, *, is_bot: bool = False) -> User:
        """Add (or replace) a user."""
        user = User(user_id, name, is_bot=is_bot)
        self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        members: list[str] | None = None,
        *,
        bot_member: bool = True,
        is_private: bool = False,
    ) -> Channel:
        """Add a channel; the bot is a member when ``bot_member``."""
        chan = Channel(channel_id, name, set(members or []), is_private=is_private)
        if bot_member:
            chan.members.add(self.bot_user_id)
        self.channels[channel_id] = chan
        self.messages.setdefault(channel_id, [])
        return chan

    def open_dm(self, user_id: str) -> Channel:
        """The bot's DM channel with a user (what Slack does for ``channel=U…``)."""
        dm_id = "D" + user_id[1:]
        if dm_id not in self.channels:
            name = self.users[user_id].name if user_id in self.users else user_id
            chan = Channel(dm_id, name, {user_id, self.bot_user_id}, is_im=True)
            self.channels[dm_id] = chan
            self.messages.setdefault(dm_id, [])
        return self.channels[dm_id]

    def new_file(self, name: str, title: str | None, user: str) -> SlackFile:
        """Create a file record with a fresh ``F…`` id (content comes later)."""
        file_id = f"F0{next(self._file_seq):09d}"
        f = SlackFile(file_id, name, title or name, user, self.base_url, self.team_id)
        self.files[file_id] = f
        return f

    # -- messages ----------------------------------------------------------------------
    def resolve_channel(self, ref: str) -> Channel | None:
        """Find a channel by id, ``#name``/name, or a user id (the DM with that user)."""
        if ref in self.channels:
            return self.channels[ref]
        if ref in self.users and ref != self.bot_user_id:
            return self.open_dm(ref)
        name = ref.lstrip("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    def add_message(self, msg: Message) -> Message:
        """Append a message to its channel (ensures Slack-style ``block_id`` values)."""
        ensure_block_ids(msg.blocks)
        self.messages.setdefault(msg.channel, []).append(msg)
        return msg

    def message(self, channel: str, ts: str) -> Message | None:
        """The message with that ``ts`` in that channel, or ``None``."""
        for msg in self.messages.get(channel, []):
            if msg.ts == ts and not msg.deleted:
                return msg
        return None

    def replies(self, channel: str, thread_ts: str) -> list[Message]:
        """The thread root followed by its replies, oldest first (``conversations.replies``)."""
        return [
            m
            for m in self.messages.get(channel, [])
            if not m.deleted and (m.ts == thread_ts or m.thread_ts == thread_ts)
        ]

    def message_dict(self, msg: Message) -> dict[str, Any]:
        """A message as Slack returns it, with ``reply_count`` etc. on thread roots."""
        out = msg.to_dict(self.team_id)
        if msg.thread_ts is None:
            replies = [m for m in self.replies(msg.channel, msg.ts) if m.ts != msg.ts]
            if replies:
                out["thread_ts"] = msg.ts
                out["reply_count"] = len(replies)
                out["reply_users"] = sorted({m.user for m in replies if m.user})
                out["latest_reply"] = replies[-1].ts
        return out


def ensure_block_ids(blocks: list[dict[str, Any]]) -> None:
    """Slack assigns a short random ``block_id`` to every block that has none."""
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and "block_id" not in block:
            block["block_id"] = f"b{i:02d}{zlib.crc32(repr(block).encode()) % 10_000:04d}"


def truthy(value: Any) -> bool:
    """Slack's boolean parameters: ``true``, ``1`` (slack_sdk sends ``1``/``0``)."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


# -- team review (issue 10): user groups, modals and the Home tab ------------------------


@dataclass
class UserGroup:
    """A user group (``S…``), mentioned as ``<!subteam^S…|@handle>``."""

    id: str
    handle: str
    users: list[str] = field(default_factory=list)  # user ids, in order
    disabled: bool = False


@dataclass
class View:
    """A modal opened with ``views.open`` (``type: modal``) or a Home tab published with
    ``views.publish`` (``type: home``), as Slack's view object."""

    id: str
    user: str
    view: dict[str, Any]
    hash: str
    trigger_id: str | None = None
    closed: bool = False
    errors: dict[str, str] = field(default_factory=dict)

    def to_dict(self, team_id: str, app_id: str) -> dict[str, Any]:
        """Slack's view object (the payload's ``view``, the methods' answers)."""
        out = dict(self.view)
        out.update(
            {
                "id": self.id,
                "team_id": team_id,
                "app_id": app_id,
                "hash": self.hash,
                "state": {"values": {}},
                "root_view_id": self.id,
                "previous_view_id": None,
            }
        )
        out.setdefault("private_metadata", "")
        out.setdefault("callback_id", "")
        return out
