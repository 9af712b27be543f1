"""The picture of the local preview renderer: a flat landscape drawn from a `Plan`.

`draw_scene` paints, back to front: a sky gradient for the time of day (tinted by the
prompt's colours), stars, the sun or moon with its glow, a circle, clouds, mountains, the
sea or the hills, then trees, a house and a lighthouse standing on the land. Everything
is placed by `random.Random` from the layout seed, so the same plan and seeds give the
same picture, and a refinement drawn with its base's layout seed keeps the composition.
Details that vary per image (stars, clouds, a shift of the sky's colours) come from the
image's own seed. Blocking Pillow work: the caller runs it in a thread.
"""

from __future__ import annotations

import colorsys
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw

from core.providers.local.words import RGB, Plan

__all__ = ["LIGHTS", "Light", "draw_scene", "scene_subjects"]

_Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Light:
    """The sky and lighting of a time of day.

    Attributes:
        top, horizon: sky colours at the top of the picture and at the horizon.
        level: brightness (0-1) of the land and everything standing on it.
        body: "sun", "moon" or None: what is in the sky unless the prompt names one.
        body_colour: the colour of the sun or moon.
        body_height: the height of its centre as a fraction of the horizon's y (0 = top).
        stars: how many small stars are drawn.
    """

    top: RGB
    horizon: RGB
    level: float
    body: str | None
    body_colour: RGB
    body_height: float
    stars: int


LIGHTS: dict[str, Light] = {
    "dawn": Light((70, 88, 156), (252, 186, 150), 0.8, "sun", (255, 216, 170), 0.84, 0),
    "morning": Light((98, 152, 226), (220, 236, 246), 0.95, "sun", (255, 247, 222), 0.5, 0),
    "day": Light((52, 124, 220), (174, 214, 246), 1.0, "sun", (255, 250, 226), 0.22, 0),
    "sunset": Light((74, 50, 124), (252, 140, 72), 0.72, "sun", (255, 170, 90), 0.86, 0),
    "dusk": Light((30, 28, 82), (196, 106, 128), 0.5, None, (250, 192, 160), 1.0, 40),
    "night": Light((8, 12, 34), (36, 50, 98), 0.32, "moon", (236, 238, 250), 0.32, 160),
}
"""time of day (`core.providers.local.words.TIMES` values) -> its `Light`."""

_DEFAULT_TIMES = ("dawn", "morning", "day", "day", "sunset", "dusk", "night")
_NIGHT: RGB = (18, 26, 58)
_SEA: RGB = (28, 86, 142)
_GRASS: RGB = (82, 146, 66)
_ROCK: RGB = (112, 120, 150)
_FOLIAGE: RGB = (40, 112, 52)
_WINDOW_LIT: RGB = (255, 212, 112)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    """`a` moved a fraction `t` (0-1) of the way towards `b`."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def _shade(colour: RGB, factor: float) -> RGB:
    return (
        min(255, round(colour[0] * factor)),
        min(255, round(colour[1] * factor)),
        min(255, round(colour[2] * factor)),
    )


@dataclass
class _Canvas:
    """What every drawing step needs: the drawing, sizes, light, plan and the layout."""

    image: Image.Image
    draw: ImageDraw.ImageDraw  # opaque fills
    glaze: ImageDraw.ImageDraw  # translucent fills (RGBA colours blend into the image)
    width: int
    height: int
    light: Light
    plan: Plan
    horizon: float
    layout_seed: int
    detail: random.Random
    low: bool
    shine: tuple[float, RGB] | None = None  # x (pixels) and colour of the sun or moon
    layout: random.Random = field(default_factory=random.Random)

    def place(self, part: str) -> None:
        """Seed `layout` for one part of the picture from the layout seed alone, so adding
        or removing a subject moves nothing else."""
        self.layout = random.Random(f"{part}:{self.layout_seed}")

    @property
    def unit(self) -> int:
        return min(self.width, self.height)

    def lit(self, colour: RGB) -> RGB:
        """`colour` as it looks in this light (darker and bluer towards night)."""
        level = self.light.level
        return _mix(_shade(colour, level), _NIGHT, (1 - level) * 0.45)

    def colour(self, part: str, default: RGB, tint_share: float = 0.3) -> RGB:
        """The colour the prompt gave `part`, else `default` leaning towards the tint."""
        if part in self.plan.colours:
            return self.plan.colours[part]
        tint = self.plan.tint
        return _mix(default, tint, tint_share) if tint is not None else default


def scene_subjects(plan: Plan, layout_seed: int) -> dict[str, bool]:
    """The subjects to draw (subject -> many?): the plan's when it named any, else a seeded
    pleasant choice (mountains, water, trees, a house) from `layout_seed`."""
    if plan.named:
        return dict(plan.subjects)
    rng = random.Random(f"subjects:{layout_seed}")
    chosen: dict[str, bool] = {}
    if rng.random() < 0.45:
        chosen["mountain"] = True
    if rng.random() < 0.4:
        chosen["water"] = False
    if rng.random() < 0.65:
        chosen["tree"] = rng.random() < 0.7
    if rng.random() < 0.25:
        chosen["house"] = False
    return chosen


def draw_scene(
    size: tuple[int, int],
    plan: Plan,
    seed: int,
    layout_seed: int,
    subjects: dict[str, bool],
    *,
    low: bool = False,
) -> Image.Image:
    """Draw the scene of `plan` and `subjects` (from `scene_subjects`) at `size` (pixels).

    `layout_seed` places everything; `seed` varies the details; `low` draws fewer details.
    Returns an RGB image of exactly `size`.
    """
    width, height = size
    layout = random.Random(f"frame:{layout_seed}")
    detail = random.Random(f"detail:{seed}")
    time = plan.time or _DEFAULT_TIMES[layout.randrange(len(_DEFAULT_TIMES))]
    light = LIGHTS[time]
    horizon = height * layout.uniform(0.52, 0.7)
    image = _sky(size, light, plan, detail, horizon)
    draw, glaze = ImageDraw.Draw(image), ImageDraw.Draw(image, "RGBA")
    canvas = _Canvas(
        image, draw, glaze, width, height, light, plan, horizon, layout_seed, detail, low
    )
    _stars(canvas, "star" in subjects)
    canvas.shine = _body(canvas, subjects)
    if "circle" in subjects:
        _circle(canvas)
    if light.level >= 0.5 and not low:
        _clouds(canvas)
    if "mountain" in subjects:
        _mountains(canvas)
    ground = _ground(canvas, "water" in subjects)
    _standing(canvas, subjects, ground)
    return image


def _turn(colour: RGB, degrees: float) -> RGB:
    """`colour` with its hue turned by `degrees`, saturation and brightness kept."""
    h, sat, val = colorsys.rgb_to_hsv(*(v / 255 for v in colour))
    r, g, b = colorsys.hsv_to_rgb((h + degrees / 360) % 1.0, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)


def _sky(
    size: tuple[int, int], light: Light, plan: Plan, rng: random.Random, horizon: float
) -> Image.Image:
    """The sky gradient (top colour to the horizon colour at `horizon`, flat below it); its
    hues turn by up to 60 degrees either way, and its curve changes, with the seed (`rng`)."""
    width, height = size
    turn = rng.uniform(-60, 60)
    top, low = _turn(light.top, turn), _turn(light.horizon, turn)
    wanted = plan.colours.get("sky") or plan.tint
    if wanted is not None:
        share = 0.6 if "sky" in plan.colours else 0.45
        dimmed = _shade(wanted, max(0.35, light.level))
        top, low = _mix(top, dimmed, share), _mix(low, dimmed, share)
    column = Image.new("RGB", (1, height))
    span = max(1.0, horizon)
    # where the sky turns from the top colour to the horizon's (0.5-2: low or high)
    curve = math.exp(rng.choice((-1, 1)) * rng.uniform(0.3, 0.7))
    column.putdata([_mix(top, low, min(1.0, y / span) ** curve) for y in range(height)])
    return column.resize((width, height), Image.Resampling.NEAREST)


def _star_points(x: float, y: float, r: float, turn: float) -> _Points:
    """The 10 corners of a five-pointed star centred on (x, y), outer radius `r`."""
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = turn + k * math.pi / 5
        points.append((x + radius * math.sin(angle), y - radius * math.cos(angle)))
    return points


def _stars(c: _Canvas, named: bool) -> None:
    """Small stars in a dark sky; five-pointed stars when the prompt names them."""
    count = c.light.stars // (3 if c.low else 1) + (60 if named and c.light.level < 0.6 else 0)
    dot = max(1, c.unit // 500)
    for _ in range(count):
        x, y = c.detail.uniform(0, c.width), c.detail.uniform(0, c.horizon * 0.9)
        r = dot * c.detail.choice((1, 1, 1, 2))
        c.glaze.ellipse(
            (x - r, y - r, x + r, y + r), fill=(255, 252, 236, c.detail.randrange(120, 255))
        )
    if named:
        c.place("stars")
        colour = c.colour("star", (255, 236, 160), 0.2)
        for _ in range(3 + c.layout.randrange(4)):
            x, y = c.layout.uniform(0.08, 0.92) * c.width, c.layout.uniform(0.08, 0.6) * c.horizon
            r = c.unit * c.layout.uniform(0.025, 0.05)
            c.draw.polygon(_star_points(x, y, r, c.layout.uniform(-0.3, 0.3)), fill=colour)


def _glow(c: _Canvas, x: float, y: float, r: float, colour: RGB) -> None:
    for step in range(4, 0, -1):
        g = r * (1 + step * 0.22)
        c.glaze.ellipse((x - g, y - g, x + g, y + g), fill=(*colour, 24))


def _body(c: _Canvas, subjects: dict[str, bool]) -> tuple[float, RGB] | None:
    """The sun or the moon (the one named, else the time of day's) with a soft glow;
    returns its x (pixels) and colour, or None when there is none."""
    removed = c.plan.removed
    c.place("body")
    x = c.layout.uniform(0.18, 0.82) * c.width
    if "sun" in subjects or "moon" in subjects:
        body = "sun" if "sun" in subjects else "moon"
        scale = 1.35
    elif c.light.body is not None and c.light.body not in removed:
        body, scale = c.light.body, 1.0
    else:
        return None
    light = c.light
    y = c.horizon * light.body_height if body == light.body else c.horizon * 0.3
    r = max(2.0, c.unit * 0.065 * scale)
    default = light.body_colour if body == light.body else (255, 244, 200)
    colour = c.colour(body, default, 0.15)
    _glow(c, x, y, r, colour)
    c.draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    if body == "moon":  # a crescent: cover most of the disc with the sky behind it
        spot = (int(min(c.width - 1, x + r * 1.3)), int(min(c.height - 1, max(0, y))))
        behind = c.image.getpixel(spot)
        dx = r * 0.45
        box = (x - r + dx, y - r - dx * 0.4, x + r + dx, y + r - dx * 0.4)
        c.draw.ellipse(box, fill=behind)
    return x, colour


def _circle(c: _Canvas) -> None:
    """A large flat disc in the sky, in its own colour, the tint or a contrasting one."""
    c.place("circle")
    x = c.layout.uniform(0.3, 0.7) * c.width
    y = c.horizon * c.layout.uniform(0.35, 0.55)
    r = c.unit * 0.17
    hue = (c.layout.random() * 360) / 360
    contrast = tuple(round(v * 255) for v in colorsys.hsv_to_rgb(hue, 0.65, 0.95))
    colour = c.plan.colours.get("circle") or c.plan.tint or contrast
    c.draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)  # type: ignore[arg-type]


def _clouds(c: _Canvas) -> None:
    """Up to three soft clouds, lit by the horizon colour."""
    colour = _mix((255, 255, 255), c.light.horizon, 0.35)
    for _ in range(c.detail.randrange(4)):
        x, y = c.detail.uniform(0.05, 0.95) * c.width, c.detail.uniform(0.1, 0.55) * c.horizon
        w = c.unit * c.detail.uniform(0.08, 0.14)
        for _ in range(4):
            dx, dy = c.detail.uniform(-1.2, 1.2) * w, c.detail.uniform(-0.25, 0.2) * w
            rw, rh = w * c.detail.uniform(0.6, 1.0), w * c.detail.uniform(0.3, 0.45)
            c.glaze.ellipse(
                (x + dx - rw, y + dy - rh, x + dx + rw, y + dy + rh), fill=(*colour, 90)
            )


def _mountains(c: _Canvas) -> None:
    """A range of 3-5 peaks on the horizon, with snow on the tall ones."""
    rock = c.lit(c.colour("mountain", _mix(_ROCK, c.light.horizon, 0.2)))
    snow = c.lit((240, 244, 250))
    c.place("mountains")
    peaks = 3 + c.layout.randrange(3)
    step = c.width / peaks
    points: _Points = [(0.0, c.horizon)]
    tops: _Points = []
    for i in range(peaks):
        x = step * (i + c.layout.uniform(0.3, 0.7))
        y = c.horizon - c.height * c.layout.uniform(0.16, 0.36)
        points += [(x, y), (step * (i + 1), c.horizon - c.height * c.layout.uniform(0.02, 0.1))]
        tops.append((x, y))
    points.append((float(c.width), c.horizon))
    c.draw.polygon(points, fill=rock)
    for x, y in tops:
        cap = (c.horizon - y) * 0.22
        if c.horizon - y > c.height * 0.22:
            c.draw.polygon([(x, y), (x + cap * 0.9, y + cap), (x - cap * 0.9, y + cap)], fill=snow)


def _profile(c: _Canvas, part: str, base: float, amplitude: float, x0: float, x1: float) -> _Points:
    """A rolling ridge from x0 to x1 around y = `base` (pixels), as points."""
    c.place(part)
    phase, freq = c.layout.uniform(0, math.tau), c.layout.uniform(1.2, 2.4)
    points: _Points = []
    steps = 32
    for i in range(steps + 1):
        x = x0 + (x1 - x0) * i / steps
        t = x / max(1, c.width)
        y = base + amplitude * (
            math.sin(t * math.tau * freq + phase) + 0.4 * math.sin(t * 9 + phase)
        )
        points.append((x, y))
    return points


def _ground(c: _Canvas, water: bool) -> _Points:
    """Hills, or a headland by the sea; returns the ridge the subjects stand on."""
    grass = c.lit(c.colour("land", _GRASS))
    bottom = float(c.height)
    if not water:
        far = _profile(c, "far hills", c.horizon - c.height * 0.02, c.height * 0.03, 0, c.width)
        haze = _mix(grass, c.lit(c.light.horizon), 0.45)
        c.draw.polygon([(0.0, bottom), *far, (float(c.width), bottom)], fill=haze)
        near = _profile(c, "near hills", c.horizon + c.height * 0.07, c.height * 0.035, 0, c.width)
        c.draw.polygon([(0.0, bottom), *near, (float(c.width), bottom)], fill=grass)
        return near
    sea = c.lit(c.colour("water", _mix(_SEA, c.light.horizon, 0.3), 0.35))
    c.draw.rectangle((0, c.horizon, c.width, c.height), fill=sea)
    _reflections(c, sea)
    c.place("headland")
    left = c.layout.random() < 0.5
    span = c.width * c.layout.uniform(0.25, 0.5)
    ridge = _profile(c, "headland ridge", c.horizon + c.height * 0.03, c.height * 0.02, 0, span)
    shore = [(span + c.width * 0.06, c.horizon + c.height * 0.1), (span + c.width * 0.1, bottom)]
    points = [(0.0, bottom), *ridge, *shore]
    if not left:
        points = [(c.width - x, y) for x, y in points]
        ridge = [(c.width - x, y) for x, y in reversed(ridge)]
    c.draw.polygon(points, fill=grass)
    return ridge


def _reflections(c: _Canvas, sea: RGB) -> None:
    """Light on the water: shimmer lines, and a column under the sun or moon."""
    glint = _mix(sea, c.light.horizon, 0.6)
    thick = max(1, c.unit // 256)
    for _ in range(8 if c.low else 24):
        y = c.detail.uniform(c.horizon + 3, c.height)
        x, w = c.detail.uniform(-0.05, 0.95) * c.width, c.unit * c.detail.uniform(0.03, 0.12)
        c.glaze.line((x, y, x + w, y), fill=(*glint, 110), width=thick)
    if c.shine is None:
        return
    x, colour = c.shine
    y, step = c.horizon + thick * 2, max(2, c.unit // 90)
    while y < c.height:
        half = c.unit * 0.05 * c.detail.uniform(0.4, 1.0) * (1 + (y - c.horizon) / c.height)
        c.glaze.line((x - half, y, x + half, y), fill=(*colour, 120), width=thick)
        y += step * c.detail.uniform(1.0, 1.8)


def _ground_y(ridge: _Points, x: float) -> float:
    """The ridge's y at `x` (linear between its points)."""
    for (x0, y0), (x1, y1) in itertools.pairwise(ridge):
        if min(x0, x1) <= x <= max(x0, x1) and x1 != x0:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ridge[-1][1] if abs(ridge[-1][0] - x) < abs(ridge[0][0] - x) else ridge[0][1]


def _standing(c: _Canvas, subjects: dict[str, bool], ridge: _Points) -> None:
    """Trees, a house and a lighthouse on the ridge, apart from each other."""
    x0, x1 = sorted((ridge[0][0], ridge[-1][0]))
    taken: list[tuple[float, float]] = []  # (x, half width) of what stands there
    c.place("standing")
    anywhere, out = c.layout.uniform(0.15, 0.85), c.layout.uniform(0.6, 0.85)
    tower = x0 + (x1 - x0) * anywhere
    if "water" in subjects:  # near the tip of the headland
        tower = x0 + (x1 - x0) * (out if x0 + x1 < c.width else 1 - out)
    if "lighthouse" in subjects:
        taken.append((tower, c.unit * 0.06))
    home = _free_x(c, x0, x1, taken, c.unit * 0.1)
    if "house" in subjects:
        taken.append((home, c.unit * 0.1))
    if "tree" in subjects:
        many = subjects["tree"]
        count = (8 if c.low else 12 + c.layout.randrange(10)) if many else 1 + c.layout.randrange(2)
        _trees(c, ridge, (x0, x1), count, taken, many=many)
    if "house" in subjects:
        _house(c, home, ridge)
    if "lighthouse" in subjects:
        _lighthouse(c, tower, ridge)


def _free_x(
    c: _Canvas, x0: float, x1: float, taken: Sequence[tuple[float, float]], half: float
) -> float:
    """A seeded x between x0 and x1 (pixels) at least `half` away from what is `taken`."""
    x = x0 + (x1 - x0) * c.layout.uniform(0.15, 0.85)
    for _ in range(12):
        if all(abs(x - tx) > half + th for tx, th in taken):
            return x
        x = x0 + (x1 - x0) * c.layout.uniform(0.08, 0.92)
    return x


def _trees(
    c: _Canvas,
    ridge: _Points,
    span: tuple[float, float],
    count: int,
    taken: Sequence[tuple[float, float]],
    *,
    many: bool,
) -> None:
    """`count` conifers or round trees on the ridge, smaller when there are many."""
    c.place("trees")
    leaf = c.lit(c.colour("tree", _FOLIAGE, 0.25))
    trunk = c.lit((96, 64, 42))
    for _ in range(count):
        size = c.unit * (c.layout.uniform(0.05, 0.09) if many else c.layout.uniform(0.09, 0.13))
        x = _free_x(c, *span, taken, size * 0.5)
        base = _ground_y(ridge, x) + size * 0.15
        shade = _shade(leaf, c.layout.uniform(0.8, 1.15))
        c.draw.rectangle((x - size * 0.06, base - size * 0.4, x + size * 0.06, base), fill=trunk)
        if c.layout.random() < 0.6:  # a conifer: three stacked triangles
            for k in range(3):
                w, top = size * (0.42 - k * 0.1), base - size * (0.3 + k * 0.28)
                c.draw.polygon(
                    [(x - w, top + size * 0.38), (x + w, top + size * 0.38), (x, top - size * 0.1)],
                    fill=shade,
                )
        else:
            r = size * 0.34
            c.draw.ellipse(
                (x - r, base - size * 0.4 - 2 * r, x + r, base - size * 0.4 + r * 0.3), fill=shade
            )


def _house(c: _Canvas, x: float, ridge: _Points) -> None:
    """A house with a pitched roof, a door and two windows (lit when it is dark)."""
    w, h = c.unit * 0.16, c.unit * 0.1
    base = _ground_y(ridge, x) + h * 0.25
    walls = c.lit(c.colour("house", (228, 208, 174), 0.2))
    roof = c.lit((168, 64, 50))
    c.draw.rectangle((x - w / 2, base - h, x + w / 2, base), fill=walls)
    c.draw.polygon(
        [(x - w * 0.6, base - h), (x + w * 0.6, base - h), (x, base - h - w * 0.42)], fill=roof
    )
    window = _WINDOW_LIT if c.light.level < 0.75 else c.lit((150, 186, 214))
    for wx in (x - w * 0.32, x + w * 0.14):
        c.draw.rectangle((wx, base - h * 0.7, wx + w * 0.18, base - h * 0.4), fill=window)
    c.draw.rectangle((x - w * 0.06, base - h * 0.55, x + w * 0.06, base), fill=c.lit((110, 70, 46)))


def _lighthouse(c: _Canvas, x: float, ridge: _Points) -> None:
    """A striped tapering tower with a lamp; at dusk and night the lamp shines."""
    h = c.unit * 0.36
    base = _ground_y(ridge, x) + h * 0.04
    top = base - h
    bottom_w, top_w = c.unit * 0.045, c.unit * 0.028
    stripe = c.lit(c.colour("lighthouse", (206, 40, 40), 0.0))
    white = c.lit((244, 242, 236))
    bands = 6
    for k in range(bands):
        y0, y1 = base - h * k / bands, base - h * (k + 1) / bands
        w0 = bottom_w + (top_w - bottom_w) * k / bands
        w1 = bottom_w + (top_w - bottom_w) * (k + 1) / bands
        c.draw.polygon(
            [(x - w0, y0), (x + w0, y0), (x + w1, y1), (x - w1, y1)],
            fill=stripe if k % 2 == 0 else white,
        )
    dark = c.light.level < 0.75
    lamp = _WINDOW_LIT if dark else c.lit((250, 238, 190))
    c.draw.rectangle((x - top_w * 0.8, top - top_w * 1.6, x + top_w * 0.8, top), fill=lamp)
    c.draw.polygon(
        [
            (x - top_w * 1.2, top - top_w * 1.6),
            (x + top_w * 1.2, top - top_w * 1.6),
            (x, top - top_w * 2.8),
        ],
        fill=c.lit((40, 40, 48)),
    )
    if dark:
        ly = top - top_w * 0.8
        _glow(c, x, ly, top_w * 1.6, _WINDOW_LIT)
        for side in (-1, 1):
            far = x + side * c.width * 0.45
            c.glaze.polygon(
                [(x, ly), (far, ly - c.unit * 0.06), (far, ly + c.unit * 0.05)],
                fill=(*_WINDOW_LIT, 60),
            )
