"""Block Kit views of team review (issue 10): the Request changes modal.

Limits from https://docs.slack.dev/reference/views/modal-views (title, submit and close at
most 24 characters; `private_metadata` at most 3,000) and
https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element
(`max_length` at most 3,000). The modal's `private_metadata` carries the ids the bot
wrote ("<generation id>:<image index>:<channel id>"); the submission checks them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot import mrkdwn
from bot.mrkdwn import escape
from core.review import MAX_COMMENT_CHARS

REQUEST_CHANGES_VIEW = "request_changes"
COMMENT_BLOCK = "comment"
COMMENT_ACTION = "comment"
METADATA = re.compile(r"([0-9]{1,18}):([0-9]{1,3}):([A-Z0-9]{1,20})", re.ASCII)


@dataclass(frozen=True)
class ChangeTarget:
    """What a Request changes modal is about: generation, image (0-based), channel."""

    generation_id: int
    index: int
    channel_id: str

    def metadata(self) -> str:
        """The modal's `private_metadata`."""
        return f"{self.generation_id}:{self.index}:{self.channel_id}"

    @classmethod
    def parse(cls, metadata: Any) -> ChangeTarget | None:
        """Read `private_metadata` back; None when it is not ours."""
        found = METADATA.fullmatch(metadata) if isinstance(metadata, str) else None
        return cls(int(found[1]), int(found[2]), found[3]) if found else None


def _plain(text: str, limit: int = 24) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit]}


def request_changes_modal(target: ChangeTarget, label: str) -> dict[str, Any]:
    """The modal asking for a comment on image `label` ("v1 image 1")."""
    intro = (
        f"What should change in *{escape(label)}*? Your comment is posted in the thread and "
        "becomes the next version, as if you had replied there."
    )
    return {
        "type": "modal",
        "callback_id": REQUEST_CHANGES_VIEW,
        "private_metadata": target.metadata(),
        "title": _plain("Request changes"),
        "submit": _plain("Send"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": mrkdwn.clip(intro, mrkdwn.SECTION_TEXT)},
            },
            {
                "type": "input",
                "block_id": COMMENT_BLOCK,
                "label": _plain("Comment", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_ACTION,
                    "multiline": True,
                    "max_length": MAX_COMMENT_CHARS,
                    "placeholder": _plain("make the sky stormier", 150),
                },
            },
        ],
    }


def submitted_text(view: dict[str, Any], block_id: str, action_id: str) -> str:
    """The value typed into a plain_text_input of a submitted view ("" when absent)."""
    values = (view.get("state") or {}).get("values") or {}
    value = ((values.get(block_id) or {}).get(action_id) or {}).get("value")
    return value if isinstance(value, str) else ""
