"""The text form of `/imagine review`: parse it into plain data for `core.review`.

With the manifest's `should_escape: true` Slack sends mentions in a command's text as
`<@U…|name>` (people), `<!subteam^S…|@handle>` (user groups) and `<#C…|name>` (channels)
(https://docs.slack.dev/interactivity/implementing-slash-commands/#escaping). Those are
the only ways to name a reviewer or a gallery here: a plain "@carol" is not resolved by
Slack, so it is refused with what to do instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from core.policy import Policy

USER = re.compile(r"<@([UW][A-Z0-9]{1,20})(?:\|[^<>]*)?>")
GROUP = re.compile(r"<!subteam\^([A-Z0-9]{1,20})(?:\|[^<>]*)?>")
CHANNEL = re.compile(r"<#([CG][A-Z0-9]{1,20})(?:\|[^<>]*)?>")
TOKEN = re.compile(r"<[^<>]*>|\S+")
CLEAR_REVIEWERS = ("anyone", "everyone", "none")
ON = ("on", "yes", "true", "allow", "allowed")
OFF = ("off", "no", "false", "deny", "denied")
OPTIONS = ("--reviewers", "--approvals", "--self-approval", "--gallery")


class ReviewSyntaxError(ValueError):
    """The text cannot be understood; the message says what to change."""


@dataclass(frozen=True)
class ReviewCommand:
    """`/imagine review …`: `action` is "show", "off" or "set"; a set carries `edit`."""

    action: str
    edit: PolicyEdit | None = None


@dataclass(frozen=True)
class PolicyEdit:
    """The parts of a policy a `set` changes (None: keep the current value)."""

    reviewer_users: tuple[str, ...] | None = None
    reviewer_groups: tuple[str, ...] | None = None
    approvals_required: int | None = None
    self_approval: bool | None = None
    gallery_channel_id: str | None = None
    clear_gallery: bool = False

    def apply(self, current: Policy) -> Policy:
        """The policy after this edit of `current`."""
        out = replace(current, is_default=False)
        if self.reviewer_users is not None:
            out = replace(out, reviewer_users=self.reviewer_users)
        if self.reviewer_groups is not None:
            out = replace(out, reviewer_groups=self.reviewer_groups)
        if self.approvals_required is not None:
            out = replace(out, approvals_required=self.approvals_required)
        if self.self_approval is not None:
            out = replace(out, self_approval=self.self_approval)
        if self.clear_gallery:
            out = replace(out, gallery_channel_id=None)
        elif self.gallery_channel_id is not None:
            out = replace(out, gallery_channel_id=self.gallery_channel_id)
        return out


def is_review(text: str) -> bool:
    """True when a `/imagine` text is a review command (its first word is "review")."""
    first = text.split(maxsplit=1)
    return bool(first) and first[0].lower() == "review"


def parse_review(text: str) -> ReviewCommand:
    """Parse the text after `/imagine` ("review", "review off", "review set --…").

    Raises ReviewSyntaxError naming the part to change.
    """
    tokens = TOKEN.findall(text)[1:]
    if not tokens:
        return ReviewCommand("show")
    action = tokens[0].lower()
    if action == "off" and len(tokens) == 1:
        return ReviewCommand("off")
    if action != "set":
        raise ReviewSyntaxError(f"I don't know `review {tokens[0][:40]}`.")
    groups = _group_options(tokens[1:])
    if not groups:
        raise ReviewSyntaxError("Say what to set, for example `--approvals 2`.")
    fields: dict[str, object] = {}
    for option, values in groups.items():
        fields.update(_option(option, values))
    return ReviewCommand("set", PolicyEdit(**fields))  # type: ignore[arg-type]


def _group_options(tokens: list[str]) -> dict[str, list[str]]:
    """{option: its values}; raises ReviewSyntaxError on unknown or repeated options."""
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for token in tokens:
        if token.startswith("--"):
            option = token.lower()
            if option not in OPTIONS:
                known = ", ".join(f"`{o}`" for o in OPTIONS)
                raise ReviewSyntaxError(f"Unknown option `{token[:40]}`; use {known}.")
            if option in groups:
                raise ReviewSyntaxError(f"`{option}` is given twice.")
            current = groups[option] = []
        elif current is None:
            raise ReviewSyntaxError(f"`{token[:40]}` must follow an option such as `--approvals`.")
        else:
            current.append(token)
    return groups


def _option(option: str, values: list[str]) -> dict[str, object]:
    if option == "--reviewers":
        return _reviewers(values)
    if len(values) != 1:
        raise ReviewSyntaxError(f"`{option}` takes exactly one value.")
    value = values[0]
    if option == "--approvals":
        if not value.isdigit() or not 1 <= int(value) <= 5:
            raise ReviewSyntaxError("`--approvals` must be a whole number from 1 to 5.")
        return {"approvals_required": int(value)}
    if option == "--self-approval":
        if value.lower() not in ON + OFF:
            raise ReviewSyntaxError("`--self-approval` is `on` or `off`.")
        return {"self_approval": value.lower() in ON}
    if value.lower() == "none":
        return {"clear_gallery": True}
    found = CHANNEL.fullmatch(value)
    if not found:
        raise ReviewSyntaxError(
            f"`{value[:40]}` is not a channel Slack recognised: type `#` and pick the channel "
            "from the list, or use `--gallery none`."
        )
    return {"gallery_channel_id": found[1]}


def _reviewers(values: list[str]) -> dict[str, object]:
    if not values:
        raise ReviewSyntaxError("`--reviewers` needs people or groups (or `anyone`).")
    if len(values) == 1 and values[0].lower() in CLEAR_REVIEWERS:
        return {"reviewer_users": (), "reviewer_groups": ()}
    users: list[str] = []
    groups: list[str] = []
    for value in values:
        if user := USER.fullmatch(value):
            users.append(user[1])
        elif group := GROUP.fullmatch(value):
            groups.append(group[1])
        else:
            raise ReviewSyntaxError(
                f"`{value[:40]}` is not a person or user group Slack recognised: type `@` and "
                "pick them from the list so Slack turns it into a mention."
            )
    return {"reviewer_users": tuple(users), "reviewer_groups": tuple(groups)}
