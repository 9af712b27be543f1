"""A channel's review policy as plain data, and the rule that judges an Approve click.

Kept apart from the use cases (`core.review`) so that `core.sessions.approve`, the view
loader and the Slack side can all read it without import cycles. No Slack here: reviewers
are opaque user ids and user group ids; which groups a person is in is resolved by the
caller (Slack's `usergroups.users.list`) when a click is judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MIN_APPROVALS = 1
MAX_APPROVALS = 5
MAX_REVIEWERS = 20  # users + groups in one policy: enough for a team, small enough to show


class ApprovalRefusal(StrEnum):
    """Why an Approve click was not counted."""

    NOT_REVIEWER = "not_reviewer"  # the policy names reviewers and the clicker is none of them
    SELF_APPROVAL = "self_approval"  # the requester clicked and self-approval is off


@dataclass(frozen=True)
class Policy:
    """A channel's review policy.

    `reviewer_users` / `reviewer_groups`: who may approve (both empty: anyone in the
    channel); `approvals_required`: distinct approvals an image needs (1-5);
    `self_approval`: whether the person who asked for the image may approve it;
    `gallery_channel_id`: where fully approved images are published (None: nowhere).
    The default is today's behaviour: anyone, one approval, self-approval on, no gallery.
    """

    reviewer_users: tuple[str, ...] = ()
    reviewer_groups: tuple[str, ...] = ()
    approvals_required: int = 1
    self_approval: bool = True
    gallery_channel_id: str | None = None
    is_default: bool = field(default=False, compare=False)

    @property
    def has_reviewers(self) -> bool:
        """True when only named people (users or group members) may approve."""
        return bool(self.reviewer_users or self.reviewer_groups)

    def to_json(self) -> dict[str, Any]:
        """The policy as a JSON object (audit rows, exports)."""
        return {
            "reviewer_users": list(self.reviewer_users),
            "reviewer_groups": list(self.reviewer_groups),
            "approvals_required": self.approvals_required,
            "self_approval": self.self_approval,
            "gallery_channel_id": self.gallery_channel_id,
        }


DEFAULT_POLICY = Policy(is_default=True)


class PolicyInvalid(ValueError):
    """A policy that cannot be saved; `field` names the part to change ("approvals",
    "reviewers", "gallery") and the message says what is allowed."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


def validate(policy: Policy, channel_id: str) -> Policy:
    """Check a policy before it is stored; returns it (reviewers de-duplicated, in order).

    Raises PolicyInvalid: approvals outside 1-5, more than MAX_REVIEWERS reviewers, more
    approvals than named people when only people (no groups) are named, or the gallery
    being the channel itself.
    """
    users = tuple(dict.fromkeys(policy.reviewer_users))
    groups = tuple(dict.fromkeys(policy.reviewer_groups))
    required = policy.approvals_required
    if not MIN_APPROVALS <= required <= MAX_APPROVALS:
        raise PolicyInvalid(
            "approvals",
            f"Approvals must be a whole number from {MIN_APPROVALS} to {MAX_APPROVALS}.",
        )
    if len(users) + len(groups) > MAX_REVIEWERS:
        raise PolicyInvalid("reviewers", f"Name at most {MAX_REVIEWERS} reviewers and groups.")
    if users and not groups and required > len(users):
        raise PolicyInvalid(
            "approvals",
            f"{required} approvals need at least {required} reviewers; "
            f"{len(users)} {'is' if len(users) == 1 else 'are'} named.",
        )
    if policy.gallery_channel_id == channel_id:
        raise PolicyInvalid("gallery", "The gallery must be another channel than this one.")
    return Policy(users, groups, required, policy.self_approval, policy.gallery_channel_id)


def judge(
    policy: Policy, user_id: str, requesters: tuple[str, ...], user_groups: frozenset[str]
) -> ApprovalRefusal | None:
    """Whether `user_id` may approve an image asked for by `requesters` (the person who
    asked for the version and the session's owner) under `policy`. `user_groups` are the
    policy's groups the user is a member of (resolved by the caller). None = allowed."""
    if not policy.self_approval and user_id in requesters:
        return ApprovalRefusal.SELF_APPROVAL
    if policy.has_reviewers:
        named = user_id in policy.reviewer_users
        if not named and not (user_groups & set(policy.reviewer_groups)):
            return ApprovalRefusal.NOT_REVIEWER
    return None
