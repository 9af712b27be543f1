"""Parse `/imagine` text into a prompt and flags.

Flags follow Midjourney's habits (`--ar 3:2`, `--no words`, …). A bad flag
raises `FlagError` whose message says what is allowed, so nothing is queued.
Slack clients (macOS, iOS) often turn `--` into an em dash `—`: it is accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MAX_SEED = 2**32 - 1
MAX_N = 4
MAX_RATIO_SIDE = 4.0  # the long side may be at most 4x the short one
TARGET_PIXELS = 1024 * 1024  # requested images hold about one megapixel
QUALITIES = ("low", "medium", "high")
MAX_PROMPT_CHARS = 2000  # keeps every message that quotes it under Slack's 3,000-char block text

USAGE = (
    "*Usage:* `/imagine <prompt> [flags]`\n"
    "• `--ar W:H` aspect ratio, e.g. `--ar 3:2` (from 1:4 to 4:1; default 1:1)\n"
    "• `--n N` number of images, 1-4 (default 1)\n"
    "• `--seed N` a whole number from 0 to 4294967295, for repeatable results\n"
    "• `--no words` things to keep out of the image\n"
    "• `--quality low|medium|high`\n"
    "• `--model NAME` the provider's model to use\n"
    "• `--fresh` make new images even when an identical request was made before\n"
    "Example: `/imagine a lighthouse at dusk --ar 3:2 --n 2`\n"
    "The bot answers in a thread. Reply there to refine the latest image (flags work in "
    "replies too), post images to use as references, post a PNG with transparent areas and "
    "the word _mask_ to repaint those areas, click *Refine this* to branch from any version "
    "and *Approve* on the one that ships. `/imagine history` lists your recent sessions."
)


class FlagError(ValueError):
    """Bad `/imagine` input; the message tells the user what to change."""


@dataclass(frozen=True)
class Params:
    """The generation parameters a user can set with flags.

    `aspect_ratio` is reduced ("3:2"); `seed` None means "pick one"; `fresh` skips the
    result cache (issue 11: no reuse of an identical earlier request's images).
    """

    aspect_ratio: str = "1:1"
    n: int = 1
    seed: int | None = None
    negative_prompt: str | None = None
    quality: str | None = None
    model: str | None = None
    fresh: bool = False

    def size(self) -> tuple[int, int]:
        """Pixel size (width, height) with exactly this aspect ratio and about one megapixel."""
        return size_for_ratio(self.aspect_ratio)

    def describe(self) -> str:
        """Short human text of the parameters, e.g. "3:2 · 2 images · seed 42"."""
        parts = [self.aspect_ratio, f"{self.n} image{'s' if self.n > 1 else ''}"]
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        if self.quality:
            parts.append(f"quality {self.quality}")
        if self.model:
            parts.append(f"model {self.model}")
        if self.negative_prompt:
            parts.append(f"no {self.negative_prompt}")
        return " · ".join(parts)

    def to_stored(self) -> dict[str, object]:
        """The JSON object stored in `generations.params` (every field but the seed, which
        has its own column)."""
        data = asdict(self)
        data.pop("seed")
        return data

    @classmethod
    def from_stored(cls, data: dict[str, Any], seed: int | None = None) -> Params:
        """The Params a stored JSON object (see `to_stored`) and seed column describe.
        Unknown keys are ignored, so older rows stay readable."""
        known = {f.name for f in fields(cls)} - {"seed"}
        return cls(**{k: v for k, v in data.items() if k in known}, seed=seed)


@dataclass(frozen=True)
class ParsedCommand:
    """A parsed `/imagine` text: the prompt without flags, and the parameters."""

    prompt: str
    params: Params


def size_for_ratio(ratio: str) -> tuple[int, int]:
    """(width, height) in pixels: an exact multiple of the reduced ratio, about 1 MP.

    >>> size_for_ratio("3:2")
    (1254, 836)
    """
    w, h = (int(x) for x in ratio.split(":"))
    k = max(1, math.isqrt(TARGET_PIXELS // (w * h)))
    return w * k, h * k


def _parse_ratio(value: str) -> str:
    match = re.fullmatch(r"(\d{1,4}):(\d{1,4})", value)
    allowed = "Use `--ar W:H` with whole numbers, e.g. `--ar 3:2`, from 1:4 to 4:1."
    if not match:
        raise FlagError(f"`--ar {value}` is not an aspect ratio. {allowed}")
    w, h = int(match[1]), int(match[2])
    if w == 0 or h == 0:
        raise FlagError(f"`--ar {value}` has a zero side. {allowed}")
    if max(w, h) / min(w, h) > MAX_RATIO_SIDE:
        shape = "wide" if w > h else "tall"
        raise FlagError(f"`--ar {value}` is too {shape}. {allowed}")
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def _parse_int(flag: str, value: str, low: int, high: int, hint: str) -> int:
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise FlagError(f"`--{flag} {value}` is out of range. {hint}")
    return int(value)


_FLAG_RE = re.compile(r"(?:^|\s)(?:--|—|–)([A-Za-z]+)")
_VALUE_FLAGS = ("ar", "aspect", "n", "seed", "no", "quality", "q", "model")
_SWITCHES = ("fresh",)  # flags without a value (issue 11)


def parse_command(
    text: str, base: Params | None = None, *, require_prompt: bool = True
) -> ParsedCommand:
    """Split `text` into the prompt and its flags.

    `base` supplies defaults (a refinement keeps its session's parameters); with
    `require_prompt=False` an empty prompt is allowed (a reply that only posts images).
    Raises FlagError for unknown flags, missing values and out-of-range values.
    """
    text = text.strip()
    params = base or Params()
    matches = list(_FLAG_RE.finditer(text))
    prompt = text[: matches[0].start()].strip() if matches else text
    for i, match in enumerate(matches):
        name = match[1].lower()
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip()
        if name in _SWITCHES:
            prompt = f"{prompt} {value}".strip()  # text after a switch belongs to the prompt
            params = replace(params, fresh=True)
            continue
        if name not in _VALUE_FLAGS:
            raise FlagError(
                f"`--{match[1]}` is not a flag I know. "
                "Allowed: `--ar W:H`, `--n 1-4`, `--seed N`, `--no words`, "
                "`--quality low|medium|high`, `--model NAME`, `--fresh`."
            )
        if not value:
            raise FlagError(f"`--{name}` needs a value. Try `/imagine help` for examples.")
        if name != "no" and " " in value:
            # Text after a one-word flag belongs to the prompt ("--ar 3:2 a lighthouse").
            value, rest = value.split(None, 1)
            prompt = f"{prompt} {rest}".strip()
        params = _apply(params, name, value)
    if not prompt and require_prompt:
        raise FlagError("Tell me what to draw: `/imagine a lighthouse at dusk --ar 3:2`.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise FlagError(
            f"That text has {len(prompt):,} characters; keep it under {MAX_PROMPT_CHARS:,}."
        )
    return ParsedCommand(prompt=prompt, params=params)


def _apply(params: Params, name: str, value: str) -> Params:
    if name in ("ar", "aspect"):
        return replace(params, aspect_ratio=_parse_ratio(value))
    if name == "n":
        return replace(params, n=_parse_int("n", value, 1, MAX_N, "Use `--n` with 1, 2, 3 or 4."))
    if name == "seed":
        hint = f"Use `--seed` with a whole number from 0 to {MAX_SEED}."
        return replace(params, seed=_parse_int("seed", value, 0, MAX_SEED, hint))
    if name == "no":
        return replace(params, negative_prompt=value)
    if name in ("quality", "q"):
        if value.lower() not in QUALITIES:
            raise FlagError(f"`--quality {value}` is not allowed. Use low, medium or high.")
        return replace(params, quality=value.lower())
    if not re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", value):
        raise FlagError(f"`--model {value}` is not a model name. Use letters, digits, . _ - only.")
    return replace(params, model=value)


def check_supported(params: Params, allowed_n: tuple[int, ...], provider_label: str) -> None:
    """Raise FlagError when the active provider cannot make `params.n` images at once."""
    if params.n not in allowed_n:
        choices = ", ".join(f"`--n {n}`" for n in allowed_n)
        raise FlagError(
            f"{provider_label} makes {_or_list(allowed_n)} images at a time. Use {choices}."
        )


def _or_list(values: tuple[int, ...]) -> str:
    text = [str(v) for v in values]
    return text[0] if len(text) == 1 else ", ".join(text[:-1]) + " or " + text[-1]
