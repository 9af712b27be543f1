"""Every user-facing sentence the bot says that is not part of a Block Kit builder.

`core` returns codes and data (error kinds, reasons, who/what); this module words them
for Slack (mrkdwn). Block Kit builders live in `bot/blocks.py`.
"""

from __future__ import annotations

from core.history import SessionSummary, VersionSummary
from core.refinement import MAX_INPUTS, Accepted, RefineOutcome
from core.sessions import Refusal

# ---------------------------------------------------------------------------------------
# Job engine: failures, waiting reasons, unreachable channels
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Sessions, refinement, history, actions
# ---------------------------------------------------------------------------------------

HELP_WORDS = {"", "help", "--help", "-h", "?"}

GONE = "This version is gone (its session was deleted). Start again with `/imagine`."
STALE_BUTTON = (
    "This button is out of date (it does not name a version I know). "
    "Use the buttons on the latest result, or start again with `/imagine`."
)
WRONG_CONVERSATION = (
    "This button belongs to another conversation, so nothing was changed here. "
    "Use the buttons in the thread where the image was made."
)
EMPTY_REPLY = (
    "Tell me what to change, e.g. _make the sky stormier_, or post an image to use as a "
    "reference. Flags work here too: `--ar 3:2`, `--n 2`, `--no people`."
)
NO_SESSIONS = "You have no imagine sessions yet. Start one with `/imagine <prompt>`."
HISTORY_FOOTER = "\nIn a thread, click *History* on a result to list its versions."


def refusal(reason: Refusal) -> str | None:
    """The private answer to a refused action; None when nothing should be said (a
    double-click does nothing the second time)."""
    if reason is Refusal.GONE:
        return GONE
    if reason is Refusal.WRONG_CONVERSATION:
        return WRONG_CONVERSATION
    return None


def flag_error(error: str, *, in_thread: bool = False) -> str:
    """A bad flag in `/imagine` (or in a reply): what is wrong and that nothing was queued."""
    if in_thread:
        return f":warning: {error}\nNothing was queued."
    return f":warning: {error}\nNothing was queued. Type `/imagine help` for all flags."


def already_approved(index: int, version: int, approver: str) -> str:
    """Approve on an image someone approved first (`index` 0-based)."""
    return f"Image {index + 1} of v{version} was already approved by <@{approver}>."


def cancel_not_allowed(version: int, requested_by: str, owner: str) -> str:
    """Cancel by someone who neither asked for the version nor started the thread."""
    return (
        f"Only <@{requested_by}> (who asked for v{version}) or "
        f"<@{owner}> (who started this thread) can cancel it."
    )


def already_finished(version: int, state: str) -> str:
    """Cancel on a version that is no longer running."""
    return f"v{version} has already finished ({state})."


def picked_base(user_id: str, label: str) -> str:
    """The thread note after "Refine this"."""
    return f":dart: <@{user_id}> picked *{label}*: replies in this thread now refine that image."


def version_line(item: VersionSummary, link: str | None) -> str:
    """One line of a session's history: title (linked to its result), what it did, state,
    approvals."""
    title = f"<{link}|v{item.version}>" if link else f"v{item.version}"
    if item.kind == "refine" and item.instruction:
        what = f"from {item.parent_label}: {item.instruction}"
    else:
        what = "new seed" if item.kind == "regenerate" else item.prompt
    approved = ", ".join(f"image {i + 1} by <@{u}>" for i, u in item.approved)
    extra = f" · approved {approved}" if approved else ""
    state = "" if item.state == "posted" else f" · {item.state}"
    return f"{title} {what}{state}{extra}"


def session_line(item: SessionSummary, link: str | None) -> str:
    """One of a user's recent sessions: its prompt (linked to the thread), channel, size."""
    prompt = item.prompt if len(item.prompt) <= 60 else item.prompt[:57] + "…"
    title = f"<{link}|{prompt}>" if link else prompt
    versions = f"{item.versions} version{'s' if item.versions != 1 else ''}"
    return f"{title} in <#{item.channel_id}> · {versions}"


def accepted_image(item: Accepted) -> str:
    """How a kept image is named in the thread's acknowledgement."""
    if item.role != "mask":
        return f"`{item.name}` as a reference"
    label = f"`{item.name}` as the mask (transparent area = repaint)"
    if item.scaled_from and item.scaled_to:
        (w, h), (tw, th) = item.scaled_from, item.scaled_to
        label += (
            f"; it was {w}×{h}, so I scaled it to {tw}×{th} to fit {item.target or 'the image'}"
        )
    return label


def images_waiting(accepted: list[str], waiting: int) -> str:
    """Images posted without an instruction: what was kept and what happens next."""
    return (
        f":frame_with_picture: Got {', '.join(accepted)}. "
        f"{waiting} image{'s' if waiting != 1 else ''} will go with the next "
        "refinement: reply with what to change."
    )


def image_problems(problems: list[str]) -> str:
    """One warning line per refused file."""
    return "\n".join(f":warning: {p}" for p in problems)


def inputs_dropped(outcome: RefineOutcome) -> str:
    """A refinement got more images than a generation takes."""
    return (
        f":information_source: v{outcome.version} takes {MAX_INPUTS} images at most"
        f"{' (the base image counts as one)' if outcome.base_label else ''}; "
        f"the newest are used, not {', '.join(outcome.dropped)}."
    )


# ---------------------------------------------------------------------------------------
# Files and images: downloads, references, masks
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Requests and payloads: stale buttons, wrong conversation
# ---------------------------------------------------------------------------------------
