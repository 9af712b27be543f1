"""``app_mention`` events: Slack sends one when a message mentions the app's bot user, in
addition to the ``message`` event (https://api.slack.com/events/app_mention)."""

from __future__ import annotations

from typing import Any

from .state import Channel, Message, Workspace


def app_mention_event(ws: Workspace, msg: Message, chan: Channel) -> dict[str, Any]:
    """The ``app_mention`` event of a stored message, in Slack's documented shape:
    ``type``, ``user``, ``text``, ``ts``, ``channel``, ``event_ts`` (and ``thread_ts`` for
    a message in a thread), plus ``team`` and the ``files`` it had."""
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": msg.user,
        "text": msg.text,
        "ts": msg.ts,
        "team": ws.team_id,
        "channel": chan.id,
        "event_ts": msg.ts,
    }
    if msg.thread_ts:
        event["thread_ts"] = msg.thread_ts
        parent = ws.message(chan.id, msg.thread_ts)
        if parent is not None and parent.user:
            event["parent_user_id"] = parent.user
    if msg.files:
        event["files"] = msg.file_dicts
    return event
