"""Every user-facing sentence the bot says that is not part of a Block Kit builder.

`core` returns codes and data (error kinds, reasons, who/what); this module words them
for Slack (mrkdwn). Block Kit builders live in `bot/blocks.py`.
"""

from __future__ import annotations

from core.ports import Failure, FailureReason, GenerationView, WaitReason

# ---------------------------------------------------------------------------------------
# Job engine: failures, waiting reasons, unreachable channels
# ---------------------------------------------------------------------------------------

CAUSES = {
    "publish": "Slack did not accept a message.",
    "internal": "Something went wrong on our side.",
}


def channel_unreachable_text(reason: str) -> str:
    """What the requester is told when the bot cannot post in the channel (`reason`: Slack's
    error code, e.g. "not_in_channel")."""
    if reason == "not_in_channel":
        return (
            "I can't post in this channel because I'm not a member. "
            "Invite me with `/invite @imagine` (or mention me and choose *Add to channel*), "
            "then run `/imagine` again."
        )
    if reason in ("channel_not_found", "is_archived"):
        return (
            "I can't see this channel (it may be private, archived or a DM I'm not part of). "
            "Add me to a channel with `/invite @imagine` and run `/imagine` there."
        )
    return f"I couldn't post in this channel ({reason}). Ask an admin to check my permissions."


def failure_text(failure: Failure) -> str:
    """Why a generation failed and what to do, in a sentence or two (mrkdwn)."""
    cause = CAUSES.get(failure.kind) or failure.detail
    if failure.reason is FailureReason.GAVE_UP:
        return (
            f"{cause or 'The provider did not answer.'} I gave up after {failure.attempts} "
            "tries; click *Regenerate* or run `/imagine` again in a few minutes."
        )
    if failure.reason is FailureReason.DEADLINE:
        minutes = failure.minutes or 1
        return (
            f"The provider did not finish within {minutes} minute{'s' if minutes > 1 else ''}. "
            "Click *Regenerate* to try again."
        )
    if failure.reason is FailureReason.NO_IMAGE:
        return "The provider returned no image."
    if failure.reason is FailureReason.CHANNEL_UNREACHABLE:
        return channel_unreachable_text(failure.kind)
    return cause or "The provider could not make this image."


def requester_notice(failure: Failure) -> str:
    """The private note to a requester whose image could not start."""
    if failure.reason is FailureReason.CHANNEL_UNREACHABLE:
        return channel_unreachable_text(failure.kind)
    return f"I couldn't start your image. {failure_text(failure)}"


def waiting_text(view: GenerationView) -> str | None:
    """Why a queued generation has not started, or None when nothing holds it."""
    number = view.waiting_number
    match view.waiting_reason:
        case WaitReason.THREAD:
            return f"queued behind v{number} in this thread" if number else "queued in this thread"
        case WaitReason.SLOT:
            return "waiting for a free slot at the provider"
        case WaitReason.BREAKER:
            return "the image provider is not answering right now"
        case WaitReason.QUEUE if number:
            return f"{number} generation{'s' if number > 1 else ''} ahead"
    return None


# ---------------------------------------------------------------------------------------
# Sessions, refinement, history, actions
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Files and images: downloads, references, masks
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Requests and payloads: stale buttons, wrong conversation
# ---------------------------------------------------------------------------------------
