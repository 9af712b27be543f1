"""Block Kit builders: every message the bot shows, built with slack_sdk's block models.

Button `value`s carry the generation id (and image index): "<generation_id>:<index>"
for Approve and Refine this, "<generation_id>" for Regenerate, History and Cancel.

Everything a person typed (prompt, instruction, negative prompt, model and style names,
file names) and every sentence from `core` is escaped with `bot.mrkdwn.escape` before it
goes into mrkdwn, and every block is cut to Slack's documented limits (`bot.mrkdwn`)
with a visible "…", so no input can make Slack (or slack_sdk's validation) refuse a
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    ImageBlock,
    MarkdownTextObject,
    Option,
    OverflowMenuElement,
    SectionBlock,
)

from bot import messages, mrkdwn
from bot.mrkdwn import clip, escape, user_text
from core.models import GenerationState as S
from core.ports import Failure, GenerationView

APPROVE = "approve"
REGENERATE = "regenerate"
REFINE_THIS = "refine_this"
CANCEL = "cancel"
HISTORY = "history"
REQUEST_CHANGES = "request_changes"
PROGRESS_CELLS = 10
# Room for the person's words inside one line of a status or result (the rest of the
# line is ours); the whole section is clipped to Slack's limit as well.
INSTRUCTION_CHARS = 1500
# files.getUploadURLExternal `alt_txt` (an image description for screen readers);
# https://docs.slack.dev/reference/methods/files.getUploadURLExternal
ALT_TXT_CHARS = 1000


def _quote(text: str) -> str:
    """`text` escaped as a block quote that fits a section (see `bot.mrkdwn.quote`)."""
    return mrkdwn.quote(text, mrkdwn.SECTION_TEXT)


def _section(text: str, block_id: str | None = None) -> SectionBlock:
    """A mrkdwn section, clipped to Slack's 3,000 characters."""
    clipped = mrkdwn.clip(text, mrkdwn.SECTION_TEXT)
    return SectionBlock(block_id=block_id, text=MarkdownTextObject(text=clipped))


def _context(*texts: str) -> ContextBlock:
    """A context block of mrkdwn texts: at most 10 elements of at most 3,000 characters."""
    elements = [
        MarkdownTextObject(text=mrkdwn.clip(text, mrkdwn.TEXT_OBJECT))
        for text in texts[: mrkdwn.CONTEXT_ELEMENTS]
    ]
    return ContextBlock(elements=elements)


def _button(text: str, action_id: str, value: str, style: str | None = None) -> ButtonElement:
    """A button; its label is clipped to 75 characters and its value to 2,000."""
    return ButtonElement(
        text=mrkdwn.clip(text, mrkdwn.BUTTON_TEXT),
        action_id=action_id,
        value=value[: mrkdwn.BUTTON_VALUE],
        style=style,
    )


def _json(blocks: list[Block]) -> list[dict[str, Any]]:
    """The blocks as JSON, at most 50 (the last kept one says more was left out)."""
    if len(blocks) > mrkdwn.MESSAGE_BLOCKS:
        blocks = [*blocks[: mrkdwn.MESSAGE_BLOCKS - 1], _context(mrkdwn.ELLIPSIS)]
    return [block.to_dict() for block in blocks]


def _text(text: str) -> str:
    """A message's `text` (notification and fallback), clipped to 40,000 characters."""
    return mrkdwn.clip(text, mrkdwn.MESSAGE_TEXT)


def params_line(view: GenerationView) -> str:
    """ "3:2 · 1 image · seed 42 · local preview renderer" (1254×836 px), escaped: the
    parameters carry typed words (`--no …`, `--model …`)."""
    return escape(f"{messages.params_text(view.ask.params)} · {view.provider_label}")


def root_message(view: GenerationView) -> tuple[str, list[dict[str, Any]]]:
    """The session's root message in the channel: who asked, the prompt, the parameters.

    Returns (text, blocks); the prompt is escaped and quoted, every part within limits.
    """
    text = _text(f"{messages.mention(view.requested_by)} asked for: {escape(view.ask.prompt)}")
    blocks: list[Block] = [
        _section(f"*{messages.mention(view.requested_by)} asked for:*"),
        _section(_quote(view.ask.prompt)),
        _context(f"{params_line(view)} · {view.width}×{view.height} px"),
    ]
    return text, _json(blocks)


def version_title(view: GenerationView) -> str:
    """ "*v3*, from v2 image 1: make the sky stormier" (refinements name their origin);
    the instruction is escaped and clipped to INSTRUCTION_CHARS."""
    head = f"*v{view.version}*"
    if view.kind == "refine" and view.ask.instruction:
        origin = f", from {escape(view.parent_label)}" if view.parent_label else ""
        return f"{head}{origin}: _{user_text(view.ask.instruction, INSTRUCTION_CHARS)}_"
    if view.kind == "regenerate":
        return f"{head} (same request, new seed)"
    return head


def status_text(view: GenerationView) -> str:
    """One line for the status message, by state: queued, progress, done, failed, cancelled.

    Sentences from core (waiting reason, error) are escaped; at most 3,000 characters.
    """
    return mrkdwn.clip(_status_line(view), mrkdwn.SECTION_TEXT)


def _status_line(view: GenerationView) -> str:
    who = messages.mention(view.requested_by)
    head = version_title(view)
    provider = escape(view.provider_label)
    if view.cancel_requested and view.state in (S.QUEUED, S.SUBMITTED, S.COMPLETED):
        return f":no_entry_sign: {head} cancelling…"
    if view.state == S.QUEUED:
        reason = messages.waiting_text(view)
        wait = f" ({reason}; it starts automatically)" if reason else ""
        return f":hourglass_flowing_sand: {head} queued for {who}{wait} · {provider}"
    if view.state == S.SUBMITTED:
        filled = round(view.progress / 100 * PROGRESS_CELLS)
        bar = "▓" * filled + "░" * (PROGRESS_CELLS - filled)
        return f":art: {head} generating… `{bar}` {view.progress}% · {provider}"
    if view.state == S.COMPLETED:
        return f":outbox_tray: {head} done, posting the images…"
    if view.state == S.POSTED:
        count = len(view.images)
        return f":white_check_mark: {head} done · {count} image{'s' if count != 1 else ''} below"
    if view.state == S.CANCELLED:
        return f":no_entry_sign: {head} cancelled"
    if view.failure:
        error = clip(messages.failure_text(view.failure), INSTRUCTION_CHARS)
    else:
        error = user_text(view.error or "unknown error", INSTRUCTION_CHARS)
    return f":warning: {head} failed: {error}"


def status_message(view: GenerationView) -> tuple[str, list[dict[str, Any]]]:
    """The status message in the thread, updated in place; Cancel while it runs."""
    text = status_text(view)
    blocks: list[Block] = [_section(text)]
    if view.state in (S.QUEUED, S.SUBMITTED) and not view.cancel_requested:
        blocks.append(
            ActionsBlock(
                block_id="status",
                elements=[_button("Cancel", CANCEL, str(view.generation_id), style="danger")],
            )
        )
    return text, _json(blocks)


def upload_comment(view: GenerationView) -> str:
    """The comment that goes with the uploaded image files (escaped, clipped)."""
    if view.kind == "refine":
        return version_title(view)
    return _text(f"*v{view.version}* · {escape(view.ask.prompt)}")


def upload_alt_text(view: GenerationView) -> str:
    """Alt text of an uploaded image: the prompt as plain text (Slack parses no markup in
    alt text, so it is not escaped), at most ALT_TXT_CHARS characters."""
    if len(view.ask.prompt) <= ALT_TXT_CHARS:
        return view.ask.prompt
    return view.ask.prompt[: ALT_TXT_CHARS - 1] + mrkdwn.ELLIPSIS


def _image_blocks(view: GenerationView) -> list[Block]:
    """Per image: its section (size, review progress or who approved it) and its buttons
    (Approve and Request changes until it is fully approved, Refine this always), then
    its "…" menu (*Save style…*)."""
    count = len(view.images)
    out: list[Block] = []
    changes = dict(view.changes_requested)
    for image in view.images:
        label = f"Image {image.index + 1} of {count}" if count > 1 else "The image"
        value = f"{view.generation_id}:{image.index}"
        text = f"{label} · {image.width}×{image.height} px"
        buttons = [_button("Refine this", REFINE_THIS, value)]
        if image.approved_by:
            approvers = image.votes or (image.approved_by,)
            names = ", ".join(messages.mention(user) for user in approvers)
            text += f"\n:white_check_mark: *Approved by {names}*"
            if image.approved_at:
                # Slack renders <!date^…> in each reader's own time zone.
                when = int(image.approved_at)
                text += f" <!date^{when}^{{date_short_pretty}} at {{time}}|at {when}>"
        else:
            if image.votes or view.review.approvals_required > 1 or view.review.has_reviewers:
                text += "\n" + messages.approval_progress(image.votes, view.review)
            buttons[:0] = [
                _button("Approve", APPROVE, value, style="primary"),
                _button("Request changes", REQUEST_CHANGES, value),
            ]
        if image.index in changes:
            text += f"\n:memo: Changes requested by {messages.mention(changes[image.index])}"
        out.append(_section(text, block_id=f"image-{image.index}"))
        elements: list[Any] = [*buttons, _save_style_menu(value)]
        out.append(ActionsBlock(block_id=f"image-{image.index}-actions", elements=elements))
    return out


def result_message(view: GenerationView) -> tuple[str, list[dict[str, Any]]]:
    """The result message: per image Approve (or who approved it) and Refine this,
    then Regenerate and History for the version. Returns (text, blocks) within limits."""
    blocks: list[Block] = [
        _section(f"{version_title(view)} · ready for {messages.mention(view.requested_by)}"),
        _context(params_line(view)),
    ]
    inputs = messages.inputs_note(view.ask.inputs_note) if view.ask.inputs_note else None
    for note in (inputs, view.note):
        if note:
            blocks.append(_context(f":information_source: {escape(note)}"))
    blocks += _image_blocks(view)
    generation = str(view.generation_id)
    blocks.append(
        ActionsBlock(
            block_id="generation",
            elements=[
                _button("Regenerate", REGENERATE, generation),
                _button("History", HISTORY, generation),
            ],
        )
    )
    text = _text(f"v{view.version} is ready: {escape(view.ask.instruction or view.ask.prompt)}")
    return text, _json(blocks)


def history_text(lines: list[str], title: str) -> str:
    """An ephemeral list (history of a session, or a user's recent sessions).

    `lines` are mrkdwn the caller built (user text in them escaped with
    `bot.mrkdwn.escape`); the result is clipped to Slack's 40,000 characters.
    """
    return _text(f"*{escape(title)}*\n" + "\n".join(f"• {line}" for line in lines))


def failure_message(view: GenerationView, failure: Failure) -> str:
    """The thread reply when a generation fails: what happened and what to do (the
    provider's own words in it are escaped by `messages.failure_text`)."""
    return _text(f":warning: *v{view.version}* failed. {messages.failure_text(failure)}")


# ---------------------------------------------------------------------------------------
# Team review (issue 10): the gallery post
# ---------------------------------------------------------------------------------------

GALLERY_EVENT = "imagine_gallery_post"
"""The message metadata `event_type` of a gallery post (payload: image_id, generation_id)."""


@dataclass(frozen=True)
class GalleryPost:
    """What a gallery post shows: the image (`file_id`: the file uploaded in the thread),
    its label ("v3 image 1"), the prompt, who asked, who approved, the version lineage
    (version numbers, first to this one) and the thread's link (None when Slack gave none)."""

    channel_id: str
    image_id: int
    generation_id: int
    label: str
    prompt: str
    requested_by: str
    approvers: tuple[str, ...]
    lineage: tuple[int, ...]
    thread_link: str | None
    file_id: str | None


def gallery_message(post: GalleryPost) -> tuple[str, list[dict[str, Any]]]:
    """The gallery post: head, prompt, the image (image block with `slack_file`, see
    https://docs.slack.dev/reference/block-kit/blocks/image-block), approvals, lineage and
    the thread link. Returns (text, blocks) within Slack's limits; the prompt is escaped."""
    approvers = ", ".join(messages.mention(user) for user in post.approvers)
    by = messages.mention(post.requested_by)
    head = f":frame_with_picture: *{escape(post.label)}* by {by}, approved"
    parts: list[Block] = [_section(head), _section(_quote(post.prompt))]
    if post.file_id:
        alt = mrkdwn.clip(post.prompt, mrkdwn.ALT_TEXT) if post.prompt else post.label
        parts.append(ImageBlock(slack_file={"id": post.file_id}, alt_text=alt))
    lineage = " → ".join(f"v{v}" for v in post.lineage)
    facts = [f"Approved by {approvers}", f"Versions: {lineage}"]
    if post.thread_link:
        facts.append(f"<{post.thread_link}|Open the thread>")
    parts.append(_context(" · ".join(facts)))
    text = _text(f"{escape(post.label)} approved: {escape(post.prompt)}")
    return text, _json(parts)


# Cost control (issue 11): the private duplicate note with its *Generate anyway* button,
# whose value is the earlier generation's id (its prompt and flags are queued again).
GENERATE_ANYWAY = "generate_anyway"


def duplicate_message(text: str, generation_id: int) -> tuple[str, list[dict[str, Any]]]:
    """The ephemeral duplicate note (`text`, mrkdwn built by `messages.duplicate_text`)
    with a *Generate anyway* button; returns (text, blocks)."""
    blocks: list[Block] = [
        _section(text),
        ActionsBlock(elements=[_button("Generate anyway", GENERATE_ANYWAY, str(generation_id))]),
    ]
    return _text(text), _json(blocks)


# Privacy (issue 12): the private forget-me confirmation; the button's value is the id of
# the person who asked, so only that person's click counts.
FORGET_ME = "forget_me_confirm"


def forget_confirmation(text: str, user_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The ephemeral forget-me preview (`text`, mrkdwn from `messages.forget_preview`) with
    a *Delete my data* button for `user_id`; returns (text, blocks)."""
    blocks: list[Block] = [
        _section(text),
        ActionsBlock(elements=[_button("Delete my data", FORGET_ME, user_id, style="danger")]),
    ]
    return _text(text), _json(blocks)


# Brand styles (issue 12): *Save style…* in each image's "…" menu (an overflow element:
# https://docs.slack.dev/reference/block-kit/block-elements/overflow-menu-element); the
# option's value is "<generation id>:<image index>", like Refine this.
SAVE_STYLE = "save_style"


def _save_style_menu(value: str) -> OverflowMenuElement:
    return OverflowMenuElement(
        action_id=SAVE_STYLE, options=[Option(text="Save style…", value=value)]
    )
