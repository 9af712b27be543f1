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
import struct
import warnings
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from PIL import Image

from core.providers.base import DEFAULT_MAX_IMAGE_PIXELS, InputLimits
from core.providers.registry import PROVIDERS
from core.store import NotAnImage, inspect_image

MB = 1024 * 1024
"""One megabyte as the messages count it (bytes)."""

DEFAULT_MAX_PIXELS = DEFAULT_MAX_IMAGE_PIXELS
"""Largest image decoded from anyone (width x height, pixels): ``MAX_IMAGE_PIXELS``."""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALPHA_THRESHOLD = 128
"""A mask pixel with alpha below this is transparent, i.e. part of the area to repaint."""

_TYPE_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF"}
_TYPE_ORDER = ("image/png", "image/jpeg", "image/webp", "image/gif")


class Rejection(StrEnum):
    """Why a posted image cannot be used: the codes `bot.messages` words for people.

    The details each code carries on :class:`ImageRejected` (besides ``name``):

    - ``login_page``: Slack served its HTML sign-in page instead of the bytes.
    - ``empty``: zero bytes.
    - ``too_large``: ``size`` (bytes, or None when unknown), ``limit`` (bytes), ``mask``.
    - ``too_many_pixels``: ``width``/``height`` (pixels, None when the header is beyond
      Pillow's own sanity limit), ``limit`` (pixels, width x height).
    - ``unreadable``: not an image we can read; ``accepted`` (MIME types).
    - ``wrong_kind``: ``kind`` (e.g. "a PDF document"), ``accepted``.
    - ``wrong_type``: a readable image of MIME ``mime`` the provider refuses; ``accepted``.
    - ``animated``: more than one frame; ``accepted``.
    - ``mask_not_png``: ``kind``; ``mask_unreadable``; ``mask_no_alpha``;
      ``mask_no_transparent``; ``mask_all_transparent``.
    - ``mask_scaled_away``: ``size`` and ``base`` ((width, height) pixels), ``which``
      ("transparent" or "opaque": the area that vanished when scaled).
    - ``no_link``: the file object has no ``url_private``.
    - ``deleted``: the file was deleted before we could read it (a ``tombstone`` file).
    - ``not_visible``: Slack would not show the file to the bot (``files.info`` refused).
    - ``external``: an external file (Google Drive, Dropbox, ...); ``service`` if known.
    - ``not_slack_file``: ``url_private`` is not a file URL on Slack's file origins.
    - ``redirected_away``: the download redirected off Slack's file origins.
    - ``http_status``: ``status`` (HTTP status of the download).
    - ``timeout``: the download took longer than the time limit; ``failed``: network error.
    """

    LOGIN_PAGE = "login_page"
    EMPTY = "empty"
    TOO_LARGE = "too_large"
    TOO_MANY_PIXELS = "too_many_pixels"
    UNREADABLE = "unreadable"
    WRONG_KIND = "wrong_kind"
    WRONG_TYPE = "wrong_type"
    ANIMATED = "animated"
    MASK_NOT_PNG = "mask_not_png"
    MASK_UNREADABLE = "mask_unreadable"
    MASK_NO_ALPHA = "mask_no_alpha"
    MASK_NO_TRANSPARENT = "mask_no_transparent"
    MASK_ALL_TRANSPARENT = "mask_all_transparent"
    MASK_SCALED_AWAY = "mask_scaled_away"
    NO_LINK = "no_link"
    DELETED = "deleted"
    NOT_VISIBLE = "not_visible"
    EXTERNAL = "external"
    NOT_SLACK_FILE = "not_slack_file"
    REDIRECTED_AWAY = "redirected_away"
    HTTP_STATUS = "http_status"
    TIMEOUT = "timeout"
    FAILED = "failed"


class ImageRejected(ValueError):
    """An image a person posted cannot be used: a :class:`Rejection` code plus its data.

    ``code``: the Rejection; ``name``: the file name as posted; ``details``: the code's
    data (see Rejection), also readable as attributes (``err.size``, ``err.limit``; None
    when the code has no such detail). ``bot.messages.image_rejected(err)`` words it for
    Slack. ``str(err)`` is a plain one-line summary of the code and data (for logs, and a
    readable fallback for callers that have not switched to the worded reply yet).
    """

    def __init__(self, code: Rejection, name: str, **details: Any) -> None:
        self.code = Rejection(code)
        self.name = name
        self.details = details
        super().__init__(self.summary())

    def __getattr__(self, item: str) -> Any:
        details = self.__dict__.get("details", {})
        if item.startswith("_") or item not in _DETAIL_NAMES:
            raise AttributeError(item)
        return details.get(item)

    @property
    def message(self) -> str:
        """The plain one-line summary (same as ``str(err)``)."""
        return self.summary()

    def summary(self) -> str:
        """``"<name>: <code> (key=value, ...)"`` on one line, without Slack markup."""
        name = " ".join((self.name or "file").split())[:80]
        data = ", ".join(f"{k}={_plain(v)}" for k, v in sorted(self.details.items()))
        return f"{name}: {self.code.value.replace('_', ' ')}" + (f" ({data})" if data else "")


_DETAIL_NAMES = frozenset(
    {"size", "limit", "mask", "width", "height", "accepted", "kind", "mime", "base", "which"}
    | {"status", "service"}
)


def _plain(value: Any) -> str:
    """A detail value for the summary: MIME sets sorted, tuples as WxH."""
    if isinstance(value, frozenset | set):
        return "/".join(sorted(str(v) for v in value))
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}x{value[1]}"
    return " ".join(str(value).split())


ImageLimits = InputLimits
"""What a provider accepts as input images: `core.providers.base.InputLimits` (one class)."""

LIMITS: dict[str, ImageLimits] = {name: cls.info.limits for name, cls in PROVIDERS.items()}
"""Input-image limits by provider, as each provider declares them (`ProviderInfo.limits`)."""


def limits_for(provider: str, *, max_pixels: int | None = None) -> ImageLimits:
    """The input-image limits of a provider (``local``, ``openai``, ``toapis``).

    ``max_pixels`` (width x height) replaces the default pixel cap when given (pass the
    ``MAX_IMAGE_PIXELS`` setting). Raises KeyError naming the known providers for any
    other name.
    """
    try:
        limits = LIMITS[provider.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(LIMITS))
        raise KeyError(f"no image limits for provider {provider!r}; known: {known}") from None
    return limits if max_pixels is None else replace(limits, max_pixels=max_pixels)


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


# -- names for people -------------------------------------------------------------------


def describe_types(mimes: frozenset[str] | set[str]) -> str:
    """Accepted types for a message, e.g. ``"PNG, JPEG or WebP"``."""
    names = [_TYPE_NAMES[m] for m in _TYPE_ORDER if m in mimes]
    names += sorted(m for m in mimes if m not in _TYPE_NAMES)
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} or {names[-1]}"


def type_name(mime: str) -> str:
    """A person's name for an image MIME type (``image/gif`` -> ``GIF``)."""
    return _TYPE_NAMES.get(mime, mime)


# -- pixel cap --------------------------------------------------------------------------


def header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from the image header, without decoding any pixel.

    PNG: read from the IHDR chunk directly. Other formats: Pillow's ``Image.open``, which
    parses the header only. Returns None when the bytes are not a readable image. Raises
    ``PIL.Image.DecompressionBombError`` when Pillow refuses the header itself (over twice
    Pillow's own limit). Blocking but cheap.
    """
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return width, height
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError:
        raise
    except Exception:
        return None


def check_pixels(data: bytes, name: str, max_pixels: int) -> None:
    """Refuse an image whose header says more than ``max_pixels`` (width x height) pixels.

    Runs before anything decodes the image, so a small file that would expand to
    gigabytes (a "decompression bomb") costs nothing. Unreadable headers pass: the checks
    that follow name what the bytes are. Raises ImageRejected(too_many_pixels).
    """
    try:
        size = header_size(data)
    except Image.DecompressionBombError:
        raise ImageRejected(
            Rejection.TOO_MANY_PIXELS, name, width=None, height=None, limit=max_pixels
        ) from None
    if size is None:
        return
    width, height = size
    if width * height > max_pixels:
        raise ImageRejected(
            Rejection.TOO_MANY_PIXELS, name, width=width, height=height, limit=max_pixels
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
    ``limits.max_bytes``; over ``limits.max_pixels`` by its header (before any pixel is
    decoded); not a readable image (naming what it is when recognisable: PDF, ZIP, text,
    HEIC, ...); a type outside ``limits.mimes`` (e.g. GIF for OpenAI); animated. ``name``
    is carried for the reply only. Raises ImageRejected (see Rejection); blocking.
    """
    accepted = limits.mimes
    if looks_like_html(data):
        raise ImageRejected(Rejection.LOGIN_PAGE, name)
    if not data:
        raise ImageRejected(Rejection.EMPTY, name)
    if len(data) > limits.max_bytes:
        raise ImageRejected(
            Rejection.TOO_LARGE, name, size=len(data), limit=limits.max_bytes, mask=False
        )
    check_pixels(data, name, limits.max_pixels)
    try:
        width, height, mime = inspect_image(data)
    except NotAnImage:
        kind = sniff_kind(data)
        if kind is None:
            raise ImageRejected(Rejection.UNREADABLE, name, accepted=accepted) from None
        raise ImageRejected(Rejection.WRONG_KIND, name, kind=kind, accepted=accepted) from None
    if mime not in limits.mimes:
        raise ImageRejected(Rejection.WRONG_TYPE, name, mime=mime, accepted=accepted)
    if _is_animated(data):
        raise ImageRejected(Rejection.ANIMATED, name, accepted=accepted)
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


def prepare_mask(
    data: bytes, name: str, base_size: tuple[int, int], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> PreparedMask:
    """Turn a posted PNG with transparency into the mask for an edit of a ``base_size`` image.

    ``base_size`` is (width, height) in pixels. The mask must be a PNG (by content) with
    an alpha channel (RGBA, LA, or palette/grey/RGB with a tRNS transparency entry).
    Pixels with alpha below 128 are the area to repaint. Refused with ImageRejected when:
    Slack sent its login page, not a PNG, its header says more than ``max_pixels``
    (width x height; checked before decoding), unreadable, no alpha channel, no
    transparent pixel, or no opaque pixel (nothing would be kept). A mask of another size
    is scaled to ``base_size`` with nearest-neighbour sampling (edges stay hard) and
    ``scaled_from`` records its size. The output alpha is exactly 0 (repaint) or 255
    (keep), RGB black: what OpenAI's edits endpoint reads from ``mask`` (fully
    transparent = edit here). Raises ValueError for a non-positive ``base_size``. Blocking.
    """
    base_w, base_h = int(base_size[0]), int(base_size[1])
    if base_w <= 0 or base_h <= 0:
        raise ValueError(f"base_size must be positive pixels, got {base_size!r}")
    if looks_like_html(data):
        raise ImageRejected(Rejection.LOGIN_PAGE, name)
    if not data.startswith(PNG_SIGNATURE):
        raise ImageRejected(Rejection.MASK_NOT_PNG, name, kind=_mask_kind(data))
    check_pixels(data, name, max_pixels)
    rgba, size = _mask_alpha_image(data, name)
    alpha = _binary_alpha(rgba)
    transparent, opaque = _counts(alpha)
    if transparent == 0:
        raise ImageRejected(Rejection.MASK_NO_TRANSPARENT, name)
    if opaque == 0:
        raise ImageRejected(Rejection.MASK_ALL_TRANSPARENT, name)
    scaled_from: tuple[int, int] | None = None
    if size != (base_w, base_h):
        scaled_from = (size[0], size[1])
        alpha = alpha.resize((base_w, base_h), Image.Resampling.NEAREST)
        transparent, opaque = _counts(alpha)
        if transparent == 0 or opaque == 0:
            which = "transparent" if transparent == 0 else "opaque"
            raise ImageRejected(
                Rejection.MASK_SCALED_AWAY, name, size=size, base=(base_w, base_h), which=which
            )
    out = Image.new("RGBA", (base_w, base_h), (0, 0, 0, 255))
    out.putalpha(alpha)
    buf = io.BytesIO()
    out.save(buf, format="PNG", optimize=True)
    return PreparedMask(data=buf.getvalue(), width=base_w, height=base_h, scaled_from=scaled_from)


def _mask_alpha_image(data: bytes, name: str) -> tuple[Image.Image, tuple[int, int]]:
    """Decode a mask PNG to RGBA; (image, (width, height)). Raises ImageRejected when the
    PNG is unreadable or has no alpha channel."""
    try:
        inspect_image(data)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode = img.mode
            has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or ("transparency" in img.info)
            rgba = img.convert("RGBA") if has_alpha else None
            size = img.size
    except (NotAnImage, OSError, ValueError) as err:
        raise ImageRejected(Rejection.MASK_UNREADABLE, name) from err
    if rgba is None:
        raise ImageRejected(Rejection.MASK_NO_ALPHA, name)
    return rgba, size


def _mask_kind(data: bytes) -> str:
    """What a non-PNG mask is, for the refusal ("a JPEG image", "a PDF document", ...)."""
    try:
        _, _, mime = inspect_image(data)
    except NotAnImage:
        return sniff_kind(data) or "not an image I can read"
    return f"a {type_name(mime)} image"


def _binary_alpha(rgba: Image.Image) -> Image.Image:
    """The alpha channel (mode L) mapped to 0 (alpha < 128, repaint) or 255 (keep)."""
    lut = [0] * ALPHA_THRESHOLD + [255] * (256 - ALPHA_THRESHOLD)
    return rgba.getchannel("A").point(lut)


def _counts(alpha: Image.Image) -> tuple[int, int]:
    """(transparent, opaque) pixel counts of a binary mode-L alpha image."""
    hist = alpha.histogram()
    return hist[0], hist[255]
