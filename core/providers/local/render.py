"""Offline image rendering with Pillow for the `local` provider ("local preview renderer").

`render_png` draws a deterministic placeholder picture for a prompt and a seed: a
gradient sky whose colours come from a hash of the prompt and seed (words such as
"dusk", "sea", "forest", "night" or "sun" nudge the palette), a sun or moon, a few
floating shapes and hills placed by `random.Random(seed)`, the prompt text in a
readable panel, and a footer "local preview · seed N" so nobody takes it for a real
model output.

Reference images are composited in: the first one (the base image of a refinement)
fills the background under the new drawing, the others appear as framed thumbnails
along the bottom. A mask (transparent pixels = the area to repaint) keeps the base
untouched where it is opaque and paints a new scene inside the transparent area.

Everything here is blocking CPU and file work: call it through `asyncio.to_thread`.
Same inputs give byte-identical PNG output.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
import re
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps, UnidentifiedImageError

__all__ = ["MAX_SIDE", "RenderInputError", "render_png"]

MAX_SIDE = 8192
"""Largest width or height (pixels) the renderer accepts."""

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
_RGB = tuple[int, int, int]

# word -> (hue in degrees, saturation 0-1, brightness 0-1) that the palette leans towards.
_KEYWORD_TINTS: dict[str, tuple[float, float, float]] = {
    "dusk": (285, 0.55, 0.55),
    "sunset": (20, 0.75, 0.9),
    "twilight": (265, 0.55, 0.5),
    "dawn": (30, 0.5, 0.95),
    "blue": (215, 0.7, 0.85),
    "sky": (205, 0.55, 0.95),
    "sea": (200, 0.75, 0.75),
    "ocean": (205, 0.8, 0.7),
    "water": (195, 0.65, 0.8),
    "lake": (190, 0.6, 0.75),
    "forest": (125, 0.6, 0.5),
    "green": (120, 0.65, 0.7),
    "tree": (110, 0.55, 0.55),
    "jungle": (135, 0.7, 0.5),
    "night": (235, 0.6, 0.25),
    "midnight": (240, 0.65, 0.2),
    "space": (255, 0.55, 0.18),
    "moon": (225, 0.35, 0.4),
    "sun": (45, 0.8, 1.0),
    "sunny": (48, 0.7, 1.0),
    "desert": (35, 0.6, 0.9),
    "gold": (45, 0.75, 0.9),
    "fire": (10, 0.85, 0.9),
    "red": (0, 0.75, 0.85),
    "lava": (12, 0.9, 0.75),
    "snow": (200, 0.12, 0.97),
    "ice": (190, 0.25, 0.95),
    "winter": (205, 0.2, 0.9),
    "pink": (330, 0.45, 0.95),
    "flower": (320, 0.5, 0.9),
    "purple": (275, 0.6, 0.75),
    "autumn": (28, 0.75, 0.8),
}

_NIGHT_WORDS = frozenset({"night", "midnight", "space", "moon", "stars", "star"})
_WATER_WORDS = frozenset({"sea", "ocean", "lake", "water", "river", "bay", "harbor", "harbour"})
_MARGIN_FRACTION = 0.04
_SEA: tuple[int, int, int] = (25, 70, 120)


class RenderInputError(ValueError):
    """A reference image or mask could not be read (missing file, not an image).

    Attributes:
        what: which input failed, e.g. "reference image 2 (ab12.png)" or "the mask (m.png)".
    """

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"cannot read {what}: {reason}")
        self.what = what


def render_png(
    prompt: str,
    width: int,
    height: int,
    seed: int,
    *,
    negative_prompt: str | None = None,
    quality: str | None = None,
    references: Sequence[Path] = (),
    mask: Path | None = None,
) -> bytes:
    """Render one deterministic preview image and return it as PNG bytes.

    Args:
        prompt: the text prompt; it picks the palette and is written on the image.
        width, height: output size in pixels (1..MAX_SIDE each); the PNG has exactly this size.
        seed: places the shapes and varies the palette; any int (only its low 64 bits matter).
        negative_prompt: shown in the footer as "no: ...", when set.
        quality: "low" draws fewer shapes; anything else draws the full set.
        references: image files, oldest first; the first is the base image (background),
            the rest are drawn as framed thumbnails along the bottom. Any Pillow-readable
            format and mode.
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
    refs = [_load_rgb(path, f"reference image {i + 1}") for i, path in enumerate(references)]
    base_ref = refs[0] if refs else None
    thumbs = refs[1:]

    area = _repaint_area(mask, size) if mask is not None else None
    if area is None:
        image = _scene(size, prompt, seed, quality, background=base_ref, thumbs=thumbs)
    else:
        if base_ref is not None:
            image = ImageOps.fit(base_ref, size, Image.Resampling.LANCZOS)
        else:
            image = _scene(size, prompt, seed, quality, background=None, thumbs=())
        _repaint(image, area, prompt, seed, quality, thumbs)

    _draw_footer(image, seed, negative_prompt, repainted=area is not None)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


# --- inputs -------------------------------------------------------------------------------


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


# --- palette ------------------------------------------------------------------------------


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def _hsv(hue_deg: float, sat: float, val: float) -> _RGB:
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360) / 360, min(1.0, max(0.0, sat)), min(1.0, val))
    return round(r * 255), round(g * 255), round(b * 255)


def _palette(prompt: str, seed: int) -> tuple[_RGB, _RGB, _RGB, bool, bool]:
    """(sky top, sky bottom, accent, night?, water?) from a hash of prompt and seed + keywords."""
    h = _digest(prompt, seed)
    hue = h[0] / 255 * 360
    sat = 0.45 + h[1] / 255 * 0.35
    val = 0.7 + h[2] / 255 * 0.25
    words = set(re.findall(r"[a-z]+", prompt.lower()))
    tints = [_KEYWORD_TINTS[w] for w in sorted(words) if w in _KEYWORD_TINTS]
    if tints:
        # Lean towards the keyword colours; the hash still shifts the hue a little per seed.
        hue = tints[0][0] + (h[3] / 255 - 0.5) * 40
        sat = sum(t[1] for t in tints) / len(tints)
        val = sum(t[2] for t in tints) / len(tints)
    night = bool(words & _NIGHT_WORDS)
    water = bool(words & _WATER_WORDS)
    spread = 25 + h[4] / 255 * 80  # hue distance between the top and the bottom of the sky
    top = _hsv(hue, sat, val * 0.75)
    bottom = _hsv(hue + spread, sat * 0.8, min(1.0, val * 1.15))
    accent = _hsv(hue + 180 + (h[5] / 255 - 0.5) * 60, min(1.0, sat + 0.2), min(1.0, val + 0.2))
    return top, bottom, accent, night, water


def _shade(color: _RGB, factor: float) -> _RGB:
    return (
        min(255, round(color[0] * factor)),
        min(255, round(color[1] * factor)),
        min(255, round(color[2] * factor)),
    )


def _mix(a: _RGB, b: _RGB, t: float) -> _RGB:
    """`a` moved a fraction `t` (0-1) of the way towards `b`."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _gradient(size: tuple[int, int], top: _RGB, bottom: _RGB) -> Image.Image:
    """A vertical gradient from `top` to `bottom`, `size` in pixels."""
    width, height = size
    column = Image.new("RGB", (1, height))
    span = max(1, height - 1)
    column.putdata(
        [
            tuple(round(t + (b - t) * y / span) for t, b in zip(top, bottom, strict=True))
            for y in range(height)
        ]
    )
    return column.resize((width, height), Image.Resampling.NEAREST)


# --- the scene ----------------------------------------------------------------------------


def _scene(
    size: tuple[int, int],
    prompt: str,
    seed: int,
    quality: str | None,
    *,
    background: Image.Image | None,
    thumbs: Sequence[Image.Image],
    variant: str = "",
) -> Image.Image:
    """Draw the full picture (sky, sun, shapes, hills, prompt panel, thumbnails) as RGB."""
    width, height = size
    top, bottom, accent, night, water = _palette(prompt + variant, seed)
    rng = random.Random(int.from_bytes(_digest("layout", seed, variant)[:8], "big"))
    unit = min(width, height)

    sky = _gradient(size, top, bottom)
    if background is not None:
        base = ImageOps.fit(background, size, Image.Resampling.LANCZOS)
        sky = Image.blend(sky, base, 0.7)  # the base image dominates, tinted by the palette
    canvas = sky.convert("RGBA")
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    shape_alpha = 110 if background is not None else 190

    glow = _sky_lights(draw, rng, size, night)
    _shapes(draw, rng, size, quality, accent, bottom, shape_alpha)
    _hills(draw, rng, size, (top, bottom, glow), water)

    canvas.alpha_composite(layer)
    _draw_prompt(canvas, prompt, unit)
    if thumbs:
        _draw_thumbnails(canvas, thumbs)
    return canvas.convert("RGB")


def _sky_lights(
    draw: ImageDraw.ImageDraw, rng: random.Random, size: tuple[int, int], night: bool
) -> tuple[int, int, int]:
    """Stars (at night) and the sun or moon with a soft glow; returns the glow colour."""
    width, height = size
    unit = min(width, height)
    if night:  # a few stars
        for _ in range(12 + rng.randrange(20)):
            x, y, r = (
                rng.randrange(width),
                rng.randrange(max(1, height // 2)),
                rng.choice((1, 1, 2)),
            )
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 240, 200))
    cx, cy = rng.uniform(0.15, 0.85) * width, rng.uniform(0.12, 0.4) * height
    radius = max(2.0, unit * rng.uniform(0.07, 0.13))
    glow = (235, 235, 255) if night else (255, 240, 190)
    for step in range(4, 0, -1):
        r = radius * (1 + step * 0.15)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*glow, 28))
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=(*glow, 235))
    return glow


def _shapes(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    size: tuple[int, int],
    quality: str | None,
    accent: tuple[int, int, int],
    bottom: tuple[int, int, int],
    shape_alpha: int,
) -> None:
    """Floating shapes: circles and polygons (fewer at low quality)."""
    width, height = size
    unit = min(width, height)
    count = 3 if quality == "low" else 6 + rng.randrange(4)
    for _ in range(count):
        x, y = rng.uniform(0, width), rng.uniform(0, height * 0.7)
        r = max(2.0, unit * rng.uniform(0.03, 0.1))
        tint = accent if rng.random() < 0.5 else _shade(bottom, rng.uniform(1.1, 1.4))
        fill = (*tint, rng.randrange(shape_alpha // 2, shape_alpha))
        if rng.random() < 0.45:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        else:
            sides = rng.randrange(3, 7)
            draw.regular_polygon((x, y, r), sides, rotation=rng.uniform(0, 360), fill=fill)


def _hills(
    draw: ImageDraw.ImageDraw,
    rng: random.Random,
    size: tuple[int, int],
    colours: tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]],
    water: bool,
) -> None:
    """A far and a near ridge along the horizon (`colours`: sky top, sky bottom, glow), or
    the far ridge with calm water in front of it."""
    width, height = size
    unit = min(width, height)
    top, bottom, glow = colours
    horizon = height * rng.uniform(0.6, 0.72)
    for depth, shade in ((0, 0.55), (1, 0.35)):
        points = [(0.0, float(height))]
        steps = 6 + rng.randrange(4)
        for i in range(steps + 1):
            x = width * i / steps
            y = horizon + height * (depth * 0.08 + rng.uniform(-0.07, 0.05))
            points.append((x, y))
        points.append((float(width), float(height)))
        draw.polygon(points, fill=(*_shade(top, shade), 200 + depth * 40))
        if depth == 0 and water:
            # Calm water in front of the far ridge, with a few reflection lines.
            sea_top = horizon + height * 0.1
            draw.rectangle((0, sea_top, width, height), fill=(*_mix(bottom, _SEA, 0.6), 235))
            for _ in range(10 + rng.randrange(10)):
                y = rng.uniform(sea_top + 2, height)
                x = rng.uniform(-0.1, 0.9) * width
                line_w = max(2.0, width * rng.uniform(0.04, 0.15))
                draw.line((x, y, x + line_w, y), fill=(*glow, 90), width=max(1, unit // 200))
            break


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


def _draw_prompt(canvas: Image.Image, prompt: str, unit: int) -> None:
    """Write the prompt, wrapped, in a translucent panel in the upper part of `canvas`."""
    width, height = canvas.size
    text = " ".join(prompt.split())
    if not text or unit < 48:
        return
    measure = ImageDraw.Draw(canvas)
    max_lines = 4
    font_px = max(10, unit // 13)
    text_width = width * 0.8
    while True:
        font = _font(font_px)
        lines = _wrap(measure, text, font, text_width, max_lines)
        if len(lines) <= max_lines or font_px <= 10:
            break
        font_px = max(10, int(font_px * 0.85))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and measure.textlength(last + "…", font=font) > text_width:
            last = last[:-1]
        lines[-1] = last.rstrip() + "…"

    line_h = round(font_px * 1.25)
    pad = max(4, font_px // 2)
    block_w = max(measure.textlength(line, font=font) for line in lines)
    block_h = line_h * len(lines)
    left = (width - block_w) / 2
    top = height * 0.08
    overlay = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rounded_rectangle(
        (left - pad, top - pad, left + block_w + pad, top + block_h + pad),
        radius=pad,
        fill=(0, 0, 0, 120),
    )
    for i, line in enumerate(lines):
        line_w = measure.textlength(line, font=font)
        draw.text(
            ((width - line_w) / 2, top + i * line_h),
            line,
            font=font,
            fill=(255, 255, 255, 255),
        )
    canvas.alpha_composite(overlay)


def _footer_height(height: int) -> int:
    return max(10, min(40, height // 16))


def _draw_thumbnails(canvas: Image.Image, thumbs: Sequence[Image.Image]) -> None:
    """Paste `thumbs` as white-framed thumbnails in a row above the footer."""
    width, height = canvas.size
    margin = max(2, round(min(width, height) * _MARGIN_FRACTION))
    border = max(1, min(width, height) // 150)
    slots = len(thumbs)
    box_h = max(4, height // 5)
    box_w = max(4, min(round(box_h * 4 / 3), (width - margin * (slots + 1)) // max(1, slots)))
    bottom = height - _footer_height(height) - margin
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


def _repaint(
    image: Image.Image,
    area: Image.Image,
    prompt: str,
    seed: int,
    quality: str | None,
    thumbs: Sequence[Image.Image],
) -> None:
    """Paint a new scene into `area` (255 = repaint) of `image`, in place, and outline it."""
    left, top, right, bottom = area.getbbox() or (0, 0, *image.size)
    box = (right - left, bottom - top)
    patch = _scene(box, prompt, seed, quality, background=None, thumbs=thumbs, variant="#repaint")
    # A diagonal stripe pattern marks the repainted area as new.
    stripes = Image.new("RGBA", box, (0, 0, 0, 0))
    draw = ImageDraw.Draw(stripes)
    step = max(6, min(box) // 8)
    _, _, accent, _, _ = _palette(prompt + "#repaint", seed)
    for offset in range(-box[1], box[0], step * 2):
        draw.line((offset, box[1], offset + box[1], 0), fill=(*accent, 70), width=max(2, step // 2))
    patch = Image.alpha_composite(patch.convert("RGBA"), stripes).convert("RGB")
    image.paste(patch, (left, top), area.crop((left, top, right, bottom)))
    edge = area.filter(ImageFilter.FIND_EDGES)
    image.paste((255, 255, 255), (0, 0), edge)


def _draw_footer(
    image: Image.Image, seed: int, negative_prompt: str | None, *, repainted: bool
) -> None:
    """Write "local preview · seed N" (and "no: ...") on a dark strip at the bottom."""
    width, height = image.size
    strip_h = _footer_height(height)
    if height < 24 or width < 48:
        return
    text = f"local preview · seed {seed}"
    if repainted:
        text += " · repainted"
    if negative_prompt:
        text += f" · no: {' '.join(negative_prompt.split())}"
    font = _font(round(strip_h * 0.6))
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, height - strip_h, width, height), fill=(0, 0, 0, 210))
    pad = max(3, strip_h // 4)
    limit = width - 2 * pad
    if draw.textlength(text, font=font) > limit:
        while text and draw.textlength(text + "…", font=font) > limit:
            text = text[:-1]
        text = text.rstrip() + "…"
    draw.text((pad, height - strip_h / 2), text, font=font, fill=(235, 235, 235, 255), anchor="lm")
    composed = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    image.paste(composed)
