"""Checking images that people post in a session's thread: references and masks.

Pure, blocking functions (Pillow decodes in the caller's thread, so async callers run
them with ``asyncio.to_thread``). Nothing here knows about Slack: the Slack side
(`bot.files`) downloads the bytes and turns :class:`ImageRejected` into a thread reply.

Everything is judged by content, never by the file name: Slack names a file whatever the
person called it, and when the bot may not read a file Slack answers ``url_private`` with
its HTML login page and HTTP 200 instead of the bytes.

Sizes are in bytes (messages show MB = 1,048,576 bytes); image sizes are in pixels.

Provider limits (see :data:`LIMITS`):

- ``openai``: the Images API edits endpoint takes PNG, JPEG or WebP images, each under
  50 MB; the mask must be a PNG under 4 MB with the same dimensions as the image, whose
  fully transparent areas (alpha 0) mark where the image is edited.
- ``toapis``: ``POST /v1/uploads/images`` takes JPEG, PNG, WebP or GIF up to 10 MB, and a
  mask PNG up to 4 MB.
- ``local``: the offline renderer; 20 MB PNG/JPEG/WebP, kept modest because it decodes
  everything in-process.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

from PIL import Image

from core.providers.registry import PROVIDERS
from core.store import NotAnImage, inspect_image

MB = 1024 * 1024
"""One megabyte as the messages count it (bytes)."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALPHA_THRESHOLD = 128
"""A mask pixel with alpha below this is transparent, i.e. part of the area to repaint."""

_TYPE_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF"}
_TYPE_ORDER = ("image/png", "image/jpeg", "image/webp", "image/gif")


class ImageRejected(ValueError):
    """An image a person posted cannot be used.

    ``str(err)`` is the one-line reply (Slack mrkdwn) that names the file, says why, and
    what to post instead.
    """


@dataclass(frozen=True)
class ImageLimits:
    """What a provider accepts as input images.

    ``max_bytes``: largest reference image, in bytes. ``mimes``: accepted reference types
    (judged by content). ``mask_max_bytes``: largest mask PNG, in bytes.
    """

    max_bytes: int
    mimes: frozenset[str]
    mask_max_bytes: int


LIMITS: dict[str, ImageLimits] = {
    name: ImageLimits(
        max_bytes=cls.info.limits.max_bytes,
        mimes=cls.info.limits.mimes,
        mask_max_bytes=cls.info.limits.mask_max_bytes,
    )
    for name, cls in PROVIDERS.items()
}
"""Input-image limits by provider, as each provider declares them (`ProviderInfo.limits`)."""


def limits_for(provider: str) -> ImageLimits:
    """The input-image limits of a provider (``local``, ``openai``, ``toapis``).

    Raises KeyError naming the known providers for any other name.
    """
    try:
        return LIMITS[provider.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(LIMITS))
        raise KeyError(f"no image limits for provider {provider!r}; known: {known}") from None


@dataclass(frozen=True)
class CheckedImage:
    """A usable reference image: MIME type, size in pixels, length in bytes."""

    mime: str
    width: int
    height: int
    bytes: int


@dataclass(frozen=True)
class PreparedMask:
    """A mask ready for an edit.

    ``data``: PNG bytes, RGBA, exactly ``width`` x ``height`` pixels (the base image's size),
    alpha 0 where the image is to be repainted and 255 elsewhere (the format of OpenAI's
    edits ``mask``). ``scaled_from``: the posted mask's size in pixels when it had to be
    scaled to the base size, else ``None``.
    """

    data: bytes
    width: int
    height: int
    scaled_from: tuple[int, int] | None


# -- messages ---------------------------------------------------------------------------


def file_label(name: str) -> str:
    """The file name as mrkdwn inline code for replies (no backticks/newlines, <= 80 chars)."""
    clean = " ".join((name or "file").replace("`", "'").split())
    if len(clean) > 80:
        clean = clean[:77] + "..."
    return f"`{clean or 'file'}`"


def _mb(size: int) -> str:
    """A byte count as MB for people: one decimal below 10 MB, whole numbers above."""
    value = size / MB
    if value >= 10:
        return f"{value:.0f} MB"
    if value >= 0.1:
        return f"{value:.1f} MB"
    return f"{round(size / 1024)} KB" if size >= 1024 else f"{size} bytes"


def _limit_mb(limit: int) -> str:
    """A byte limit as MB (limits are whole MB in practice)."""
    return f"{limit / MB:g} MB"


def describe_types(mimes: frozenset[str] | set[str]) -> str:
    """Accepted types for a message, e.g. ``"PNG, JPEG or WebP"``."""
    names = [_TYPE_NAMES[m] for m in _TYPE_ORDER if m in mimes]
    names += sorted(m for m in mimes if m not in _TYPE_NAMES)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def login_page_message(name: str) -> str:
    """Reply for Slack's HTML login page served in place of a file's bytes.

    Slack answers ``url_private`` without a valid ``Authorization: Bearer`` token (or when
    the app may not see the file) with its sign-in page and HTTP 200.
    """
    return (
        f"I couldn't download {file_label(name)}: Slack sent a login page instead of the file. "
        "Make sure the bot is a member of this channel (`/invite` it) and the app has the "
        "`files:read` scope, then post the image again."
    )


def too_large_message(name: str, size: int | None, limit: int, *, mask: bool = False) -> str:
    """Reply for a file over ``limit`` bytes; ``size`` in bytes, or None when unknown.

    ``mask`` selects the advice for a mask PNG instead of a reference image.
    """
    actual = f"is {_mb(size)}" if size is not None else f"is larger than {_limit_mb(limit)}"
    what, advice = (
        (
            "masks",
            "Post a smaller PNG (scale it down; a mask only needs opaque and transparent pixels).",
        )
        if mask
        else ("images", "Post a smaller version (scale it down or export it as JPEG).")
    )
    return (
        f"{file_label(name)} {actual}, over the {_limit_mb(limit)} limit for {what} here. {advice}"
    )


# -- content sniffing -------------------------------------------------------------------


def looks_like_html(data: bytes) -> bool:
    """True when the bytes are an HTML page (``<!DOCTYPE html``/``<html`` after whitespace)."""
    head = data[:512].lstrip(b"\xef\xbb\xbf").lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


def sniff_kind(data: bytes) -> str | None:
    """A person's name for what non-image (or unsupported image) bytes are, if recognisable.

    Covers what people most often post by mistake: PDF, ZIP (also .docx/.xlsx/.pptx),
    HEIC/AVIF photos, videos, SVG drawings, other Pillow-readable image formats and text.
    Returns e.g. ``"a PDF document"``, or None when unrecognised.
    """
    head = data[:64]
    if head.startswith(b"%PDF-"):
        return "a PDF document"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "a ZIP archive (or Office document)"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "a HEIC photo"
        if brand in (b"avif", b"avis"):
            return "an AVIF image"
        return "a video"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "a video"
    stripped = data[:1024].lstrip(b"\xef\xbb\xbf").lstrip()
    if stripped.startswith(b"<svg") or (stripped.startswith(b"<?xml") and b"<svg" in stripped):
        return "an SVG drawing"
    fmt = _pillow_format(data)
    if fmt == "MPO":
        return "a multi-picture JPEG (MPO)"
    if fmt in ("PNG", "JPEG", "WEBP", "GIF"):  # readable header, unreadable pixels
        return f"a damaged or incomplete {_TYPE_NAMES['image/' + fmt.lower()]} file"
    if fmt:
        return f"a {fmt} image"
    if _is_text(data[:4096]):
        return "a text file"
    return None


def _pillow_format(data: bytes) -> str | None:
    """The format Pillow identifies (e.g. ``"BMP"``, ``"TIFF"``), or None."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format
    except Exception:
        return None


def _is_text(sample: bytes) -> bool:
    """True for non-empty UTF-8 text without control bytes other than whitespace."""
    if not sample or b"\x00" in sample:
        return False
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError:
        # The sample may cut a multi-byte character at its end.
        try:
            text = sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(ch.isprintable() or ch in "\t\r\n\f" for ch in text)


def _is_animated(data: bytes) -> bool:
    """True for images with more than one frame (animated GIF/WebP/APNG)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return bool(getattr(img, "is_animated", False))
    except Exception:
        return False


# -- references -------------------------------------------------------------------------


def check_reference(data: bytes, name: str, limits: ImageLimits) -> CheckedImage:
    """Judge posted bytes as a reference image for a provider with ``limits``.

    Checks, in order: Slack's HTML login page instead of the file; empty; over
    ``limits.max_bytes``; not a readable image (naming what it is when recognisable:
    PDF, ZIP, text, HEIC, ...); a type outside ``limits.mimes`` (e.g. GIF for OpenAI);
    animated. ``name`` is used only in messages. Raises ImageRejected; blocking.
    """
    accepted = describe_types(limits.mimes)
    label = file_label(name)
    if looks_like_html(data):
        raise ImageRejected(login_page_message(name))
    if not data:
        raise ImageRejected(f"{label} is empty (0 bytes). Post the image again.")
    if len(data) > limits.max_bytes:
        raise ImageRejected(too_large_message(name, len(data), limits.max_bytes))
    try:
        width, height, mime = inspect_image(data)
    except NotAnImage:
        kind = sniff_kind(data)
        if kind is None:
            raise ImageRejected(
                f"{label} isn't an image I can read (it may be damaged or in an unsupported "
                f"format). Post a {accepted} image instead."
            ) from None
        raise ImageRejected(
            f"{label} is {kind}, not an image I can use. Post a {accepted} image instead."
        ) from None
    if mime not in limits.mimes:
        raise ImageRejected(
            f"{label} is a {_TYPE_NAMES.get(mime, mime)}, which the current image provider "
            f"doesn't accept. Post a {accepted} image instead."
        )
    if _is_animated(data):
        raise ImageRejected(
            f"{label} is animated; a reference must be a still image. "
            f"Post a single frame as a {accepted} image."
        )
    return CheckedImage(mime=mime, width=width, height=height, bytes=len(data))


# -- masks ------------------------------------------------------------------------------

_MASK_WORD = re.compile(r"\bmask\b", re.IGNORECASE)
_MASK_NAME = re.compile(r"^mask.*\.png$", re.IGNORECASE)


def is_mask_request(text: str, filename: str) -> bool:
    """True when a posted image is meant as a mask.

    Either the message text contains the word ``mask`` (whole word, any case: "mask",
    "Mask:", but not "masked" or "unmask"), or the file is named ``mask*.png`` (any case).
    """
    if text and _MASK_WORD.search(text):
        return True
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    return bool(_MASK_NAME.match(base))


_HOW_TO_MASK = (
    "Erase the area to repaint so it is transparent, and export as PNG (keep the transparency)."
)


def prepare_mask(data: bytes, name: str, base_size: tuple[int, int]) -> PreparedMask:
    """Turn a posted PNG with transparency into the mask for an edit of a ``base_size`` image.

    ``base_size`` is (width, height) in pixels. The mask must be a PNG (by content) with
    an alpha channel (RGBA, LA, or palette/grey/RGB with a tRNS transparency entry).
    Pixels with alpha below 128 are the area to repaint. Refused with ImageRejected when:
    Slack sent its login page, not a PNG, unreadable, no alpha channel, no transparent
    pixel, or no opaque pixel (nothing would be kept). A mask of another size is scaled
    to ``base_size`` with nearest-neighbour sampling (edges stay hard) and ``scaled_from``
    records its size. The output alpha is exactly 0 (repaint) or 255 (keep), RGB black:
    what OpenAI's edits endpoint reads from ``mask`` (fully transparent = edit here).
    Blocking.
    """
    label = file_label(name)
    base_w, base_h = int(base_size[0]), int(base_size[1])
    if base_w <= 0 or base_h <= 0:
        raise ValueError(f"base_size must be positive pixels, got {base_size!r}")
    if looks_like_html(data):
        raise ImageRejected(login_page_message(name))
    if not data.startswith(PNG_SIGNATURE):
        kind = _mask_kind(data)
        raise ImageRejected(
            f"{label} can't be a mask: it is {kind}, and a mask must be a PNG with "
            f"transparency. {_HOW_TO_MASK}"
        )
    try:
        inspect_image(data)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or ("transparency" in img.info)
            rgba = img.convert("RGBA") if has_alpha else None
            size = img.size
    except (NotAnImage, OSError, ValueError) as err:
        raise ImageRejected(
            f"{label} isn't a PNG I can read (it may be damaged). {_HOW_TO_MASK}"
        ) from err
    if rgba is None:
        raise ImageRejected(
            f"{label} can't be a mask: it has no transparency (no alpha channel), so there is "
            f"no area to repaint. {_HOW_TO_MASK}"
        )
    alpha = _binary_alpha(rgba)
    transparent, opaque = _counts(alpha)
    if transparent == 0:
        raise ImageRejected(
            f"{label} can't be a mask: none of its pixels is transparent, so there is no "
            f"area to repaint. {_HOW_TO_MASK}"
        )
    if opaque == 0:
        raise ImageRejected(
            f"{label} can't be a mask: every pixel is transparent, so nothing of the image "
            "would be kept. Leave the parts to keep opaque and erase only the area to "
            "repaint, or reply without a mask to change the whole image."
        )
    scaled_from: tuple[int, int] | None = None
    if size != (base_w, base_h):
        scaled_from = (size[0], size[1])
        alpha = alpha.resize((base_w, base_h), Image.Resampling.NEAREST)
        transparent, opaque = _counts(alpha)
        if transparent == 0 or opaque == 0:
            which = "transparent" if transparent == 0 else "opaque"
            raise ImageRejected(
                f"{label} is {size[0]}×{size[1]} pixels and the image is {base_w}×{base_h}; "
                f"scaled to fit, its {which} area disappears. Post a mask the size of the "
                f"image. {_HOW_TO_MASK}"
            )
    out = Image.new("RGBA", (base_w, base_h), (0, 0, 0, 255))
    out.putalpha(alpha)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return PreparedMask(data=buf.getvalue(), width=base_w, height=base_h, scaled_from=scaled_from)


def _mask_kind(data: bytes) -> str:
    """What a non-PNG mask is, for the refusal ("a JPEG image", "a PDF document", ...)."""
    try:
        _, _, mime = inspect_image(data)
    except NotAnImage:
        return sniff_kind(data) or "not an image I can read"
    return f"a {_TYPE_NAMES.get(mime, mime)} image"


def _binary_alpha(rgba: Image.Image) -> Image.Image:
    """The alpha channel (mode L) mapped to 0 (alpha < 128, repaint) or 255 (keep)."""
    lut = [0] * ALPHA_THRESHOLD + [255] * (256 - ALPHA_THRESHOLD)
    return rgba.getchannel("A").point(lut)


def _counts(alpha: Image.Image) -> tuple[int, int]:
    """(transparent, opaque) pixel counts of a binary mode-L alpha image."""
    hist = alpha.histogram()
    return hist[0], hist[255]
