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
from core.policy import Policy
from core.review import MAX_COMMENT_CHARS

REQUEST_CHANGES_VIEW = "request_changes"
COMMENT_BLOCK = "comment"
COMMENT_ACTION = "comment"
METADATA = re.compile(r"([0-9]{1,18}):([0-9]{1,3}):([A-Z0-9]{1,20})(:home)?", re.ASCII)


@dataclass(frozen=True)
class ChangeTarget:
    """What a Request changes modal (or a Home tab button) is about: generation, image
    (0-based), channel, and whether the click came from the Home tab (refresh it after)."""

    generation_id: int
    index: int
    channel_id: str
    from_home: bool = False

    def metadata(self) -> str:
        """The modal's `private_metadata` (also the Home tab buttons' `value`):
        "<generation id>:<index>:<channel id>[:home]"."""
        home = ":home" if self.from_home else ""
        return f"{self.generation_id}:{self.index}:{self.channel_id}{home}"

    @classmethod
    def parse(cls, metadata: Any) -> ChangeTarget | None:
        """Read `private_metadata` back; None when it is not ours."""
        found = METADATA.fullmatch(metadata) if isinstance(metadata, str) else None
        if not found or int(found[1]) < 1:
            return None
        return cls(int(found[1]), int(found[2]), found[3], bool(found[4]))


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


SETTINGS_VIEW = "review_settings"
REVIEWERS_BLOCK = "reviewers"
APPROVALS_BLOCK = "approvals"
SELF_BLOCK = "self_approval"
GALLERY_BLOCK = "gallery"
FIELD_BLOCKS = {
    "reviewers": REVIEWERS_BLOCK,
    "approvals": APPROVALS_BLOCK,
    "gallery": GALLERY_BLOCK,
}
"""Which block shows a core.policy.PolicyInvalid `field` (response_action: errors)."""
CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{1,20}", re.ASCII)


def settings_modal(policy: Policy, channel_id: str) -> dict[str, Any]:
    """The `/imagine settings` modal for a channel's review policy: reviewers (a users
    select; user groups are kept as they are and set with `/imagine review set`), approvals
    (a number input, 1-5), self-approval (a checkbox) and the gallery (a channel select)."""
    self_option = {"text": _plain("The requester may approve their own image", 75), "value": "on"}
    reviewers: dict[str, Any] = {"type": "multi_users_select", "action_id": REVIEWERS_BLOCK}
    if policy.reviewer_users:
        reviewers["initial_users"] = list(policy.reviewer_users)
    gallery: dict[str, Any] = {"type": "channels_select", "action_id": GALLERY_BLOCK}
    if policy.gallery_channel_id:
        gallery["initial_channel"] = policy.gallery_channel_id
    checkbox: dict[str, Any] = {"type": "checkboxes", "action_id": SELF_BLOCK}
    checkbox["options"] = [self_option]
    if policy.self_approval:
        checkbox["initial_options"] = [self_option]
    groups = ", ".join(f"<!subteam^{g}>" for g in policy.reviewer_groups) or "none"
    return {
        "type": "modal",
        "callback_id": SETTINGS_VIEW,
        "private_metadata": channel_id,
        "title": _plain("Review settings"),
        "submit": _plain("Save"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Review rules for <#{channel_id}>. User group reviewers: {groups}.",
                },
            },
            _input(REVIEWERS_BLOCK, "Reviewers (empty: anyone)", reviewers),
            _input(
                APPROVALS_BLOCK,
                "Approvals needed",
                {
                    "type": "number_input",
                    "action_id": APPROVALS_BLOCK,
                    "is_decimal_allowed": False,
                    "min_value": "1",
                    "max_value": "5",
                    "initial_value": str(policy.approvals_required),
                },
                optional=False,
            ),
            _input(SELF_BLOCK, "Self-approval", checkbox),
            _input(GALLERY_BLOCK, "Gallery channel", gallery),
        ],
    }


def _input(block_id: str, label: str, element: dict[str, Any], optional: bool = True) -> dict:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": _plain(label, 2000),
        "element": element,
    }


def settings_values(view: dict[str, Any], current: Policy) -> Policy | str:
    """The policy a submitted settings modal describes (groups kept from `current`), or the
    error text of the approvals block when its value is not a whole number."""
    values = (view.get("state") or {}).get("values") or {}

    def get(block: str) -> dict[str, Any]:
        found = (values.get(block) or {}).get(block)
        return found if isinstance(found, dict) else {}

    users = tuple(u for u in get(REVIEWERS_BLOCK).get("selected_users") or [] if isinstance(u, str))
    raw = str(get(APPROVALS_BLOCK).get("value") or "")
    if not raw.isdigit():
        return "Enter a whole number from 1 to 5."
    selected = get(SELF_BLOCK).get("selected_options") or []
    self_ok = any(isinstance(o, dict) and o.get("value") == "on" for o in selected)
    gallery = get(GALLERY_BLOCK).get("selected_channel")
    gallery_id = gallery if isinstance(gallery, str) and CHANNEL_ID.fullmatch(gallery) else None
    return Policy(users, current.reviewer_groups, int(raw), self_ok, gallery_id)
