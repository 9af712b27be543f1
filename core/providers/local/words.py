"""The words of a prompt the local preview renderer recognises, read into a `Plan`.

`read_plan` walks the prompt's words in order, so a later word wins over an earlier one
(a refinement's prompt ends with the change asked for last, see `core.prompts`):

- time of day: dawn, morning, noon/day, sunset, dusk, night (and a few synonyms);
- colours (red, blue, teal, gold, …): a colour just before a subject ("a red house", "red
  and white lighthouse") or at the end of a clause after one ("make the sky red") colours
  that subject; any other colour tints the whole picture;
- subjects: sun, moon, circle, star, mountain, water (sea, ocean, lake, …), tree (forest,
  woods, …), lighthouse (tower), house (cabin, village, …), and the sky and land as colour
  targets; a plural ("trees", "a forest") asks for many;
- negation: "no", "without", "remove", … before a subject removes it ("remove the tree").

Everything else is ignored: the renderer fills in a pleasant layout from the seed.
Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["COLOURS", "SUBJECTS", "TIMES", "Plan", "read_plan"]

RGB = tuple[int, int, int]

TIMES: dict[str, str] = {
    **dict.fromkeys(("dawn", "sunrise", "daybreak"), "dawn"),
    **dict.fromkeys(("morning",), "morning"),
    **dict.fromkeys(("noon", "midday", "day", "daytime", "daylight", "afternoon", "sunny"), "day"),
    **dict.fromkeys(("sunset", "sundown"), "sunset"),
    **dict.fromkeys(("dusk", "twilight", "evening"), "dusk"),
    **dict.fromkeys(("night", "midnight", "nighttime", "starry", "moonlight", "moonlit"), "night"),
}
"""word -> time of day ("dawn" | "morning" | "day" | "sunset" | "dusk" | "night")."""

COLOURS: dict[str, RGB] = {
    **dict.fromkeys(("red", "crimson", "scarlet"), (212, 38, 38)),
    **dict.fromkeys(("orange", "amber"), (242, 132, 30)),
    **dict.fromkeys(("yellow",), (242, 214, 48)),
    **dict.fromkeys(("gold", "golden"), (226, 176, 40)),
    **dict.fromkeys(("green", "emerald", "lime"), (58, 168, 70)),
    **dict.fromkeys(("teal",), (20, 142, 140)),
    **dict.fromkeys(("cyan", "turquoise", "aqua"), (40, 196, 206)),
    **dict.fromkeys(("blue", "azure"), (38, 92, 214)),
    **dict.fromkeys(("navy", "indigo"), (30, 40, 120)),
    **dict.fromkeys(("purple", "violet", "lavender"), (134, 62, 186)),
    **dict.fromkeys(("magenta",), (204, 48, 164)),
    **dict.fromkeys(("pink",), (242, 132, 182)),
    **dict.fromkeys(("brown",), (132, 86, 50)),
    **dict.fromkeys(("white",), (242, 242, 240)),
    **dict.fromkeys(("black",), (22, 22, 28)),
    **dict.fromkeys(("grey", "gray"), (128, 130, 138)),
    **dict.fromkeys(("silver",), (192, 198, 208)),
}
"""colour word -> RGB."""

SUBJECTS: dict[str, str] = {
    **dict.fromkeys(("sun",), "sun"),
    **dict.fromkeys(("moon", "crescent"), "moon"),
    **dict.fromkeys(("circle", "ring", "disc", "disk", "orb", "ball", "sphere"), "circle"),
    **dict.fromkeys(("star",), "star"),
    **dict.fromkeys(("mountain", "peak", "summit", "alps", "volcano", "cliff"), "mountain"),
    **dict.fromkeys(
        ("sea", "ocean", "water", "lake", "river", "bay", "harbor", "harbour", "beach"), "water"
    ),
    **dict.fromkeys(("coast", "shore", "wave", "pond"), "water"),
    **dict.fromkeys(("tree", "forest", "wood", "pine", "oak", "palm", "jungle"), "tree"),
    **dict.fromkeys(("lighthouse", "tower", "beacon"), "lighthouse"),
    **dict.fromkeys(("house", "home", "cabin", "cottage", "hut", "barn", "village"), "house"),
    **dict.fromkeys(("town", "city"), "house"),
    **dict.fromkeys(("sky", "skies", "cloud"), "sky"),
    **dict.fromkeys(("land", "field", "meadow", "grass", "hill", "valley", "ground"), "land"),
}
"""word (singular) -> subject; "sky" and "land" are colour targets that are always drawn."""

_ALWAYS_MANY = frozenset({"forest", "wood", "woods", "jungle", "village", "town", "city"})
_MOODS: dict[str, tuple[str, RGB]] = {  # words that colour a part of the picture
    "desert": ("land", (222, 184, 122)),
    "sand": ("land", (222, 184, 122)),
    "snow": ("land", (236, 240, 246)),
    "snowy": ("land", (236, 240, 246)),
    "winter": ("land", (236, 240, 246)),
    "autumn": ("tree", (222, 120, 40)),
    "fall": ("tree", (222, 120, 40)),
}
_NEGATORS = frozenset(
    {"no", "not", "without", "remove", "removed", "delete", "erase", "hide", "drop", "minus"}
)
_CLAUSE_ENDS = frozenset(".,;:!?")
_WORD = re.compile(r"[a-z]+|[.,;:!?]")


@dataclass
class Plan:
    """What a prompt asks of the picture.

    Attributes:
        time: "dawn" | "morning" | "day" | "sunset" | "dusk" | "night", or None when the
            prompt names none.
        tint: the last colour not tied to a subject (tints the whole picture), or None.
        colours: subject ("sky", "land", "water", "house", …) -> RGB it was given.
        subjects: the subjects asked for -> True when many were asked for ("trees").
        removed: the subjects the prompt (or the negative prompt) removed, last word wins.
        named: True when the prompt named or removed any subject (the renderer then adds
            no subjects of its own).
    """

    time: str | None = None
    tint: RGB | None = None
    colours: dict[str, RGB] = field(default_factory=dict)
    subjects: dict[str, bool] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    named: bool = False


def _subject(word: str) -> tuple[str, bool] | None:
    """(subject, plural) for `word`, trying it as written and without a plural ending."""
    for stem, plural in ((word, False), (word[:-1], True), (word[:-2], True)):
        if stem in SUBJECTS and (stem == word or word.endswith("s")):
            return SUBJECTS[stem], plural or word in _ALWAYS_MANY
    return None


def _bound_to(tokens: list[str], i: int) -> str | None:
    """The subject the colour at `tokens[i]` belongs to, or None when it tints everything.

    Looks up to 3 words ahead in the clause ("red and white lighthouse"); when the colour
    ends its clause, up to 2 words back ("make the sky red")."""
    for j in range(i + 1, min(i + 4, len(tokens))):
        if tokens[j] in _CLAUSE_ENDS:
            break
        if (found := _subject(tokens[j])) is not None:
            return found[0]
    if i + 1 < len(tokens) and tokens[i + 1] not in _CLAUSE_ENDS:
        return None
    for j in range(i - 1, max(i - 3, -1), -1):
        if tokens[j] in _CLAUSE_ENDS:
            break
        if (found := _subject(tokens[j])) is not None:
            return found[0]
    return None


def read_plan(prompt: str, negative_prompt: str | None = None) -> Plan:
    """Read the recognised words of `prompt` (later words win) into a `Plan`; subjects in
    `negative_prompt` are left out."""
    plan = Plan()
    tokens = _WORD.findall(prompt.lower())
    negating = False
    for i, token in enumerate(tokens):
        if token in _CLAUSE_ENDS:
            negating = False
        elif token in _NEGATORS:
            negating = True
        elif token in TIMES:
            plan.time = TIMES[token]
        elif token in COLOURS:
            target = _bound_to(tokens, i)
            if target is None:
                plan.tint = COLOURS[token]
            else:
                plan.colours[target] = COLOURS[token]
        elif token in _MOODS:
            target, colour = _MOODS[token]
            plan.colours[target] = colour
        elif (found := _subject(token)) is not None:
            _mention(plan, *found, removed=negating)
            negating = False
    for token in _WORD.findall((negative_prompt or "").lower()):
        if (found := _subject(token)) is not None:
            _mention(plan, found[0], False, removed=True)
    return plan


def _mention(plan: Plan, subject: str, plural: bool, *, removed: bool) -> None:
    """Record a subject named (or removed) by the prompt."""
    if subject in ("sky", "land"):
        return  # always drawn; named only as colour targets
    plan.named = True
    if removed:
        plan.subjects.pop(subject, None)
        plan.removed.add(subject)
    else:
        plan.subjects[subject] = plan.subjects.get(subject, False) or plural
        plan.removed.discard(subject)
