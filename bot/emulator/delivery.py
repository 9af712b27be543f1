"""Signed deliveries to the app, built and signed exactly as Slack does.

Signing follows https://api.slack.com/authentication/verifying-requests-from-slack:
``X-Slack-Signature: v0=hex(HMAC-SHA256(secret, "v0:{timestamp}:{raw body}"))``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .state import Channel, Message, User, Workspace

VERIFICATION_TOKEN = "emulatorVerificationToken"


def sign(signing_secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature for ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def signed_headers(
    signing_secret: str,
    body: bytes,
    content_type: str,
    timestamp: str | None = None,
    signature: str | None = None,
) -> dict[str, str]:
    """Headers of a Slack delivery: content type, timestamp and signature."""
    ts = timestamp if timestamp is not None else str(int(time.time()))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature if signature is not None else sign(signing_secret, ts, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }


@dataclass
class Delivery:
    """The app's answer to one delivery: HTTP ``status``, raw ``text``, parsed ``json()``.

    Over Socket Mode, ``status`` is 200 when the envelope was acknowledged in time and
    ``text`` is the ack's ``payload`` as JSON; otherwise ``status`` is 0 and ``error`` says
    why. ``body`` is what was sent (the HTTP body, or the envelope).
    """

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)
    kind: str = ""
    body: bytes = b""
    error: str = ""

    def json(self) -> Any:
        """The response body parsed as JSON (``None`` when empty or not JSON)."""
        try:
            return json.loads(self.text) if self.text else None
        except ValueError:
            return None


# A response_url takes up to 5 messages within 30 minutes of the interaction
# (https://docs.slack.dev/interactivity/handling-user-interaction#message_responses).
RESPONSE_URL_USES = 5
RESPONSE_URL_SECONDS = 30 * 60


@dataclass
class ResponseUrl:
    """Context of one ``response_url`` (Slack allows `RESPONSE_URL_USES` uses within
    `RESPONSE_URL_SECONDS` of the interaction); `issued` is its time.monotonic()."""

    channel: str
    user: str
    message_ts: str | None = None
    thread_ts: str | None = None
    uses: int = 0
    issued: float = field(default_factory=time.monotonic)

    def refusal(self) -> str | None:
        """Why Slack would refuse one more message here (``used_url``, ``expired_url``:
        HTTP 404), or None; counts the use."""
        self.uses += 1
        if time.monotonic() - self.issued > RESPONSE_URL_SECONDS:
            return "expired_url"
        if self.uses > RESPONSE_URL_USES:
            return "used_url"
        return None


def user_ref(user: User, team_id: str) -> dict[str, Any]:
    """The ``user`` object of interactivity payloads."""
    return {"id": user.id, "username": user.name, "name": user.name, "team_id": team_id}


def slash_command_form(
    ws: Workspace,
    user: User,
    chan: Channel,
    command: str,
    text: str,
    response_url: str,
    trigger_id: str,
) -> dict[str, str]:
    """The form fields of a slash command request."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "team_domain": ws.team_domain,
        "channel_id": chan.id,
        "channel_name": "directmessage" if chan.is_im else chan.name,
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": ws.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id,
    }


def find_button(
    msg: Message, action_id: str, value: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (block, button) with that ``action_id`` (and ``value``) in a message's blocks."""
    seen: list[str] = []
    for block in msg.blocks:
        candidates: list[dict[str, Any]] = []
        if block.get("type") == "actions":
            candidates = list(block.get("elements") or [])
        elif block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            candidates = [block["accessory"]]
        for el in candidates:
            if el.get("type") != "button":
                continue
            seen.append(f"{el.get('action_id')}={el.get('value')!r}")
            if el.get("action_id") == action_id and (value is None or el.get("value") == value):
                return block, el
    wanted = f"{action_id}={value!r}" if value is not None else action_id
    raise LookupError(
        f"no button {wanted} in message {msg.ts} of {msg.channel}; buttons there: {seen or 'none'}"
    )


def find_overflow_option(
    msg: Message, action_id: str, value: str
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The (block, overflow element, option) with that ``action_id`` and option ``value``
    in a message's actions blocks; ``LookupError`` when there is none."""
    for block in msg.blocks:
        if block.get("type") != "actions":
            continue
        for el in block.get("elements") or []:
            if el.get("type") != "overflow" or el.get("action_id") != action_id:
                continue
            for option in el.get("options") or []:
                if option.get("value") == value:
                    return block, el, option
    raise LookupError(f"no overflow {action_id} option {value!r} in message {msg.ts}")


def button_action(block: dict[str, Any], button: dict[str, Any]) -> dict[str, Any]:
    """The ``actions[]`` entry of a button click (its value and style when it has them)."""
    action: dict[str, Any] = {
        "action_id": button.get("action_id"),
        "block_id": block.get("block_id"),
        "text": button.get("text"),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    for key in ("value", "style"):
        if key in button:
            action[key] = button[key]
    return action


def block_actions_payload(
    ws: Workspace,
    user: User,
    chan: Channel,
    msg: Message,
    block: dict[str, Any],
    button: dict[str, Any],
    response_url: str,
    trigger_id: str,
) -> dict[str, Any]:
    """A ``block_actions`` interactivity payload for a button click."""
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": msg.ts,
        "channel_id": chan.id,
        "is_ephemeral": False,
    }
    if msg.thread_ts:
        container["thread_ts"] = msg.thread_ts
    payload = _actions_envelope(ws, user, container, trigger_id, button_action(block, button))
    payload["channel"] = {"id": chan.id, "name": chan.name}
    payload["message"] = ws.message_dict(msg)
    payload["state"] = {"values": {}}
    payload["response_url"] = response_url
    return payload


def _actions_envelope(
    ws: Workspace,
    user: User,
    container: dict[str, Any],
    trigger_id: str,
    action: dict[str, Any],
) -> dict[str, Any]:
    """The fields every ``block_actions`` payload has."""
    return {
        "type": "block_actions",
        "user": user_ref(user, ws.team_id),
        "api_app_id": ws.app_id,
        "token": VERIFICATION_TOKEN,
        "container": container,
        "trigger_id": trigger_id,
        "team": {"id": ws.team_id, "domain": ws.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "actions": [action],
    }


def view_actions_payload(
    ws: Workspace,
    user: User,
    view: dict[str, Any],
    block: dict[str, Any],
    button: dict[str, Any],
    trigger_id: str,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button in a view (a Home tab or a modal): the
    container is the view, the payload carries the ``view`` and has no ``channel``,
    ``message`` or ``response_url``
    (https://docs.slack.dev/reference/interaction-payloads/block_actions-payload)."""
    container = {"type": "view", "view_id": view["id"]}
    payload = _actions_envelope(ws, user, container, trigger_id, button_action(block, button))
    payload["view"] = view
    return payload


def event_callback(ws: Workspace, event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """An Events API ``event_callback`` envelope around ``event``."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "context_team_id": ws.team_id,
        "context_enterprise_id": None,
        "api_app_id": ws.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": ws.team_id,
                "user_id": ws.bot_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{event_id}",
    }


def message_event(ws: Workspace, msg: Message, chan: Channel) -> dict[str, Any]:
    """A ``message`` event for a stored message (user or bot, with files)."""
    event = ws.message_dict(msg)
    event.pop("reply_count", None)
    event.pop("reply_users", None)
    event.pop("latest_reply", None)
    if msg.thread_ts is None:
        event.pop("thread_ts", None)
    else:
        parent = ws.message(msg.channel, msg.thread_ts)
        if parent is not None and parent.user:
            event["parent_user_id"] = parent.user
    if msg.bot_id is None:
        event["client_msg_id"] = str(uuid.uuid4())
    else:
        event["bot_profile"] = {
            "id": ws.bot_id,
            "app_id": ws.app_id,
            "name": ws.users[ws.bot_user_id].name,
            "team_id": ws.team_id,
            "deleted": False,
        }
    event["channel"] = chan.id
    event["event_ts"] = msg.ts
    event["channel_type"] = chan.channel_type
    return event


def message_changed_event(
    ws: Workspace, previous: dict[str, Any], msg: Message, chan: Channel
) -> dict[str, Any]:
    """A ``message`` event with ``subtype: message_changed`` for an edit."""
    ts = ws.clock.next()
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": ws.message_dict(msg),
        "previous_message": previous,
        "channel": chan.id,
        "hidden": True,
        "ts": ts,
        "event_ts": ts,
        "channel_type": chan.channel_type,
    }
