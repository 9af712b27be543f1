"""Every user-facing sentence the bot says that is not part of a Block Kit builder.

`core` returns codes and data (error kinds, reasons, who/what); this module words them
for Slack (mrkdwn). Block Kit builders live in `bot/blocks.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.mrkdwn import clip, escape
from core.history import SessionSummary, VersionSummary
from core.images import MB, ImageRejected, Rejection, describe_types, type_name
from core.ports import Failure, FailureReason, GenerationView, WaitReason
from core.quotas import Limit, QuotaExceeded
from core.refinement import MAX_INPUTS, Accepted, RefineOutcome
from core.sessions import Refusal
from core.store import NotAnImage
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


def flag_error(error: str, *, in_thread: bool = False) -> str:
    """A bad flag in `/imagine` (or in a reply): what is wrong (core's sentence, which may
    quote what the person typed: escaped) and that nothing was queued."""
    if in_thread:
        return f":warning: {escape(error)}\nNothing was queued."
    return f":warning: {escape(error)}\nNothing was queued. Type `/imagine help` for all flags."


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
        what = f"from {item.parent_label}: {escape(clip(item.instruction, 300))}"
    else:
        what = "new seed" if item.kind == "regenerate" else escape(clip(item.prompt, 300))
    approved = ", ".join(f"image {i + 1} by <@{u}>" for i, u in item.approved)
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
    """A file name as mrkdwn inline code (no backticks/newlines, <= 80 chars, escaped)."""
    clean = " ".join((name or "file").replace("`", "'").split())
    if len(clean) > 80:
        clean = clean[:77] + "..."
    return f"`{escape(clean) or 'file'}`"


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
