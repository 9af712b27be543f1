"""Parse `/imagine` text into a prompt and flags.

Flags follow Midjourney's habits (`--ar 3:2`, `--no words`, …). A bad flag
raises `FlagError` with a `FlagProblem` code and the flag and value it concerns
(`bot.messages` words it, saying what is allowed), so nothing is queued.
Slack clients (macOS, iOS) often turn `--` into an em dash `—`: it is accepted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any

MAX_SEED = 2**32 - 1
MAX_N = 4
MAX_RATIO_SIDE = 4.0  # the long side may be at most 4x the short one
TARGET_PIXELS = 1024 * 1024  # requested images hold about one megapixel
QUALITIES = ("low", "medium", "high")
MAX_PROMPT_CHARS = 2000  # keeps every message that quotes it under Slack's 3,000-char block text


class FlagProblem(StrEnum):
    """What is wrong with `/imagine` input: the codes `bot.messages` words for people.

    The data each code carries on FlagError (`flag` and `value` as typed, plus `data`):

    - `unknown_flag`: `flag` is not one we know.
    - `needs_value`: `flag` was given no value.
    - `bad_ratio`, `zero_side`, `too_wide`, `too_tall`: `--ar value` (`flag` "ar"); the
      allowed range is 1:MAX_RATIO_SIDE to MAX_RATIO_SIDE:1.
    - `out_of_range`: `--flag value` is not a whole number in `data["low"]`..`data["high"]`.
    - `bad_quality`: `--quality value`; allowed: QUALITIES.
    - `bad_model`: `--model value` is not a model name (letters, digits, `. _ - : /`).
    - `no_prompt`: nothing to draw.
    - `too_long`: the prompt has `data["length"]` characters, over `data["limit"]`.
    - `bad_style`: `--style value` is not a style name (letters, digits, - and _).
    - `n_not_supported`: `--n value`; the provider `data["provider"]` (its label) makes
      `data["allowed"]` (a tuple of counts) at a time.
    """

    UNKNOWN_FLAG = "unknown_flag"
    NEEDS_VALUE = "needs_value"
    BAD_RATIO = "bad_ratio"
    ZERO_SIDE = "zero_side"
    TOO_WIDE = "too_wide"
    TOO_TALL = "too_tall"
    OUT_OF_RANGE = "out_of_range"
    BAD_QUALITY = "bad_quality"
    BAD_MODEL = "bad_model"
    NO_PROMPT = "no_prompt"
    TOO_LONG = "too_long"
    N_NOT_SUPPORTED = "n_not_supported"
    BAD_STYLE = "bad_style"


class FlagError(ValueError):
    """Bad `/imagine` input: a FlagProblem `problem`, the `flag` (name without dashes, as
    typed) and `value` it concerns (or None), and the problem's `data` (see FlagProblem).

    `bot.messages.flag_error(err)` words it for people; `str(err)` is a plain one-line
    summary for logs.
    """

    def __init__(
        self,
        problem: FlagProblem,
        flag: str | None = None,
        value: str | None = None,
        **data: Any,
    ) -> None:
        self.problem = FlagProblem(problem)
        self.flag = flag
        self.value = value
        self.data = data
        where = " ".join(x for x in (f"--{flag}" if flag else None, value) if x)
        extra = ", ".join(f"{k}={v}" for k, v in sorted(data.items()))
        super().__init__(
            self.problem.value + (f": {where}" if where else "") + (f" ({extra})" if extra else "")
        )


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
    style: str | None = None  # a saved style's name, "none" to skip the channel's default
    fresh: bool = False

    def size(self) -> tuple[int, int]:
        """Pixel size (width, height) with exactly this aspect ratio and about one megapixel."""
        return size_for_ratio(self.aspect_ratio)

    def to_stored(self) -> dict[str, object]:
        """The JSON object stored in `generations.params` (every field but the seed, which
        has its own column)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "seed"}

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
    if not match:
        raise FlagError(FlagProblem.BAD_RATIO, "ar", value)
    w, h = int(match[1]), int(match[2])
    if w == 0 or h == 0:
        raise FlagError(FlagProblem.ZERO_SIDE, "ar", value)
    if max(w, h) / min(w, h) > MAX_RATIO_SIDE:
        raise FlagError(FlagProblem.TOO_WIDE if w > h else FlagProblem.TOO_TALL, "ar", value)
    g = math.gcd(w, h)
    return f"{w // g}:{h // g}"


def _parse_int(flag: str, value: str, low: int, high: int) -> int:
    if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
        raise FlagError(FlagProblem.OUT_OF_RANGE, flag, value, low=low, high=high)
    return int(value)


_FLAG_RE = re.compile(r"(?:^|\s)(?:--|—|–)([A-Za-z]+)")
_VALUE_FLAGS = ("ar", "aspect", "n", "seed", "no", "quality", "q", "model", "style")
_SWITCHES = ("fresh",)  # flags without a value (issue 11)
STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def parse_command(
    text: str, base: Params | None = None, *, require_prompt: bool = True
) -> ParsedCommand:
    """Split `text` into the prompt and its flags.

    `base` supplies defaults (a refinement keeps its session's parameters); with
    `require_prompt=False` an empty prompt is allowed (a reply that only posts images).
    Raises FlagError (UNKNOWN_FLAG, NEEDS_VALUE, a bad value's problem, NO_PROMPT,
    TOO_LONG).
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
            raise FlagError(FlagProblem.UNKNOWN_FLAG, match[1])
        if not value:
            raise FlagError(FlagProblem.NEEDS_VALUE, name)
        if name != "no" and " " in value:
            # Text after a one-word flag belongs to the prompt ("--ar 3:2 a lighthouse").
            value, rest = value.split(None, 1)
            prompt = f"{prompt} {rest}".strip()
        params = _apply(params, name, value)
    if not prompt and require_prompt:
        raise FlagError(FlagProblem.NO_PROMPT)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise FlagError(FlagProblem.TOO_LONG, length=len(prompt), limit=MAX_PROMPT_CHARS)
    return ParsedCommand(prompt=prompt, params=params)


def _apply(params: Params, name: str, value: str) -> Params:
    if name in ("ar", "aspect"):
        return replace(params, aspect_ratio=_parse_ratio(value))
    if name == "n":
        return replace(params, n=_parse_int("n", value, 1, MAX_N))
    if name == "seed":
        return replace(params, seed=_parse_int("seed", value, 0, MAX_SEED))
    if name == "no":
        return replace(params, negative_prompt=value)
    if name in ("quality", "q"):
        if value.lower() not in QUALITIES:
            raise FlagError(FlagProblem.BAD_QUALITY, "quality", value)
        return replace(params, quality=value.lower())
    if name == "style":
        if not STYLE_NAME.fullmatch(value.lower()):
            raise FlagError(FlagProblem.BAD_STYLE, "style", value)
        return replace(params, style=value.lower())
    if not re.fullmatch(r"[A-Za-z0-9._:/-]{1,64}", value):
        raise FlagError(FlagProblem.BAD_MODEL, "model", value)
    return replace(params, model=value)


def check_supported(params: Params, allowed_n: tuple[int, ...], provider_label: str) -> None:
    """Raise FlagError(N_NOT_SUPPORTED) when the active provider cannot make `params.n`
    images at once (`allowed_n`: the counts it can make; `provider_label`: its UI name)."""
    if params.n not in allowed_n:
        raise FlagError(
            FlagProblem.N_NOT_SUPPORTED,
            "n",
            str(params.n),
            allowed=tuple(allowed_n),
            provider=provider_label,
        )
