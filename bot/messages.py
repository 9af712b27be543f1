"""Every user-facing sentence the bot says that is not part of a Block Kit builder.

`core` returns codes and data (error kinds, reasons, who/what); this module words them
for Slack (mrkdwn). Block Kit builders live in `bot/blocks.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from bot.mrkdwn import clip, escape, user_text
from core.flags import MAX_N, MAX_RATIO_SIDE, MAX_SEED, QUALITIES, FlagError, FlagProblem, Params
from core.forget import DeletionCounts, ForgetPreview, ForgetReport, is_forgotten
from core.history import SessionSummary, VersionSummary
from core.images import MB, ImageRejected, Rejection, describe_types, type_name
from core.policy import ApprovalRefusal, Policy
from core.ports import Failure, FailureReason, GenerationView, InputsNote, WaitReason
from core.quotas import Limit, QuotaExceeded
from core.refinement import MAX_INPUTS, Accepted, RefineOutcome
from core.sessions import Refusal
from core.store import NotAnImage
from core.style_results import SavedFromResult
from core.styles import MAX_STYLE_REFERENCES, MAX_STYLE_TEXT, Style
from core.usage import PersonalUsage, TeamUsage, Totals

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
    return (
        f"I couldn't post in this channel ({escape(reason)}). Ask an admin to check my permissions."
    )


def failure_text(failure: Failure) -> str:
    """Why a generation failed and what to do, in a sentence or two (mrkdwn)."""
    cause = CAUSES.get(failure.kind) or (escape(failure.detail) if failure.detail else None)
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


def already_approved(index: int, version: int, approver: str) -> str:
    """Approve on an image someone approved first (`index` 0-based)."""
    return f"Image {index + 1} of v{version} was already approved by {mention(approver)}."


def cancel_not_allowed(version: int, requested_by: str, owner: str) -> str:
    """Cancel by someone who neither asked for the version nor started the thread."""
    return (
        f"Only {mention(requested_by)} (who asked for v{version}) or "
        f"{mention(owner)} (who started this thread) can cancel it."
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
        what = f"from {item.parent_label}: {escape(clip(item.instruction, 300))}"
    else:
        what = "new seed" if item.kind == "regenerate" else escape(clip(item.prompt, 300))
    approved = ", ".join(f"image {i + 1} by {mention(u)}" for i, u in item.approved)
    extra = f" · approved {approved}" if approved else ""
    state = "" if item.state == "posted" else f" · {item.state}"
    return f"{title} {what}{state}{extra}"


def session_line(item: SessionSummary, link: str | None) -> str:
    """One of a user's recent sessions: its prompt (linked to the thread), channel, size."""
    prompt = escape(clip(" ".join(item.prompt.split()), 60)).replace("|", "¦")
    title = f"<{link}|{prompt}>" if link else prompt
    versions = f"{item.versions} version{'s' if item.versions != 1 else ''}"
    return f"{title} in <#{item.channel_id}> · {versions}"


def accepted_image(item: Accepted) -> str:
    """How a kept image is named in the thread's acknowledgement."""
    if item.role != "mask":
        return f"{file_label(item.name)} as a reference"
    label = f"{file_label(item.name)} as the mask (transparent area = repaint)"
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


def image_problems(problems: list[ImageRejected | NotAnImage]) -> str:
    """One warning line per refused file: ImageRejected worded by its code, NotAnImage by
    the store's own sentence."""
    lines = [
        image_rejected(p) if isinstance(p, ImageRejected) else escape(str(p)) for p in problems
    ]
    return "\n".join(f":warning: {line}" for line in lines)


def inputs_dropped(outcome: RefineOutcome) -> str:
    """A refinement got more images than a generation takes."""
    return (
        f":information_source: v{outcome.version} takes {MAX_INPUTS} images at most"
        f"{' (the base image counts as one)' if outcome.base_label else ''}; "
        f"the newest are used, not {', '.join(escape(d) for d in outcome.dropped)}."
    )


# ---------------------------------------------------------------------------------------
# Files and images: downloads, references, masks
# ---------------------------------------------------------------------------------------


def file_label(name: str) -> str:
    """A file name as mrkdwn inline code (see `code`; "file" when it has none)."""
    return code(" ".join((name or "").split()) or "file")


def size_text(size: int) -> str:
    """A byte count as MB for people: one decimal below 10 MB, whole numbers above."""
    value = size / MB
    if value >= 10:
        return f"{value:.0f} MB"
    if value >= 0.1:
        return f"{value:.1f} MB"
    return f"{round(size / 1024)} KB" if size >= 1024 else f"{size} bytes"


def _pixels_text(pixels: int) -> str:
    """A pixel count for people: ``40 megapixels`` (or exact below one megapixel)."""
    if pixels >= 1_000_000:
        return f"{pixels / 1_000_000:g} megapixels"
    return f"{pixels:,} pixels"


_HOW_TO_MASK = (
    "Erase the area to repaint so it is transparent, and export as PNG (keep the transparency)."
)

_IMAGE_REPLIES: dict[Rejection, str] = {
    Rejection.LOGIN_PAGE: (
        "I couldn't download {label}: Slack sent a login page instead of the file. Make sure "
        "the bot is a member of this channel (`/invite` it) and the app has the `files:read` "
        "scope, then post the image again."
    ),
    Rejection.EMPTY: "{label} is empty (0 bytes). Post the image again.",
    Rejection.TOO_LARGE: "{label} {actual}, over the {limit_mb} limit for {what} here. {advice}",
    Rejection.TOO_MANY_PIXELS: (
        "{label} is {dimensions}, over the limit of {limit_px} (width × height) for images "
        "here. Post a smaller version (scale it down, e.g. to 4096×4096 or less)."
    ),
    Rejection.UNREADABLE: (
        "{label} isn't an image I can read (it may be damaged or in an unsupported format). "
        "Post a {accepted} image instead."
    ),
    Rejection.WRONG_KIND: (
        "{label} is {kind}, not an image I can use. Post a {accepted} image instead."
    ),
    Rejection.WRONG_TYPE: (
        "{label} is a {type}, which the current image provider doesn't accept. "
        "Post a {accepted} image instead."
    ),
    Rejection.ANIMATED: (
        "{label} is animated; a reference must be a still image. "
        "Post a single frame as a {accepted} image."
    ),
    Rejection.MASK_NOT_PNG: (
        "{label} can't be a mask: it is {kind}, and a mask must be a PNG with transparency. "
        + _HOW_TO_MASK
    ),
    Rejection.MASK_UNREADABLE: (
        "{label} isn't a PNG I can read (it may be damaged). " + _HOW_TO_MASK
    ),
    Rejection.MASK_NO_ALPHA: (
        "{label} can't be a mask: it has no transparency (no alpha channel), so there is no "
        "area to repaint. " + _HOW_TO_MASK
    ),
    Rejection.MASK_NO_TRANSPARENT: (
        "{label} can't be a mask: none of its pixels is transparent, so there is no area to "
        "repaint. " + _HOW_TO_MASK
    ),
    Rejection.MASK_ALL_TRANSPARENT: (
        "{label} can't be a mask: every pixel is transparent, so nothing of the image would be "
        "kept. Leave the parts to keep opaque and erase only the area to repaint, or reply "
        "without a mask to change the whole image."
    ),
    Rejection.MASK_SCALED_AWAY: (
        "{label} is {w}×{h} pixels and the image is {bw}×{bh}; scaled to fit, its {which} area "
        "disappears. Post a mask the size of the image. " + _HOW_TO_MASK
    ),
    Rejection.NO_LINK: "{label} has no download link; post it again.",
    Rejection.DELETED: "{label} was deleted before I could read it; post the image again.",
    Rejection.NOT_VISIBLE: (
        "Slack won't let me read {label} (it may have been deleted, or it is shared from "
        "another organization that keeps its files private). Download it and upload the "
        "image itself into this thread."
    ),
    Rejection.EXTERNAL: (
        "{label} is a link to a file stored outside Slack{service}, so I can't use it. "
        "Download it and upload the image itself into this thread."
    ),
    Rejection.NOT_SLACK_FILE: (
        "I didn't download {label}: its link doesn't point to Slack's file storage. "
        "Upload the image itself into this thread."
    ),
    Rejection.REDIRECTED_AWAY: (
        "I didn't download {label}: the download was redirected away from Slack's file "
        "storage. Upload the image itself into this thread."
    ),
    Rejection.TIMEOUT: (
        "I couldn't download {label}: Slack took too long to send it. Try posting it again."
    ),
    Rejection.FAILED: (
        "I couldn't download {label}: the connection to Slack failed. Try posting it again."
    ),
}

_STATUS_REPLIES = {
    401: "Slack refused access (HTTP {status}). Make sure the bot is a member of this channel "
    "and the app has the `files:read` scope, then post the image again.",
    404: "Slack says the file no longer exists (HTTP {status}); it may have been deleted. "
    "Post the image again.",
    429: "Slack is limiting downloads right now (HTTP 429). Post the image again in a minute.",
}
_STATUS_REPLIES[403] = _STATUS_REPLIES[401]
_STATUS_REPLIES[410] = _STATUS_REPLIES[404]


def image_rejected(err: ImageRejected) -> str:
    """The thread reply (one line of mrkdwn) for an image that cannot be used.

    Names the file (as inline code), says why, and what to post instead, from the
    code and data on ``err`` (see ``core.images.Rejection``).
    """
    d = err.details
    label = file_label(err.name)
    if err.code is Rejection.HTTP_STATUS:
        status = int(d.get("status") or 0)
        why = _STATUS_REPLIES.get(
            status, "Slack answered HTTP {status}. Try posting the image again."
        )
        return f"I couldn't download {label}: " + why.format(status=status)
    fields: dict[str, object] = {"label": label}
    if "accepted" in d:
        fields["accepted"] = describe_types(d["accepted"])
    if "limit" in d and err.code is Rejection.TOO_LARGE:
        fields.update(_too_large_fields(d.get("size"), int(d["limit"]), bool(d.get("mask"))))
    if err.code is Rejection.TOO_MANY_PIXELS:
        width, height, limit = d.get("width"), d.get("height"), int(d["limit"])
        known = width is not None and height is not None
        fields["dimensions"] = (
            f"{width:,} × {height:,} pixels ({_pixels_text(width * height)})"
            if known
            else f"far larger than {_pixels_text(limit)}"
        )
        fields["limit_px"] = _pixels_text(limit)
    if err.code is Rejection.MASK_SCALED_AWAY:
        (w, h), (bw, bh) = d["size"], d["base"]
        fields.update(w=w, h=h, bw=bw, bh=bh, which=d["which"])
    service = d.get("service")
    fields["service"] = f" ({escape(str(service))})" if service else ""
    fields["kind"] = d.get("kind", "")
    fields["type"] = type_name(str(d.get("mime", "")))
    return _IMAGE_REPLIES[err.code].format(**fields)


def _too_large_fields(size: int | None, limit: int, mask: bool) -> dict[str, str]:
    limit_mb = f"{limit / MB:g} MB"
    return {
        "actual": f"is {size_text(size)}" if size is not None else f"is larger than {limit_mb}",
        "limit_mb": limit_mb,
        "what": "masks" if mask else "images",
        "advice": (
            "Post a smaller PNG (scale it down; a mask only needs opaque and transparent pixels)."
            if mask
            else "Post a smaller version (scale it down or export it as JPEG)."
        ),
    }


# ---------------------------------------------------------------------------------------
# Requests and payloads: stale buttons, wrong conversation
# ---------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------
# Content policy (issue 12): refused requests, withheld results
# ---------------------------------------------------------------------------------------

CAUSES["withheld"] = (
    "The image was made but withheld: the content policy flagged it, so it is not shown. "
    "Rephrase the prompt and try again."
)


def moderation_refused(
    categories: tuple[str, ...],
    terms: tuple[str, ...],
    unavailable: bool,
    retry_after: float | None = None,
) -> str:
    """The private answer to a request the content policy refused: the categories (never
    scores), the blocked words the person typed, and what to change. Unavailable: when to
    try again (`retry_after` seconds, else "in a minute")."""
    if unavailable:
        when = "in a minute"
        if retry_after is not None and retry_after > 60:
            when = f"in about {round(retry_after / 60)} minutes"
        return (
            "I couldn't check this request against the content policy right now, so I didn't "
            f"start it. Nothing was queued; please try again {when}."
        )
    if terms:
        listed = ", ".join(f"`{escape(term)}`" for term in terms)
        return (
            f"This request uses words this workspace does not allow ({listed}), so I didn't "
            "start it. Nothing was queued: rephrase without them and try again."
        )
    listed = ", ".join(escape(c.replace("/", " / ").replace("-", " ")) for c in categories)
    return (
        f"This request was flagged by the content policy ({listed}), so I didn't start it. "
        "Nothing was queued: rephrase the prompt (or use other images) and try again."
    )


# ---------------------------------------------------------------------------------------
# Brand styles (issue 12)
# ---------------------------------------------------------------------------------------

STYLE_USAGE = (
    "*Styles:* `/imagine style save <name> <text>` saves a prompt fragment, "
    "`/imagine style list`, `/imagine style show <name>`, `/imagine style delete <name>` "
    "(its creator or an admin), `/imagine style default <name>|none` (admins: this "
    "channel's default). Use one with `--style <name>`; `--style none` skips the default."
)
STYLE_DEFAULT_ADMINS_ONLY = "Only an admin can set this channel's default style."


def _style_names(known: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f"`{escape(name)}`" for name in known) if known else "none yet"


def style_refused(
    problem: StrEnum, name: str, known: tuple[str, ...], *, request: bool = False
) -> str:
    """Why a style command (or, with `request`, an image asked with `--style`) did nothing,
    and what to do."""
    shown = escape(name)
    sentences = {
        "not_found": f"There is no style `{shown}`. Saved styles: {_style_names(known)}. "
        "Save one with `/imagine style save <name> <text>`.",
        "not_allowed": f"Only the creator of `{shown}` or an admin can change or delete it.",
        "bad_name": f"`{shown}` can't be a style name: use letters, digits, - and _ "
        "(up to 40 characters, not `none`).",
        "no_text": "Add the prompt text: "
        f"`/imagine style save {shown} flat pastel, thick outlines`.",
        "too_long": f"That style text is too long; keep it under {MAX_STYLE_TEXT} characters.",
        "full": f"`{shown}` already has {MAX_STYLE_REFERENCES} reference images.",
    }
    said = sentences.get(str(problem), STYLE_USAGE)
    return said + " Nothing was queued." if request else said


def style_list(found: list[tuple[str, str, int]]) -> str:
    """The workspace's styles, one line each."""
    if not found:
        return "No styles saved yet. " + STYLE_USAGE
    lines = [
        f"• `{escape(name)}`: {user_text(text, 150)}"
        + (f" ({n} reference image{'s' if n > 1 else ''})" if n else "")
        for name, text, n in found
    ]
    return "*Saved styles*\n" + "\n".join(lines)


def style_shown(style: Style) -> str:
    """One style: its text and references."""
    refs = len(style.references)
    extra = f"\n{refs} reference image{'s' if refs > 1 else ''}." if refs else ""
    return (
        f"*Style `{escape(style.name)}`* (saved by {mention(style.created_by)})\n"
        f"{user_text(style.text, MAX_STYLE_TEXT + 100)}{extra}"
    )


def style_saved(name: str, new: bool) -> str:
    """The answer to `style save`."""
    shown = escape(name.lower())
    verb = "Saved" if new else "Updated"
    return f"{verb} style `{shown}`. Use it with `/imagine <prompt> --style {shown}`."


def style_deleted(name: str) -> str:
    """The answer to `style delete`."""
    return f"Deleted style `{escape(name.lower())}`."


def style_default_set(name: str) -> str:
    """The answer to `style default`."""
    if name.lower() == "none":
        return "This channel has no default style now."
    shown = escape(name.lower())
    return f"`{shown}` is now this channel's default style (skip it with `--style none`)."


# /imagine input: the usage text, flag problems, parameters (issue 7: words out of core)
# ---------------------------------------------------------------------------------------

_RATIO_RANGE = f"1:{MAX_RATIO_SIDE:g} to {MAX_RATIO_SIDE:g}:1"

USAGE = (
    "*Usage:* `/imagine <prompt> [flags]`\n"
    f"• `--ar W:H` aspect ratio, e.g. `--ar 3:2` (from {_RATIO_RANGE}; default 1:1)\n"
    f"• `--n N` number of images, 1-{MAX_N} (default 1)\n"
    f"• `--seed N` a whole number from 0 to {MAX_SEED}, for repeatable results\n"
    "• `--no words` things to keep out of the image\n"
    f"• `--quality {'|'.join(QUALITIES)}`\n"
    "• `--model NAME` the provider's model to use\n"
    "• `--style NAME` a saved brand style (`/imagine style list`; `--style none` skips the "
    "channel's default)\n"
    "• `--fresh` make new images even when an identical request was made before\n"
    "Example: `/imagine a lighthouse at dusk --ar 3:2 --n 2`\n"
    "The bot answers in a thread. Reply there to refine the latest image (flags work in "
    "replies too), post images to use as references, post a PNG with transparent areas and "
    "the word _mask_ to repaint those areas, click *Refine this* to branch from any version "
    "and *Approve* on the one that ships. `/imagine history` lists your recent sessions."
)
"""The `/imagine help` answer (mrkdwn)."""

_ALLOWED_FLAGS = (
    f"Allowed: `--ar W:H`, `--n 1-{MAX_N}`, `--seed N`, `--no words`, "
    f"`--quality {'|'.join(QUALITIES)}`, `--model NAME`, `--style NAME`, `--fresh`."
)
_RATIO_HINT = f"Use `--ar W:H` with whole numbers, e.g. `--ar 3:2`, from {_RATIO_RANGE}."


def code(text: str) -> str:
    """Typed text as mrkdwn inline code: backticks and line breaks taken out (so it cannot
    leave the code span), at most 80 characters, escaped."""
    clean = " ".join(text.replace("`", "'").split())
    return f"`{escape(clip(clean, 80)) or ' '}`"


def _or_list(values: list[str]) -> str:
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


_FLAG_REPLIES: dict[FlagProblem, str] = {
    FlagProblem.UNKNOWN_FLAG: "{typed} is not a flag I know. " + _ALLOWED_FLAGS,
    FlagProblem.NEEDS_VALUE: "{typed} needs a value. Try `/imagine help` for examples.",
    FlagProblem.BAD_RATIO: "{typed} is not an aspect ratio. " + _RATIO_HINT,
    FlagProblem.ZERO_SIDE: "{typed} has a zero side. " + _RATIO_HINT,
    FlagProblem.TOO_WIDE: "{typed} is too wide. " + _RATIO_HINT,
    FlagProblem.TOO_TALL: "{typed} is too tall. " + _RATIO_HINT,
    FlagProblem.OUT_OF_RANGE: "{typed} is out of range. Use {flag} with {allowed}.",
    FlagProblem.BAD_QUALITY: "{typed} is not allowed. Use "
    + " or ".join([", ".join(QUALITIES[:-1]), QUALITIES[-1]])
    + ".",
    FlagProblem.BAD_MODEL: "{typed} is not a model name. Use letters, digits, . _ - only.",
    FlagProblem.BAD_STYLE: "{typed} is not a style name. Use letters, digits, - and _ "
    "(up to 40), or `--style none`; `/imagine style list` shows the saved ones.",
    FlagProblem.NO_PROMPT: "Tell me what to draw: `/imagine a lighthouse at dusk --ar 3:2`.",
    FlagProblem.TOO_LONG: "That text has {length:,} characters; keep it under {limit:,}.",
    FlagProblem.N_NOT_SUPPORTED: "{provider} makes {allowed} images at a time. Use {choices}.",
}


def _flag_problem(err: FlagError) -> str:
    """The sentence for a FlagError: what is wrong (quoting what was typed, see `code`) and
    what is allowed."""
    data = dict(err.data)
    fields: dict[str, object] = {
        "typed": code(f"--{err.flag or ''} {err.value or ''}".strip()),
        "flag": code(f"--{err.flag or ''}"),
        "length": int(data.get("length") or 0),
        "limit": int(data.get("limit") or 0),
        "provider": escape(str(data.get("provider", ""))),
    }
    if err.problem is FlagProblem.OUT_OF_RANGE:
        low, high = int(data["low"]), int(data["high"])
        few = high - low < 5
        values = [str(v) for v in range(low, high + 1)] if few else []
        fields["allowed"] = _or_list(values) if few else f"a whole number from {low} to {high}"
    if err.problem is FlagProblem.N_NOT_SUPPORTED:
        counts = [str(n) for n in data["allowed"]]
        fields["allowed"] = _or_list(counts)
        fields["choices"] = ", ".join(f"`--n {n}`" for n in counts)
    return _FLAG_REPLIES[err.problem].format(**fields)


def flag_error(err: FlagError, *, in_thread: bool = False) -> str:
    """Bad flags in `/imagine` (or in a reply, `in_thread`): what is wrong, what is
    allowed, and that nothing was queued (mrkdwn; typed values escaped, in code spans with
    their backticks taken out)."""
    text = f":warning: {_flag_problem(err)}\nNothing was queued."
    return text if in_thread else text + " Type `/imagine help` for all flags."


def params_text(params: Params) -> str:
    """Short plain text of the parameters, e.g. "3:2 · 2 images · seed 42" (not escaped:
    `--no` and `--model` words are as typed)."""
    parts = [params.aspect_ratio, f"{params.n} image{'s' if params.n > 1 else ''}"]
    named = (("seed", params.seed), ("quality", params.quality), ("model", params.model))
    parts += [f"{name} {value}" for name, value in named if value is not None and value != ""]
    if params.negative_prompt:
        parts.append(f"no {params.negative_prompt}")
    if params.style and params.style != "none":
        parts.append(f"style {params.style}")
    return " · ".join(parts)


def inputs_note(note: InputsNote) -> str:
    """The note shown with a refinement's result: which references and mask it used and
    which it left out (plain text: escape it before it goes into mrkdwn)."""
    if note.legacy is not None:
        return note.legacy
    parts = []
    if note.style:
        refs = note.style_refs
        with_refs = (
            f" with {refs} reference image{'s' if refs > 1 else ''} "
            f"(counted in the {note.limit or MAX_INPUTS}-image limit)"
            if refs
            else ""
        )
        parts.append(f"Style {note.style} applied{with_refs}")
    if note.used:
        parts.append("References: " + ", ".join(note.used))
    if note.mask:
        parts.append(f"mask: {note.mask} (transparent area repainted)")
    if note.dropped:
        parts.append(
            f"not used ({note.limit} images at most, {'base included, ' if note.has_base else ''}"
            "newest kept): " + ", ".join(note.dropped)
        )
    return "; ".join(parts) + "."


# Team review (issue 10): policies, approvals under a policy, gallery, change requests
# ---------------------------------------------------------------------------------------

REVIEW_ADMIN_ONLY = (
    "Only workspace admins and owners (and the people in `IMAGINE_ADMINS`) can change how "
    "images are reviewed in this channel. Ask one of them, or see the current rules with "
    "`/imagine review`."
)
REVIEW_USAGE = (
    "Usage: `/imagine review` shows this channel's review rules; "
    "`/imagine review set --reviewers @carol @design-team --approvals 2 "
    "--self-approval off --gallery #design-gallery` changes them (give only what changes; "
    "`--reviewers anyone` and `--gallery none` clear them); `/imagine review off` goes back "
    "to one approval by anyone."
)


def reviewer_mentions(policy: Policy) -> list[str]:
    """The policy's reviewers as Slack mentions: users `<@U…>`, then groups
    `<!subteam^S…>` (https://docs.slack.dev/messaging/formatting-message-text)."""
    return [f"<@{u}>" for u in policy.reviewer_users] + [
        f"<!subteam^{g}>" for g in policy.reviewer_groups
    ]


def reviewers_text(policy: Policy) -> str:
    """ "<@U1>, <@U2> or <!subteam^S1>" (Slack renders the names), or "anyone in the
    channel" when the policy names nobody."""
    names = reviewer_mentions(policy)
    if not names:
        return "anyone in the channel"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def policy_text(policy: Policy, channel_id: str) -> str:
    """The channel's review rules, one line each (ephemeral answer to `/imagine review`)."""
    if policy.is_default:
        head = f"*Review in <#{channel_id}>:* the default, one approval by anyone."
    else:
        head = f"*Review in <#{channel_id}>:*"
    count = policy.approvals_required
    gallery = f"<#{policy.gallery_channel_id}>" if policy.gallery_channel_id else "none"
    lines = [
        head,
        f"• Reviewers: {reviewers_text(policy)}",
        f"• Approvals needed: {count}",
        f"• Requester may approve their own image: {'yes' if policy.self_approval else 'no'}",
        f"• Gallery channel: {gallery}",
    ]
    return "\n".join(lines)


def policy_saved(policy: Policy, channel_id: str) -> str:
    """Confirmation after `/imagine review set` or the settings modal."""
    return ":white_check_mark: Saved. " + policy_text(policy, channel_id)


def policy_off(channel_id: str) -> str:
    """Confirmation after `/imagine review off`."""
    return (
        f":white_check_mark: Review rules for <#{channel_id}> are off: "
        "one approval by anyone, no gallery."
    )


def review_error(message: str) -> str:
    """A malformed `/imagine review` (message from the parser or the policy's validation)."""
    return f":warning: {escape(message)}\n{REVIEW_USAGE}"


def approval_refused(refusal: ApprovalRefusal, view: GenerationView) -> str:
    """Why an Approve click did not count, and who can approve (ephemeral)."""
    policy = view.review
    who = reviewers_text(policy)
    if refusal is ApprovalRefusal.SELF_APPROVAL:
        return (
            f"You asked for v{view.version}, and this channel's rules don't let people approve "
            f"their own images. It can be approved by {who}."
        )
    return f"Only {who} can approve images in this channel. Your click was not counted."


def already_voted(index: int, view: GenerationView) -> str:
    """Approve by someone whose approval of this image is already counted."""
    image = view.images[index] if index < len(view.images) else None
    have = len(image.votes) if image else 0
    return (
        f"Your approval of image {index + 1} of v{view.version} is already counted "
        f"({have} of {view.review.approvals_required})."
    )


def approval_progress(votes: tuple[str, ...], policy: Policy) -> str:
    """ "Approved 1 of 2 · waiting for <@carol> or <!subteam^S1>" (who approved so far
    follows)."""
    line = f":hourglass: *Approved {len(votes)} of {policy.approvals_required}*"
    if policy.has_reviewers:
        line += f" · waiting for {reviewers_text(policy)}"
    if votes:
        line += " · by " + ", ".join(mention(u) for u in votes)
    return line


def gallery_not_in_channel(channel_id: str, reason: str) -> str:
    """To the approver: the image could not go to the gallery; the approval stands."""
    if reason == "not_in_channel":
        fix = (
            f"I'm not a member of <#{channel_id}>. Invite me there with `/invite @imagine` "
            "(or mention me in that channel and choose *Add to channel*)"
        )
    else:
        fix = f"I can't post in <#{channel_id}> (Slack says `{escape(reason)}`); check it exists"
    return (
        f":warning: The image is approved, but I could not publish it to the gallery yet. "
        f"{fix}; I keep trying and post it once I can. Your approval stands."
    )


def change_note(user_id: str, label: str, comment: str) -> str:
    """The thread note of a change request (the comment escaped and quoted)."""
    quoted = "\n".join(f"> {escape(line)}" for line in comment.splitlines() or [""])
    return f":memo: <@{user_id}> requested changes to {escape(label)}:\n{quoted}"


EMPTY_COMMENT = "Write what should change (up to 3,000 characters)."
SETTINGS_NOT_OPENED = (
    "I couldn't open the settings window (Slack gives an app 3 seconds to open it). "
    "Try `/imagine settings` again, or use `/imagine review set …`."
)
# Cost control (issue 11): quota refusals, duplicates, budget alerts, usage, quota settings
# ---------------------------------------------------------------------------------------


def _usd(value: float) -> str:
    """USD for people: cents below $100 ("$0.042" keeps a third decimal when it matters)."""
    text = f"${value:,.2f}"
    return f"${value:,.3f}" if value and round(value, 2) != round(value, 3) else text


def _reset_text(resets_at: float, *, monthly: bool) -> str:
    moment = datetime.fromtimestamp(resets_at, UTC)
    if monthly:
        return f"resets on {moment.day} {moment:%B} at 00:00 UTC"
    return "resets at 00:00 UTC"


def quota_refused(err: QuotaExceeded) -> str:
    """Which limit refused a request, how much is used, when it resets; nothing queued."""
    monthly = err.limit_kind is not Limit.USER_DAILY
    resets = _reset_text(err.resets_at, monthly=monthly)
    if err.limit_kind is Limit.USER_DAILY:
        used, limit = int(err.used), int(err.limit)
        asked = f" (this request needs {int(err.asked)})" if used < limit else ""
        text = f"You've used {used} of {limit} images today{asked}; {resets}."
    elif err.limit_kind is Limit.UNPRICED:
        text = (
            f"This workspace has a monthly budget, and the model `{escape(err.model)}` has no "
            "price in the price table, so I can't tell what it would cost. Ask an admin to add "
            "it to `IMAGE_PRICES`."
        )
    else:
        who = "This channel has" if err.limit_kind is Limit.CHANNEL_MONTHLY else "The workspace has"
        text = (
            f"{who} spent {_usd(err.used)} of its {_usd(err.limit)} monthly image budget; this "
            f"request would cost about {_usd(err.asked)}. The budget {resets}."
        )
    return f":no_entry: {text}\nNothing was queued."


def duplicate_text(seconds_ago: float, link: str | None) -> str:
    """The private note for a repeated request (`link` to the earlier thread, if known)."""
    ago = f"{max(1, round(seconds_ago))} s ago"
    where = f"<{link}|that thread>" if link else "this channel (the thread is being opened)"
    return (
        f":repeat: You asked for this {ago}; the images are coming in {where}. "
        "Nothing new was queued. Click *Generate anyway* to make another set."
    )


def budget_alert(month: str, spent: float, limit: float) -> str:
    """The DM to admins when the workspace reaches 80 % of its monthly budget."""
    share = round(100 * spent / limit) if limit else 100
    return (
        f":warning: Image spend this month ({month}) has reached {_usd(spent)}, {share} % of "
        f"the {_usd(limit)} budget (`QUOTA_TEAM_MONTHLY_USD`). Requests over the budget will "
        "be refused until the month ends. `/imagine usage` shows who and what."
    )


def _totals_line(label: str, t: Totals) -> str:
    usd = _usd(t.usd)
    if t.unpriced:
        usd += f" + {t.unpriced} unpriced"
    return f"{label}: {t.images} image{'s' if t.images != 1 else ''}, {usd}"


def usage_personal(u: PersonalUsage) -> str:
    """`/imagine usage` for one person."""
    lines = ["*Your image usage*", _totals_line("Today", u.today)]
    lines.append(_totals_line(f"This month ({u.month_name})", u.month))
    if u.exempt:
        lines.append("Daily quota: none for you (you are an admin).")
    elif u.daily_limit is None:
        lines.append("Daily quota: unlimited.")
    else:
        lines.append(
            f"Daily quota: {u.remaining_today} of {u.daily_limit} images left today; resets at "
            "00:00 UTC."
        )
    return "\n".join(lines)


def _top_lines(title: str, items: list[tuple[str, Totals]], mention: str) -> list[str]:
    if not items:
        return []
    shown = []
    for name, t in items:
        label = mention.format(escape(name)) if mention else f"`{escape(name)}`"
        if mention and is_forgotten(name):
            label = FORGOTTEN_PERSON
        shown.append(_totals_line(label, t))
    return [f"*{title}*", *(f"• {line}" for line in shown)]


def usage_team(t: TeamUsage) -> str:
    """The admin part of `/imagine usage`: the workspace's month."""
    budget = f" of {_usd(t.budget)} budget" if t.budget is not None else " (no budget set)"
    rate = f"{round(100 * t.cache_hit_rate)} %" if t.cache_hit_rate is not None else "n/a"
    lines = [
        f"*Workspace this month ({t.month_name})*",
        _totals_line("Total", t.month) + budget,
        f"Cache hits: {t.month.reused} of {t.month.generations} generations ({rate}).",
    ]
    lines += _top_lines("Top users", t.top_users, "<@{}>")
    lines += _top_lines("Top channels", t.top_channels, "<#{}>")
    lines += _top_lines("Top models", t.top_models, "")
    return "\n".join(lines)


QUOTA_USAGE = (
    "`/imagine quota` shows this channel's limits; admins can change them: "
    "`/imagine quota set --user-daily N --team-monthly-usd X` (either or both; `none` "
    "removes one) or `/imagine quota off` (back to the workspace settings)."
)
QUOTA_ADMINS_ONLY = "Only admins can change quotas. " + QUOTA_USAGE


def quota_status(
    user_daily: int | None,
    monthly_usd: float | None,
    override: tuple[int | None, float | None] | None,
) -> str:
    """`/imagine quota`: the limits in force in this channel and where they come from."""
    daily = override[0] if override and override[0] is not None else user_daily
    channel_usd = override[1] if override else None
    lines = [
        "*Quotas in this channel*",
        f"Images per person per day: {daily if daily is not None else 'unlimited'}"
        + (" (channel override)" if override and override[0] is not None else ""),
        "Workspace budget per month: "
        + (_usd(monthly_usd) if monthly_usd is not None else "unlimited"),
    ]
    if channel_usd is not None:
        lines.append(f"This channel's budget per month: {_usd(channel_usd)} (channel override)")
    return "\n".join(lines) + "\n" + QUOTA_USAGE


# ---------------------------------------------------------------------------------------
# Privacy (issue 12): `/imagine forget-me`.
# ---------------------------------------------------------------------------------------

FORGET_NOTHING = (
    "There is nothing of yours to forget here: no sessions, prompts, images or posted files."
)
FORGET_NOT_YOURS = (
    "This button belongs to someone else's `/imagine forget-me`. "
    "To erase your own data, run `/imagine forget-me` yourself."
)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def forget_preview(p: ForgetPreview) -> str:
    """The private preview of `/imagine forget-me`: what will be removed, what stays."""
    return (
        "*Forget me*: this will permanently delete, in this workspace:\n"
        f"• {_n(p.sessions, 'session')} you started and the prompts and replies of "
        f"{_n(p.generations, 'image request')} (yours, and others' in your sessions)\n"
        f"• {_n(p.images, 'generated image')} and {_n(p.attachments, 'image')} posted in "
        "threads\n"
        "• the bot's messages and files in your sessions (deleted from Slack too)\n"
        f"{_gallery_line(p.gallery_posts)}{_running_line(p.running)}{_waiting_line(p.waiting)}"
        "Your approvals stay as anonymous approvals and usage keeps anonymous totals, so "
        "other people's history stays true. This cannot be undone."
    )


def _gallery_line(posts: int) -> str:
    """The preview's line about gallery posts of the person's images (none: no line)."""
    if not posts:
        return ""
    return f"• {_n(posts, 'gallery post')} of your images (deleted from Slack too)\n"


def _waiting_line(waiting: int) -> str:
    """The line about the person's requests not started yet (none: no line)."""
    if not waiting:
        return ""
    return f"• {_n(waiting, 'request')} of yours not started yet (dropped)\n"


def _running_line(running: int) -> str:
    """The preview's line about the person's versions still being made (none: no line)."""
    if not running:
        return ""
    return f"• {_n(running, 'version')} still being made: cancelled, nothing more is posted\n"


def forget_done(r: ForgetReport, d: DeletionCounts) -> str:
    """The private answer once forget-me ran: what was removed (counts)."""
    if not (
        r.sessions or r.prompts or r.images or r.attachments or r.inputs or r.waiting or d.deleted
    ):
        return "Nothing was left to remove: your data was already forgotten."
    lines = [
        "*Done.* Removed:",
        f"• {_n(r.sessions, 'session')}, {_n(r.prompts, 'prompt')} and replies",
        f"• {_n(r.images, 'generated image')}, {_n(r.attachments, 'posted image')} and "
        f"{_n(r.inputs, 'stored input')}",
        f"• {d.deleted} of the bot's Slack messages and files",
    ]
    if r.waiting:
        lines.append(f"• {_n(r.waiting, 'request')} of yours not started yet")
    approvals = r.votes_anonymised or r.approvals_anonymised  # a vote per person approving
    if approvals:
        lines.append(f"• {_n(approvals, 'approval')} anonymised")
    if d.refused:
        lines.append(f"Slack would not delete {d.refused} of them (not the bot's).")
    if d.retry:
        lines.append(
            f"Slack did not answer for {d.retry} of them: run `/imagine forget-me` again "
            "later to finish."
        )
    return "\n".join(lines)


FORGOTTEN_PERSON = "_someone forgotten_"


def mention(user_id: str) -> str:
    """`<@user>`, or "_someone forgotten_" for the placeholder of a person who used
    forget-me (`core.forget.is_forgotten`): no Slack user has that id."""
    return FORGOTTEN_PERSON if is_forgotten(user_id) else f"<@{user_id}>"


# ---------------------------------------------------------------------------------------
# Brand styles (issue 12): *Save style…* on a result. Modal errors are plain text (Slack
# shows them under the field: https://docs.slack.dev/reference/views/modal-views).
# ---------------------------------------------------------------------------------------

STYLE_IMAGE_GONE = "This image is gone or belongs to another conversation; nothing was saved."


def style_field_error(problem: StrEnum, name: str) -> str:
    """Why the *Save style* modal was not saved, for the field to change (plain text)."""
    sentences = {
        "bad_name": "Use letters, digits, - and _ (up to 40 characters, not none).",
        "not_allowed": f"{name} belongs to someone else: only its creator or an admin can "
        "change it. Pick another name.",
        "full": f"{name} already has {MAX_STYLE_REFERENCES} reference images. Pick another "
        "name, or delete it first.",
        "no_text": "Describe the look in a few words.",
        "too_long": f"Keep it under {MAX_STYLE_TEXT} characters.",
    }
    return sentences.get(str(problem), "Check the name and the text.")


def style_text_refused(
    categories: tuple[str, ...], terms: tuple[str, ...], unavailable: bool = False
) -> str:
    """The content policy refused a style text typed in the modal (plain text)."""
    if unavailable:
        return "The content check is not answering right now; try again in a minute."
    why = ", ".join(categories or terms) or "the content policy"
    return f"This text was refused ({why}). Change those words and save again."


def style_saved_from_result(saved: SavedFromResult) -> str:
    """The private answer once a style was saved from a result."""
    shown = escape(saved.name)
    verb = "Saved" if saved.new else "Updated"
    return (
        f"{verb} style `{shown}` with {escape(saved.label)} as a reference image "
        f"({saved.references} of {MAX_STYLE_REFERENCES}). "
        f"Use it with `/imagine <prompt> --style {shown}`."
    )


# ---------------------------------------------------------------------------------------
# App Home, reviewer mentions and pending gallery posts (issue 10, second part)
# ---------------------------------------------------------------------------------------

HOME_WAITING = "Waiting for your review"
HOME_SESSIONS = "Your recent sessions"
HOME_APPROVED = "Recently approved"
HOME_NOTHING_WAITING = "Nothing is waiting for your review."
HOME_NO_SESSIONS = "You have no sessions yet. Type `/imagine <prompt>` in a channel to start one."
HOME_IN_GALLERY = "See it in the gallery"
HOME_NOTHING_APPROVED = "Nothing was approved lately in your channels."
HOME_NOT_A_MEMBER = (
    "You are not a member of that channel any more, so you can't review its images. "
    "Join it, then open this tab again."
)


def home_waiting_line(label: str, words: str, requested_by: str, channel_id: str) -> str:
    """One image under "Waiting for your review" (`words` escaped here)."""
    return f"*{escape(label)}* in <#{channel_id}> by {mention(requested_by)}\n{escape(words)}"


def home_session_line(
    prompt: str, channel_id: str, versions: int, latest: int | None, link: str | None
) -> str:
    """One of the viewer's sessions: the prompt, where, how many versions, the thread link."""
    where = f"<{link}|Open the thread>" if link else f"in <#{channel_id}>"
    count = f"{versions} version{'s' if versions != 1 else ''}"
    newest = f", newest v{latest}" if latest is not None else ", nothing posted yet"
    return f"*{escape(prompt)}*\n<#{channel_id}> · {count}{newest} · {where}"


def home_approved_line(
    label: str, words: str, channel_id: str, approved_by: str, link: str | None, in_gallery: bool
) -> str:
    """One recently approved image: what, where, who approved, a link (the gallery post
    when there is one, else the result in its thread)."""
    target = HOME_IN_GALLERY if in_gallery else "Open the thread"
    where = f"<{link}|{target}>" if link else f"in <#{channel_id}>"
    return (
        f":white_check_mark: *{escape(label)}* in <#{channel_id}>, approved by "
        f"{mention(approved_by)} · {where}\n{escape(words)}"
    )


def reviewers_wanted(policy: Policy, version: int) -> str:
    """The thread reply that calls the reviewers once per session (their mentions notify
    them): who, how many approvals, where to click."""
    names = reviewer_mentions(policy)
    count = policy.approvals_required
    need = f"{count} approval{'s' if count != 1 else ''}"
    return (
        f":eyes: {' '.join(names)}: v{version} is waiting for your review ({need} needed). "
        "Use *Approve* or *Request changes* on the image, here or in my Home tab."
    )


def gallery_pending(channel_id: str, reason: str) -> str:
    """The thread note when the gallery post could not be made yet: the approval stands,
    the post is retried."""
    if reason == "not_in_channel":
        why = f"I'm not a member of <#{channel_id}> (invite me with `/invite @imagine`)"
    elif reason in ("channel_not_found", "is_archived"):
        why = f"I can't find <#{channel_id}> (Slack says `{escape(reason)}`)"
    else:
        why = "Slack did not accept the post just now"
    return (
        f":hourglass: Approved. The post to the gallery <#{channel_id}> is pending: {why}. "
        "I'll keep trying and post it once it goes through."
    )


CHANGES_NOT_OPENED = (
    "I couldn't open the comment window (Slack gives an app 3 seconds to open it). "
    "Click *Request changes* again, or reply in the thread with what should change."
)


# -- Speed under load (issue 13) ---------------------------------------------------------

START_FAILED = (
    "Something went wrong while queueing this request, so nothing was queued. Please send it again."
)
START_STOPPED = (
    "The bot is restarting, so this request was not queued. Please send it again in a moment."
)
