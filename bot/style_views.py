"""The *Save style* modal (issue 12): a name and the style text (prefilled with the
version's prompt), for image "<generation id>:<index>" of a result.

Limits from https://docs.slack.dev/reference/views/modal-views (title, submit, close at
most 24 characters; `private_metadata` at most 3,000) and
https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element
(`initial_value`, `max_length` at most 3,000). `private_metadata` carries the target as
`bot.review_views.ChangeTarget` writes it; the submission checks it again.
"""

from __future__ import annotations

from typing import Any

from bot import mrkdwn
from bot.mrkdwn import escape
from bot.review_views import ChangeTarget
from core.styles import MAX_STYLE_TEXT

SAVE_STYLE_VIEW = "save_style"
NAME_BLOCK = "style_name"
NAME_ACTION = "style_name"
TEXT_BLOCK = "style_text"
TEXT_ACTION = "style_text"
NAME_CHARS = 40  # core.flags.STYLE_NAME: up to 40 characters


def _plain(text: str, limit: int = 24) -> dict[str, Any]:
    return {"type": "plain_text", "text": text[:limit]}


def save_style_modal(target: ChangeTarget, label: str, prompt: str) -> dict[str, Any]:
    """The modal saving a style from image `label` ("v1 image 1") with the text field
    prefilled with `prompt` (the version's prompt, at most MAX_STYLE_TEXT characters)."""
    intro = (
        f"Save the look of *{escape(label)}* as a brand style: it becomes one of the style's "
        "reference images. Keep only the words that describe the look in the text."
    )
    text_input: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": TEXT_ACTION,
        "multiline": True,
        "max_length": MAX_STYLE_TEXT,
    }
    if prompt:
        text_input["initial_value"] = prompt[:MAX_STYLE_TEXT]
    return {
        "type": "modal",
        "callback_id": SAVE_STYLE_VIEW,
        "private_metadata": target.metadata(),
        "title": _plain("Save style"),
        "submit": _plain("Save"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": mrkdwn.clip(intro, mrkdwn.SECTION_TEXT)},
            },
            {
                "type": "input",
                "block_id": NAME_BLOCK,
                "label": _plain("Name", 2000),
                "hint": _plain("Letters, digits, - and _ (used as --style NAME)", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": NAME_ACTION,
                    "max_length": NAME_CHARS,
                    "placeholder": _plain("brand-pastel", 150),
                },
            },
            {
                "type": "input",
                "block_id": TEXT_BLOCK,
                "label": _plain("Style text", 2000),
                "element": text_input,
            },
        ],
    }
