"""Offline image rendering with Pillow for the `local` provider ("local preview renderer").

`render_png` draws a deterministic preview of a prompt: a flat landscape that follows the
words it recognises (colours, time of day, a few subjects: `core.providers.local.words`,
drawn by `core.providers.local.scene`), and under it one opaque caption band with what
the person typed and the footer "local preview · seed N", so nobody takes it for a real
model output.

Reference images: the first one is the base image of a refinement. A base this renderer
made carries its layout in a PNG text chunk (`METADATA_KEY`): the new version is drawn
with the same layout and subjects and the new prompt, so it reads as an edit of the base,
and the base's own caption band never shows again. Any other base fills the picture
(70 %) under the new drawing. The other references appear as framed thumbnails above the
band. A mask (transparent pixels = the area to repaint) keeps the base where it is
opaque and paints the new scene inside the transparent area.

Everything here is blocking CPU and file work: call it through `asyncio.to_thread`.
Same inputs give byte-identical PNG output.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from core.providers.local.scene import draw_scene, scene_subjects
from core.providers.local.words import SUBJECTS, Plan, read_plan

__all__ = ["MAX_SIDE", "METADATA_KEY", "RenderInputError", "caption_band_height", "render_png"]

MAX_SIDE = 8192
"""Largest width or height (pixels) the renderer accepts."""

METADATA_KEY = "imagine-local-preview"
"""The PNG text chunk holding the layout of a rendered image: JSON
`{"layout": int, "band": caption band height in pixels, "subjects": {name: many?}}`."""

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_MARGIN_FRACTION = 0.04
_BAND: tuple[int, int, int] = (18, 20, 26)
_MAX_CAPTION_LINES = 2


class RenderInputError(ValueError):
    """A reference image or mask could not be read (missing file, not an image).

    Attributes:
        what: which input failed, e.g. "reference image 2 (ab12.png)" or "the mask (m.png)".
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"cannot read {what}: {reason}")
        self.what = what


@dataclass(frozen=True)
class _Base:
    """The base image, without the caption band when this renderer made it (then `layout`
    and `subjects` are the ones it was drawn with)."""

    image: Image.Image
    layout: int | None = None
    subjects: dict[str, bool] | None = None


def render_png(
    prompt: str,
    width: int,
    height: int,
    seed: int,
    *,
    caption: str | None = None,
    negative_prompt: str | None = None,
    quality: str | None = None,
    references: Sequence[Path] = (),
    mask: Path | None = None,
) -> bytes:
    """Render one deterministic preview image and return it as PNG bytes.

    Args:
        prompt: the full text prompt; its recognised words shape the picture.
        width, height: output size in pixels (1..MAX_SIDE each); the PNG has exactly this size.
        seed: places everything (unless the base carries a layout) and varies the details;
            any int.
        caption: the text written in the caption band (what the person typed); None writes
            `prompt`.
        negative_prompt: subjects it names are left out; shown in the footer as "no: ...".
        quality: "low" draws fewer details; anything else draws the full set.
        references: image files, oldest first; the first is the base image, the rest are
            drawn as framed thumbnails above the caption band. Any Pillow-readable format.
        mask: a PNG whose transparent pixels (alpha < 128) mark the area to repaint; the
            opaque area keeps the base (the first reference, else the plain scene). A mask
            without transparent pixels is ignored.

    Raises:
        ValueError: the size is out of range.
        RenderInputError: a reference or the mask cannot be read.
    """
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"size {width}x{height} is out of range (1..{MAX_SIDE} pixels per side)")
    size = (width, height)
    base = _load_base(references[0]) if references else None
    thumbs = [_load_rgb(path, f"reference image {i + 2}") for i, path in enumerate(references[1:])]
    plan = read_plan(prompt, negative_prompt)
    layout, subjects = _layout(plan, seed, base)
    low = quality == "low"
    area = _repaint_area(mask, size) if mask is not None else None
    image = draw_scene(size, plan, seed, layout, subjects, low=low)
    if area is None:
        if base is not None and base.layout is None:
            fitted = ImageOps.fit(base.image, size, Image.Resampling.LANCZOS)
            image = Image.blend(image, fitted, 0.7)
    else:
        kept = _under(base, size, plan, seed, subjects, low)
        _repaint(kept, area, image)
        image = kept
    footer = _footer_text(seed, negative_prompt, repainted=area is not None)
    band = _band_layout(caption if caption is not None else prompt, footer, size)
    if thumbs:
        _draw_thumbnails(image, thumbs, height - band.height)
    _draw_band(image, band)
    return _encode(image, {"layout": layout, "band": band.height, "subjects": subjects})


def _encode(image: Image.Image, meta: dict[str, object]) -> bytes:
    """`image` as PNG bytes with `meta` in the METADATA_KEY text chunk."""
    info = PngInfo()
    info.add_text(METADATA_KEY, json.dumps(meta, sort_keys=True))
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, compress_level=1)  # fast; flat art packs well
    return out.getvalue()


def _layout(plan: Plan, seed: int, base: _Base | None) -> tuple[int, dict[str, bool]]:
    """The layout seed and the subjects to draw: a base of ours lends its layout and its
    subjects (less those the prompt removes); otherwise the seed lays the picture out."""
    if base is None or base.layout is None or base.subjects is None:
        return seed, scene_subjects(plan, seed)
    kept = {k: v for k, v in base.subjects.items() if k not in plan.removed}
    return base.layout, {**kept, **scene_subjects(plan, base.layout)}


def caption_band_height(data: bytes) -> int | None:
    """The height (pixels) of the caption band at the bottom of a PNG this renderer made,
    or None for any other image."""
    with Image.open(io.BytesIO(data)) as opened:
        meta = _metadata(opened)
    return meta[1] if meta is not None else None


# --- inputs -------------------------------------------------------------------------------


def _metadata(opened: Image.Image) -> tuple[int, int, dict[str, bool]] | None:
    """(layout seed, band height, subjects) from this renderer's PNG text chunk, or None when
    it is absent or malformed (a foreign or hand-made image)."""
    raw = opened.info.get(METADATA_KEY)
    try:
        meta = json.loads(raw) if isinstance(raw, str) and len(raw) < 4096 else None
    except ValueError:
        return None
    if not isinstance(meta, dict):
        return None
    layout, band, subjects = meta.get("layout"), meta.get("band"), meta.get("subjects")
    known = set(SUBJECTS.values())
    if (
        not isinstance(layout, int)
        or not isinstance(band, int)
        or not 0 <= band < opened.height
        or not isinstance(subjects, dict)
        or not all(k in known and isinstance(v, bool) for k, v in subjects.items())
    ):
        return None
    return layout, band, subjects


def _load_base(path: Path) -> _Base:
    """The base image as RGB; one of ours loses its caption band and keeps its layout."""
    image = _load_rgb(path, "reference image 1")
    try:
        with Image.open(path) as opened:
            meta = _metadata(opened)
    except (OSError, UnidentifiedImageError, ValueError):  # read above; changed since
        meta = None
    if meta is None:
        return _Base(image)
    layout, band, subjects = meta
    if band:
        image = image.crop((0, 0, image.width, image.height - band))
    return _Base(image, layout, subjects)


def _load_rgb(path: Path, what: str) -> Image.Image:
    """Open any image file and return it as RGB (transparency flattened onto white)."""
    try:
        with Image.open(path) as opened:
            opened.load()
            img = ImageOps.exif_transpose(opened) or opened
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                return flat
            return img.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise RenderInputError(f"{what} ({Path(path).name})", str(exc)) from exc


def _repaint_area(mask_path: Path, size: tuple[int, int]) -> Image.Image | None:
    """The area to repaint as an "L" image of `size` (255 = repaint), or None if empty."""
    try:
        with Image.open(mask_path) as opened:
            opened.load()
            rgba = opened.convert("RGBA")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise RenderInputError(f"the mask ({Path(mask_path).name})", str(exc)) from exc
    alpha = rgba.getchannel("A").resize(size, Image.Resampling.BILINEAR)
    area = alpha.point(lambda a: 255 if a < 128 else 0)
    return area if area.getbbox() is not None else None


# --- the caption band ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Band:
    """The laid-out caption band: `height` pixels at the bottom (0: none is drawn)."""

    height: int
    lines: tuple[str, ...] = ()
    font: _Font | None = None
    line_h: int = 0
    footer: str = ""
    footer_font: _Font | None = None
    pad: int = 0


def _font(size_px: int) -> _Font:
    """Pillow's bundled scalable font at `size_px` pixels (bitmap fallback without FreeType)."""
    try:
        return ImageFont.load_default(size=max(6, size_px))
    except (AttributeError, ImportError, OSError, TypeError):  # pragma: no cover - old Pillow
        return ImageFont.load_default()


def _wrap(
    draw: ImageDraw.ImageDraw,
    text: str,
    font: _Font,
    max_width: float,
    max_lines: int | None = None,
) -> list[str]:
    """Greedy word wrap of `text` to lines no wider than `max_width` pixels; stops after
    `max_lines` + 1 lines (the caller shows at most `max_lines`), so a long text costs no
    more than what is drawn. A word wider than a line is cut where it fits (binary search:
    O(log n) measurements per cut, whatever the word's length)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if max_lines is not None and len(lines) > max_lines:
            break
        candidate = f"{line} {word}".strip()
        if draw.textlength(candidate, font=font) <= max_width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
        while len(line) > 1 and draw.textlength(line, font=font) > max_width:
            if max_lines is not None and len(lines) > max_lines:
                break
            low, high = 1, len(line) - 1  # the longest prefix that fits, at least 1 char
            while low < high:
                mid = (low + high + 1) // 2
                if draw.textlength(line[:mid], font=font) <= max_width:
                    low = mid
                else:
                    high = mid - 1
            lines.append(line[:low])
            line = line[low:]
    if line:
        lines.append(line)
    return lines


def _caption_lines(
    draw: ImageDraw.ImageDraw, text: str, size_px: int, max_width: float
) -> tuple[tuple[str, ...], _Font, int]:
    """`text` wrapped to at most two lines, shrinking the font down to 70 % before cutting
    it with "…"; returns the lines, the font and its size in pixels."""
    smallest = max(10, round(size_px * 0.7))
    while True:
        font = _font(size_px)
        lines = _wrap(draw, text, font, max_width, _MAX_CAPTION_LINES)
        if len(lines) <= _MAX_CAPTION_LINES or size_px <= smallest:
            break
        size_px = max(smallest, int(size_px * 0.85))
    if len(lines) > _MAX_CAPTION_LINES:
        lines = lines[:_MAX_CAPTION_LINES]
        last = lines[-1]
        while last and draw.textlength(last + "…", font=font) > max_width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"
    return tuple(lines), font, size_px


def _band_layout(caption: str, footer: str, size: tuple[int, int]) -> _Band:
    """Lay out the band: the caption (up to two lines) over the footer line. Images under
    48x24 pixels get no band; small ones only the footer."""
    width, height = size
    if height < 24 or width < 48:
        return _Band(0)
    unit = min(width, height)
    footer_px = max(8, min(28, round(unit / 42)))
    pad = max(3, round(footer_px * 0.6))
    footer_h = round(footer_px * 1.4)
    draw = ImageDraw.Draw(Image.new("1", (1, 1)))
    text = " ".join(caption.split())
    lines: tuple[str, ...] = ()
    font = None
    line_h = 0
    if text and height >= 96 and width >= 96:
        lines, font, caption_px = _caption_lines(
            draw, text, max(10, round(unit / 26)), width - 2 * pad
        )
        line_h = round(caption_px * 1.25)
    band_h = pad + line_h * len(lines) + footer_h + pad
    if band_h > height * 0.4:
        lines, font, band_h = (), None, pad + footer_h + pad
    return _Band(band_h, lines, font, line_h, footer, _font(footer_px), pad)


def _footer_text(seed: int, negative_prompt: str | None, *, repainted: bool) -> str:
    text = f"local preview · seed {seed}"
    if repainted:
        text += " · repainted"
    if negative_prompt:
        text += f" · no: {' '.join(negative_prompt.split())}"
    return text


def _draw_band(image: Image.Image, band: _Band) -> None:
    """Paint the opaque band over the bottom of `image`: caption lines, then the footer."""
    if band.height == 0:
        return
    width, height = image.size
    top = height - band.height
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, top, width, height), fill=_BAND)
    for i, line in enumerate(band.lines):
        xy = (band.pad, top + band.pad + i * band.line_h)
        draw.text(xy, line, font=band.font, fill=(248, 248, 250))
    footer, limit = band.footer, width - 2 * band.pad
    if draw.textlength(footer, font=band.footer_font) > limit:
        while footer and draw.textlength(footer + "…", font=band.footer_font) > limit:
            footer = footer[:-1]
        footer = footer.rstrip() + "…"
    xy = (band.pad, height - band.pad)
    draw.text(xy, footer, font=band.footer_font, fill=(168, 174, 188), anchor="ld")


# --- thumbnails and repainting ------------------------------------------------------------


def _draw_thumbnails(canvas: Image.Image, thumbs: Sequence[Image.Image], above: int) -> None:
    """Paste `thumbs` as white-framed thumbnails in a row ending above y = `above` (pixels)."""
    width, height = canvas.size
    margin = max(2, round(min(width, height) * _MARGIN_FRACTION))
    border = max(1, min(width, height) // 150)
    slots = len(thumbs)
    box_h = max(4, height // 5)
    box_w = max(4, min(round(box_h * 4 / 3), (width - margin * (slots + 1)) // max(1, slots)))
    bottom = above - margin
    draw = ImageDraw.Draw(canvas, "RGBA")  # blend the translucent shadow
    x = margin
    for thumb in thumbs:
        inner = (max(1, box_w - 2 * border), max(1, box_h - 2 * border))
        fitted = ImageOps.fit(thumb, inner, Image.Resampling.LANCZOS)
        y = bottom - box_h
        shadow = (x + border, y + border, x + box_w + border, y + box_h + border)
        draw.rectangle(shadow, fill=(0, 0, 0, 90))
        draw.rectangle((x, y, x + box_w - 1, y + box_h - 1), fill=(255, 255, 255, 255))
        canvas.paste(fitted, (x + border, y + border))
        x += box_w + margin


def _under(
    base: _Base | None,
    size: tuple[int, int],
    plan: Plan,
    seed: int,
    subjects: dict[str, bool],
    low: bool,
) -> Image.Image:
    """What a mask keeps: the base (one of ours at its place, with the new scene where its
    caption band was), else a scene with another layout."""
    if base is None:
        return draw_scene(size, plan, seed, seed ^ 0x5BD1E995, subjects, low=low)
    if base.layout is None or base.image.width != size[0] or base.image.height > size[1]:
        return ImageOps.fit(base.image, size, Image.Resampling.LANCZOS)
    under = draw_scene(size, plan, seed, base.layout, subjects, low=low)
    under.paste(base.image, (0, 0))
    return under


def _repaint(image: Image.Image, area: Image.Image, scene: Image.Image) -> None:
    """Replace `image` (in place) by `scene` inside `area` (255 = repaint), keeping it
    elsewhere, and outline the area in white."""
    image.paste(scene, (0, 0), area)
    edge = area.filter(ImageFilter.FIND_EDGES)
    image.paste((255, 255, 255), (0, 0), edge)
