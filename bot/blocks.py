"""Block Kit builders: every message the bot shows, built with slack_sdk's block models.

Button `value`s carry the generation id (and image index): "<generation_id>:<index>"
for Approve and Refine this, "<generation_id>" for Regenerate, History and Cancel.
"""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot import messages
from core.models import GenerationState as S
from core.ports import Failure, GenerationView

APPROVE = "approve"
REGENERATE = "regenerate"
REFINE_THIS = "refine_this"
CANCEL = "cancel"
HISTORY = "history"
PROGRESS_CELLS = 10


def _quote(text: str) -> str:
    return "\n".join(f">{line}" for line in text.splitlines() or [""])


def _json(blocks: list[Block]) -> list[dict[str, Any]]:
    return [block.to_dict() for block in blocks]


def params_line(view: GenerationView) -> str:
    """ "3:2 · 1 image · seed 42 · local preview renderer" (1254×836 px)."""
    return f"{view.params.describe()} · {view.provider_label}"


def root_message(view: GenerationView) -> tuple[str, list[dict[str, Any]]]:
    """The session's root message in the channel: who asked, the prompt, the parameters."""
    text = f"<@{view.requested_by}> asked for: {view.prompt}"
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*<@{view.requested_by}> asked for:*")),
        SectionBlock(text=MarkdownTextObject(text=_quote(view.prompt))),
        ContextBlock(
            elements=[
                MarkdownTextObject(text=f"{params_line(view)} · {view.width}×{view.height} px"),
            ]
        ),
    ]
    return text, _json(blocks)


def version_title(view: GenerationView) -> str:
    """ "*v3*, from v2 image 1: make the sky stormier" (refinements name their origin)."""
    head = f"*v{view.version}*"
    if view.kind == "refine" and view.instruction:
        origin = f", from {view.parent_label}" if view.parent_label else ""
        return f"{head}{origin}: _{view.instruction}_"
    if view.kind == "regenerate":
        return f"{head} (same request, new seed)"
    return head


def status_text(view: GenerationView) -> str:
    """One line for the status message, by state: queued, progress, done, failed, cancelled."""
    who = f"<@{view.requested_by}>"
    head = version_title(view)
    if view.cancel_requested and view.state in (S.QUEUED, S.SUBMITTED, S.COMPLETED):
        return f":no_entry_sign: {head} cancelling…"
    if view.state == S.QUEUED:
        reason = messages.waiting_text(view)
        wait = f" ({reason}; it starts automatically)" if reason else ""
        return f":hourglass_flowing_sand: {head} queued for {who}{wait} · {view.provider_label}"
    if view.state == S.SUBMITTED:
        filled = round(view.progress / 100 * PROGRESS_CELLS)
        bar = "▓" * filled + "░" * (PROGRESS_CELLS - filled)
        return f":art: {head} generating… `{bar}` {view.progress}% · {view.provider_label}"
    if view.state == S.COMPLETED:
        return f":outbox_tray: {head} done, posting the images…"
    if view.state == S.POSTED:
        count = len(view.images)
        return f":white_check_mark: {head} done · {count} image{'s' if count != 1 else ''} below"
    if view.state == S.CANCELLED:
        return f":no_entry_sign: {head} cancelled"
    error = messages.failure_text(view.failure) if view.failure else view.error
    return f":warning: {head} failed: {error or 'unknown error'}"


def status_message(view: GenerationView) -> tuple[str, list[dict[str, Any]]]:
    """The status message in the thread, updated in place; Cancel while it runs."""
    text = status_text(view)
    blocks: list[Block] = [SectionBlock(text=MarkdownTextObject(text=text))]
    if view.state in (S.QUEUED, S.SUBMITTED) and not view.cancel_requested:
        blocks.append(
            ActionsBlock(
                block_id="status",
                elements=[
                    ButtonElement(
                        text="Cancel",
                        action_id=CANCEL,
                        value=str(view.generation_id),
                        style="danger",
                    )
                ],
            )
        )
    return text, _json(blocks)


def upload_comment(view: GenerationView) -> str:
    """The comment that goes with the uploaded image files."""
    if view.kind == "refine":
        return version_title(view)
    return f"*v{view.version}* · {view.prompt}"


def result_message(view: GenerationView) -> tuple[str, list[dict[str, Any]]]:
    """The result message: per image Approve (or who approved it) and Refine this,
    then Regenerate and History for the version."""
    count = len(view.images)
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=f"{version_title(view)} · ready for <@{view.requested_by}>"
            )
        ),
        ContextBlock(elements=[MarkdownTextObject(text=params_line(view))]),
    ]
    for note in (view.inputs_note, view.note):
        if note:
            blocks.append(
                ContextBlock(elements=[MarkdownTextObject(text=f":information_source: {note}")])
            )
    for image in view.images:
        label = f"Image {image.index + 1} of {count}" if count > 1 else "The image"
        value = f"{view.generation_id}:{image.index}"
        text = f"{label} · {image.width}×{image.height} px"
        buttons = [ButtonElement(text="Refine this", action_id=REFINE_THIS, value=value)]
        if image.approved_by:
            text += f"\n:white_check_mark: *Approved by <@{image.approved_by}>*"
            if image.approved_at:
                # Slack renders <!date^…> in each reader's own time zone.
                when = int(image.approved_at)
                text += f" <!date^{when}^{{date_short_pretty}} at {{time}}|at {when}>"
        else:
            buttons.insert(
                0, ButtonElement(text="Approve", action_id=APPROVE, value=value, style="primary")
            )
        blocks.append(
            SectionBlock(block_id=f"image-{image.index}", text=MarkdownTextObject(text=text))
        )
        blocks.append(ActionsBlock(block_id=f"image-{image.index}-actions", elements=buttons))
    blocks.append(
        ActionsBlock(
            block_id="generation",
            elements=[
                ButtonElement(
                    text="Regenerate", action_id=REGENERATE, value=str(view.generation_id)
                ),
                ButtonElement(text="History", action_id=HISTORY, value=str(view.generation_id)),
            ],
        )
    )
    text = f"v{view.version} is ready: {view.instruction or view.prompt}"
    return text, _json(blocks)


def history_text(lines: list[str], title: str) -> str:
    """An ephemeral list (history of a session, or a user's recent sessions)."""
    return f"*{title}*\n" + "\n".join(f"• {line}" for line in lines)


def failure_message(view: GenerationView, failure: Failure) -> str:
    """The thread reply when a generation fails: what happened and what to do."""
    return f":warning: *v{view.version}* failed. {messages.failure_text(failure)}"
