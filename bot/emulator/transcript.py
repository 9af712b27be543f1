"""Plain-text rendering of threads and ephemerals, roughly as a person sees them in Slack."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from .state import Ephemeral, Message, SlackFile, View, Workspace

INDENT = "    "
MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
CHANNEL = re.compile(r"<#([CGD][A-Z0-9]+)(?:\|[^>]*)?>")
GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)(?:\|[^>]*)?>")
LINK = re.compile(r"<(https?://[^|>]+)\|([^>]*)>")
DATE = re.compile(r"<!date\^([0-9]+)\^[^|>]*\|[^>]*>")


def _text_of(obj: Any) -> str:
    """The text of a text object, a rich_text element tree or a plain string."""
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        return ""
    if "text" in obj and isinstance(obj["text"], str | dict):
        return _text_of(obj["text"])
    if obj.get("type") in ("user", "channel"):
        return f"<@{obj.get('user_id') or obj.get('channel_id')}>"
    return "".join(_text_of(el) for el in obj.get("elements") or [])


def _button(el: dict[str, Any]) -> str:
    return f"[ {_text_of(el.get('text'))} ]"


def _mentions(ws: Workspace, line: str) -> str:
    """Show ``<@U123>``, ``<#C123>`` and ``<!subteam^S123>`` as ``@name``, ``#name`` and
    ``@handle``, and ``<url|text>`` links as ``text ↗``, as Slack renders them."""

    def name(m: re.Match[str]) -> str:
        user = ws.users.get(m.group(1))
        return f"@{user.name}" if user else m.group(0)

    def channel(m: re.Match[str]) -> str:
        chan = ws.channels.get(m.group(1))
        return f"#{chan.name}" if chan else m.group(0)

    def group(m: re.Match[str]) -> str:
        found = ws.usergroups.get(m.group(1))
        return f"@{found.handle}" if found else m.group(0)

    line = GROUP.sub(group, CHANNEL.sub(channel, MENTION.sub(name, line)))
    line = DATE.sub(_date, line)
    return _unescape(LINK.sub(lambda m: f"{m.group(2)} ↗", line))


def _date(m: re.Match[str]) -> str:
    """``<!date^…>`` in UTC (Slack shows it in the reader's time zone)."""
    return datetime.fromtimestamp(int(m.group(1)), UTC).strftime("%b %d at %H:%M UTC")


def render_line(ws: Workspace, line: str) -> str:
    """One line of mrkdwn as Slack shows it (see `_mentions`)."""
    return _mentions(ws, line)


def _unescape(line: str) -> str:
    """Slack shows ``&lt;``, ``&gt;`` and ``&amp;`` as ``<``, ``>`` and ``&`` (and decodes
    no other entity): https://docs.slack.dev/messaging/formatting-message-text/#escaping"""
    return line.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def render_blocks(blocks: list[dict[str, Any]]) -> list[str]:
    """One or more lines per block: sections, context, images, buttons, dividers."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            lines.append(f"# {_text_of(block.get('text'))}")
        elif kind == "section":
            if block.get("text"):
                lines.extend(_text_of(block["text"]).splitlines())
            for fld in block.get("fields") or []:
                lines.append(f"  {_text_of(fld)}")
            acc = block.get("accessory")
            if isinstance(acc, dict) and acc.get("type") == "button":
                lines.append(_button(acc))
            elif isinstance(acc, dict) and acc.get("type") == "image":
                lines.append(f"🖼  {acc.get('alt_text', 'image')}")
        elif kind == "context":
            parts = [
                f"🖼 {el.get('alt_text', '')}".strip() if el.get("type") == "image" else _text_of(el)
                for el in block.get("elements") or []
            ]
            lines.append("· " + "  ".join(p for p in parts if p))
        elif kind == "image":
            title = _text_of(block.get("title")) or block.get("alt_text", "image")
            src = block.get("image_url") or (block.get("slack_file") or {}).get("id", "")
            lines.append(f"🖼  {title}  <{src}>")
        elif kind == "actions":
            elements = block.get("elements") or []
            shown = [
                _button(el) if el.get("type") == "button" else f"<{el.get('type')}>"
                for el in elements
            ]
            lines.append("  ".join(shown))
        elif kind == "divider":
            lines.append("─" * 24)
        elif kind == "rich_text":
            lines.extend(_text_of(block).splitlines())
        elif kind == "input":
            lines.extend(_input(block))
        else:
            lines.append(f"<{kind} block>")
    return lines


def _input(block: dict[str, Any]) -> list[str]:
    """An input block: its label, then the field as a person sees it (initial values)."""
    el = block.get("element") or {}
    label = _text_of(block.get("label")) + ("" if not block.get("optional") else " (optional)")
    kind = el.get("type")
    if kind == "checkboxes":
        chosen = {o.get("value") for o in el.get("initial_options") or []}
        boxes = [
            f"{'☑' if o.get('value') in chosen else '☐'} {_text_of(o.get('text'))}"
            for o in el.get("options") or []
        ]
        return [f"{label}:", *(f"  {box}" for box in boxes)]
    if kind in ("multi_users_select", "users_select"):
        shown = ", ".join(
            f"<@{u}>" for u in el.get("initial_users") or [el.get("initial_user")] if u
        )
    elif kind in ("channels_select", "conversations_select"):
        chan = el.get("initial_channel") or el.get("initial_conversation")
        shown = f"<#{chan}>" if chan else ""
    else:
        shown = str(el.get("initial_value") or _text_of(el.get("placeholder")) or "")
    arrow = " ▾" if kind and "select" in kind else ""
    return [f"{label}: [ {shown or ' '}{arrow} ]"]


def render_view(ws: Workspace, view: View) -> str:
    """A modal (title, fields, errors, its buttons) or a Home tab, as the person sees it."""
    data = view.view
    name = ws.users[view.user].name if view.user in ws.users else view.user
    if data.get("type") == "home":
        title = f"Home tab of @{name}"
    else:
        title = f"Modal “{_text_of(data.get('title'))}” (open for @{name})"
    parts = [title, "═" * len(title)]
    parts.extend(
        INDENT + _mentions(ws, line) if line else ""
        for line in render_blocks(data.get("blocks") or [])
    )
    for block_id, error in view.errors.items():
        parts.append(f"{INDENT}⚠ {block_id}: {error}")
    buttons = [_text_of(data.get(key)) for key in ("close", "submit") if data.get(key)]
    if buttons:
        parts.append(INDENT + "  ".join(f"[ {b} ]" for b in buttons))
    return "\n".join(parts).rstrip() + "\n"


def render_file(f: SlackFile) -> str:
    """``📎 name (WxH, N bytes)``."""
    dims = f"{f.width}×{f.height}, " if f.width is not None else ""
    return f"📎 {f.name} ({dims}{f.size} bytes)"


def _author(ws: Workspace, user: str | None, bot: bool) -> str:
    if bot:
        return "bot"
    u = ws.users.get(user or "")
    return f"@{u.name}" if u else f"@{user}"


def render_message(ws: Workspace, msg: Message) -> list[str]:
    """The author line and the body of one message."""
    head = _author(ws, msg.user, msg.bot_id is not None)
    if msg.edits:
        head += f"  (edited {msg.edits}×)"
    body = render_blocks(msg.blocks) if msg.blocks else msg.text.splitlines()
    if msg.blocks and msg.files and msg.text:
        body = [*msg.text.splitlines(), *body]
    body += [render_file(f) for f in msg.files]
    return [head] + [INDENT + _mentions(ws, line) if line else "" for line in body]


def render_thread(ws: Workspace, channel: str, thread_ts: str) -> str:
    """The whole thread, root first, separated by blank lines."""
    chan = ws.channels.get(channel)
    msgs = ws.replies(channel, thread_ts)
    title = f"#{chan.name if chan else channel} · thread {thread_ts}"
    parts = [title, "═" * len(title)]
    if not msgs:
        parts.append("(no such thread)")
    for i, msg in enumerate(msgs):
        if i == 1:
            replies = len(msgs) - 1
            parts.append(f"└─ {replies} repl{'y' if replies == 1 else 'ies'}")
        parts.extend(render_message(ws, msg))
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def render_ephemerals(ws: Workspace, user_id: str) -> str:
    """Every ephemeral message one user has seen, oldest first."""
    mine: list[Ephemeral] = [e for e in ws.ephemerals if e.user == user_id]
    name = ws.users[user_id].name if user_id in ws.users else user_id
    parts = [f"Only visible to @{name}", "═" * (18 + len(name))]
    if not mine:
        parts.append("(nothing)")
    for e in mine:
        chan = ws.channels.get(e.channel)
        where = f"#{chan.name}" if chan else e.channel
        if e.thread_ts:
            where += f" (thread {e.thread_ts})"
        parts.append(f"bot → {where}  [{e.source}]")
        body = render_blocks(e.blocks) if e.blocks else e.text.splitlines()
        parts.extend(INDENT + _mentions(ws, line) if line else "" for line in body)
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
