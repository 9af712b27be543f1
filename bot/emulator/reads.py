"""Reading messages back like Slack: time windows, pages and metadata.

conversations.history (https://docs.slack.dev/reference/methods/conversations.history) and
conversations.replies (https://docs.slack.dev/reference/methods/conversations.replies):
`oldest` / `latest` bound the window (exclusive unless `inclusive`), `limit` pages it
(`has_more`, `response_metadata.next_cursor`), and message metadata is returned only with
`include_all_metadata=true` (https://docs.slack.dev/messaging/message-metadata).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from .state import Message, Workspace, truthy

DEFAULT_LIMIT = 100
MAX_LIMIT = 999


class BadArguments(ValueError):
    """An argument Slack would refuse (`invalid_cursor`, `invalid_limit`, `invalid_ts_…`)."""


def _ts(value: Any, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise BadArguments(f"invalid_ts_{name}") from exc


def in_window(msgs: Sequence[Message], params: dict[str, Any]) -> list[Message]:
    """The messages between `oldest` and `latest` (exclusive unless `inclusive`)."""

    oldest, latest = _ts(params.get("oldest"), "oldest"), _ts(params.get("latest"), "latest")
    inclusive = truthy(params.get("inclusive"))
    out = []
    for msg in msgs:
        ts = float(msg.ts)
        if oldest is not None and (ts < oldest or (ts == oldest and not inclusive)):
            continue
        if latest is not None and (ts > latest or (ts == latest and not inclusive)):
            continue
        out.append(msg)
    return out


def _offset(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        text = base64.b64decode(str(cursor), validate=True).decode()
        return int(text.removeprefix("offset:"))
    except ValueError as exc:
        raise BadArguments("invalid_cursor") from exc


def page(
    ws: Workspace, msgs: Sequence[Message], params: dict[str, Any], *, head: int = 0
) -> dict[str, Any]:
    """One page of `msgs` as Slack returns it; the first `head` messages (a thread's root)
    are on every page and do not count against `limit`."""

    try:
        limit = int(params.get("limit") or DEFAULT_LIMIT)
    except (TypeError, ValueError) as exc:
        raise BadArguments("invalid_limit") from exc
    limit = max(1, min(limit, MAX_LIMIT))
    start = _offset(params.get("cursor"))
    fixed, rest = list(msgs[:head]), list(msgs[head:])
    chunk = rest[start : start + limit]
    has_more = start + limit < len(rest)
    cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if has_more else ""
    with_metadata = truthy(params.get("include_all_metadata"))
    out = []
    for msg in fixed + chunk:
        data = ws.message_dict(msg)
        if not with_metadata:
            data.pop("metadata", None)
        out.append(data)
    return {"messages": out, "has_more": has_more, "response_metadata": {"next_cursor": cursor}}
