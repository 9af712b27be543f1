"""What the providers do with a request and its results, shared by all of them.

- `build_prompt`: the prompt text sent, with `--no` words as a "Do not include: …" sentence.
- `read_input`: a reference image or mask from the image store, as bytes.
- `closest_size`: the provider size nearest to the requested aspect ratio.
- `sniff_mime`, `check_pixels`, `result_image`: a result image's type, and its pixel count
  read from its header before anything decodes it, against the `MAX_IMAGE_PIXELS` cap.
- `completed`: the `TaskStatus` of a finished task.
"""

from __future__ import annotations

import asyncio
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from core.providers.base import (
    ErrorKind,
    GeneratedImage,
    GenerationRequest,
    ImageInput,
    ProviderError,
    TaskStatus,
)


def build_prompt(request: GenerationRequest) -> str:
    """The prompt sent: the user's prompt plus "Do not include: …" for `--no` (neither
    OpenAI nor ToAPIs has a negative-prompt field)."""
    prompt = request.prompt.strip()
    if request.negative_prompt and request.negative_prompt.strip():
        prompt = f"{prompt}\n\nDo not include: {request.negative_prompt.strip()}."
    return prompt


async def read_input(image: ImageInput, role: str) -> bytes:
    """The bytes of a `role` ("reference", "mask", …) image, read in a worker thread.

    Raises ProviderError(INVALID_REQUEST) when the file is gone from the image store.
    """
    try:
        return await asyncio.to_thread(image.path.read_bytes)
    except OSError as exc:
        raise missing_input(role, image.path, exc) from exc


def missing_input(role: str, path: Path, exc: OSError) -> ProviderError:
    """The error for a `role` image gone from the image store: INVALID_REQUEST, asking for
    the image to be posted again."""
    return ProviderError(
        ErrorKind.INVALID_REQUEST,
        f"A {role} image is no longer available. Post it in the thread again.",
        detail=f"{path}: {exc}",
    )


def sniff_mime(data: bytes, fallback: str = "image/png") -> str:
    """The image MIME type from the first bytes (PNG, JPEG, WebP, GIF), else `fallback`."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return fallback


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:.1f}".removesuffix(".0")


def check_pixels(data: bytes, provider: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) of an encoded result image, read from its header only. Blocking.

    Pillow's `Image.open` reads the header and decodes nothing; the size is compared with
    `max_pixels` (width x height) before anyone calls `load`/`convert` on it. Pillow's own
    guard (`Image.MAX_IMAGE_PIXELS`, about 89 M by default) may warn inside `open` for
    images over its limit and raises `DecompressionBombError` over twice that: both are far
    over the default cap of 40 M, and the error is refused here like any other oversize.

    Raises ProviderError: INVALID_REQUEST (no retry: the same request would make the same
    size) when the image has more than `max_pixels` pixels, giving its size and the cap;
    TASK_FAILED when the bytes are not an image Pillow can read.
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:
        guard = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow raises over twice its limit
        size = f"more than {_megapixels(guard)} megapixels"
        raise _too_large(provider, min(max_pixels, guard), size, f"Pillow: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ProviderError(
            ErrorKind.TASK_FAILED,
            f"{provider} returned a result that is not an image. Press Regenerate to try again.",
            detail=f"result image: {type(exc).__name__}: {str(exc)[:300]}",
        ) from exc
    if width * height > max_pixels:
        size = f"{width} × {height} pixels ({_megapixels(width * height)} megapixels)"
        raise _too_large(provider, max_pixels, size, f"{width}x{height} > {max_pixels} pixels")
    return width, height


def _too_large(provider: str, max_pixels: int, size: str, detail: str) -> ProviderError:
    """INVALID_REQUEST for a result image of `size` (text) over `max_pixels`."""
    return ProviderError(
        ErrorKind.INVALID_REQUEST,
        f"{provider} returned an image of {size}; images over "
        f"{_megapixels(max_pixels)} megapixels are refused. Try a smaller size (--ar, "
        "--quality), or ask an admin to raise MAX_IMAGE_PIXELS.",
        detail=f"result image refused: {detail}",
    )


async def result_image(data: bytes, provider: str, max_pixels: int) -> GeneratedImage:
    """A result image after `check_pixels` (run in a worker thread); MIME from its bytes.

    Raises ProviderError as `check_pixels` does.
    """
    await asyncio.to_thread(check_pixels, data, provider, max_pixels)
    return GeneratedImage(data=data, mime=sniff_mime(data))


@dataclass(frozen=True)
class SizeChoice:
    """A provider size picked for a requested aspect ratio.

    Attributes:
        value: what is sent to the provider ("1536x1024", "3:2").
        ratio_text: that size's ratio as text ("3:2").
        approximated: True when the requested ratio differs from it by more than 1 %.
    """

    value: str
    ratio_text: str
    approximated: bool


def closest_size(width: int, height: int, choices: Mapping[str, tuple[int, int]]) -> SizeChoice:
    """The choice whose aspect ratio is closest to `width:height` (distance in log ratio).

    `choices` maps the provider's size value to its ratio, e.g. {"1536x1024": (3, 2)}.
    """
    wanted = math.log(max(1, width) / max(1, height))
    best_value, best_ratio = min(
        choices.items(), key=lambda item: abs(math.log(item[1][0] / item[1][1]) - wanted)
    )
    distance = abs(math.log(best_ratio[0] / best_ratio[1]) - wanted)
    return SizeChoice(best_value, f"{best_ratio[0]}:{best_ratio[1]}", distance > 0.01)


def completed(
    images: Sequence[GeneratedImage],
    size: SizeChoice,
    note: str | None,
    usage: object,
    took: float | None = None,
) -> TaskStatus:
    """A completed task: `images`, the provider's `size` value (for pricing), the `note` for
    the result message, the provider-reported `usage` when it is an object, and the
    seconds the task `took` by the provider's timestamps when known."""
    return TaskStatus(
        state="completed",
        progress=100,
        images=tuple(images),
        note=note,
        size=size.value,
        usage=dict(usage) if isinstance(usage, dict) else {},
        took=took,
    )
