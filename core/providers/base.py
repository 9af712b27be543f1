"""The provider port: what the job engine asks of an image provider.

A provider runs a *task*: `submit` starts it and returns the provider's task id
(the engine stores it before doing anything else), `poll` reports its state and,
once it is completed, returns the images as bytes, and `cancel` asks the
provider to stop it. Synchronous APIs (OpenAI Images) may finish inside
`submit` and return the result with the task id.

Errors are `ProviderError` with one of the kinds in `ErrorKind`; the engine
decides on retries from the kind alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Literal, Protocol

from core.schedule import PollSchedule

MB = 1024 * 1024
"""One megabyte in bytes, as the providers' docs and our messages count sizes."""

IMAGE_MIMES = frozenset({"image/png", "image/jpeg", "image/webp"})
"""The input image types (judged by content) every provider takes; `InputLimits.mimes`
defaults to them."""

DEFAULT_MAX_IMAGE_PIXELS = 40_000_000
"""Largest result image (width x height, pixels) a provider hands on, unless configured
(the `MAX_IMAGE_PIXELS` setting). Checked from the image header before anything decodes it."""


class ErrorKind(StrEnum):
    """The small set of provider failures the rest of the code handles (DESIGN.md, Providers)."""

    INVALID_REQUEST = "invalid_request"  # tell the user what to change; no retry
    AUTHENTICATION = "authentication"  # tell the admin; no retry
    RATE_LIMITED = "rate_limited"  # back off, honour Retry-After
    CONTENT_POLICY = "content_policy"  # tell the user; no retry
    QUOTA_EXHAUSTED = "quota_exhausted"  # tell the admin; no retry
    UNAVAILABLE = "unavailable"  # 5xx, timeout, connection: retry with backoff
    TASK_FAILED = "task_failed"  # the provider ran the task and reports it failed; no retry

    @property
    def retryable(self) -> bool:
        """True for the kinds that are retried with backoff."""
        return self in (ErrorKind.RATE_LIMITED, ErrorKind.UNAVAILABLE)


class ProviderError(Exception):
    """A failed provider call.

    Attributes:
        kind: which of the handled failures this is.
        message: one or two lines for the person in the channel (what happened, what to do).
            Never contains an API key.
        detail: the provider's own error text, for the log only.
        retry_after: seconds the provider asked us to wait (Retry-After and similar), or None.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        detail: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class ImageInput:
    """A local image handed to the provider: a reference image or a mask.

    `path` is a file in the image store; `mime` is its sniffed type (image/png, …).
    """

    path: Path
    mime: str


@dataclass(frozen=True)
class GenerationRequest:
    """One generation as the provider sees it.

    Attributes:
        prompt: the full text prompt.
        width, height: requested size in pixels (the exact aspect ratio the user asked for).
        aspect_ratio: the ratio as the user wrote it, reduced ("3:2").
        n: number of images, 1-4.
        seed: the seed, 0 <= seed < 2**32; providers without seeds ignore it.
        negative_prompt: words to keep out of the image, or None.
        quality: "low" | "medium" | "high", or None for the provider default.
        model: model name to send, or None for the provider default.
        references: reference images, oldest first (at most 5).
        mask: a PNG whose transparent pixels mark the area to repaint, or None.
        typed_prompt: what the person typed for this version, as they wrote it (the
            prompt of a new image, or the refining reply), or None when unknown. `prompt` is
            what providers send; only the local preview renderer shows this one (its
            caption).
    """

    prompt: str
    width: int
    height: int
    aspect_ratio: str
    n: int = 1
    seed: int = 0
    negative_prompt: str | None = None
    quality: str | None = None
    model: str | None = None
    references: tuple[ImageInput, ...] = ()
    mask: ImageInput | None = None
    typed_prompt: str | None = None


@dataclass(frozen=True)
class GeneratedImage:
    """One finished image: encoded bytes and their MIME type."""

    data: bytes
    mime: str = "image/png"


@dataclass(frozen=True)
class TaskStatus:
    """The state of a provider task.

    Attributes:
        state: "running" (queued or in progress at the provider), "completed" or "failed".
        progress: 0-100, as reported by the provider (0 when it reports none).
        images: the finished images, when completed.
        error: why it failed, when failed.
        note: a line for the result message, e.g. that the size was approximated.
        size: the size the provider made, as it names it ("1536x1024", "3:2"), for pricing.
        usage: provider-reported usage numbers (tokens, …), recorded as-is.
        took: seconds the task took by the provider's own timestamps (creation to
            completion, e.g. whole seconds), when it reports them; None otherwise.
    """

    state: Literal["running", "completed", "failed"]
    progress: int = 0
    images: tuple[GeneratedImage, ...] = ()
    error: ProviderError | None = None
    note: str | None = None
    size: str | None = None
    usage: dict[str, object] = field(default_factory=dict)
    took: float | None = None


@dataclass(frozen=True)
class Submission:
    """What `submit` returns: the provider's task id and, for synchronous APIs, the result."""

    task_id: str
    status: TaskStatus | None = None


PriceTable = Mapping[str, Mapping[str, Mapping[str, float]]]
"""USD per image by model, size and quality: `{"model": {"size": {"quality": usd}}}`, with
"*" matching anything at a level (see `core.pricing`)."""


@dataclass(frozen=True)
class InputLimits:
    """What a provider accepts as input images (reference images and a mask), and the
    largest image decoded at all.

    Attributes:
        max_bytes: largest reference image, in bytes.
        mask_max_bytes: largest mask PNG, in bytes.
        max_references: most reference images one generation may send.
        mimes: accepted reference image types, judged by content ("image/png", …);
            `IMAGE_MIMES` unless the provider takes more.
        max_pixels: largest image (width x height, pixels) decoded at all, read from its
            header before any pixel is (the MAX_IMAGE_PIXELS setting; `core.images`
            `limits_for` sets it).
    """

    max_bytes: int
    mask_max_bytes: int
    max_references: int = 5
    mimes: frozenset[str] = IMAGE_MIMES
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class ProviderInfo:
    """How a provider declares itself, once, on its class (`ProviderClass.info`).

    Attributes:
        name: the IMAGE_PROVIDER value ("local", "openai", "toapis").
        title: how the UI names the provider ("OpenAI"); with a model it becomes the label.
        default_model: the model sent when neither the request nor IMAGE_MODEL names one;
            None for a provider without models (its label never names a model).
        allowed_n: the image counts one task can make (other `--n` are refused before
            queueing).
        limits: the input images it takes (count, bytes, types; mask bytes).
        poll_schedule: the default delays (seconds) between polls of one task.
        default_prices: the provider's published prices, USD per image (`PriceTable`); {}
            when it publishes none in a form we can use.
        honours_seed: True when the same request with the same seed gives the same images
            (the result cache may reuse them, issue 11); False when the API takes no seed.
        sizes: the size values the provider makes, with their aspect ratios
            ({"1536x1024": (3, 2)}); a request is priced at the closest one. {} when the
            provider makes any size (priced as "WxH").
        token_prices: USD per million tokens by model and token kind ("text_input",
            "image_input", "output"), for providers that report token `usage` and bill by
            tokens; the cost is then reconciled from the usage. {} when not billed by tokens.
    """

    name: str
    title: str
    default_model: str | None
    allowed_n: tuple[int, ...]
    limits: InputLimits
    poll_schedule: PollSchedule
    default_prices: PriceTable = field(default_factory=dict)
    honours_seed: bool = False
    sizes: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    token_prices: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def label(self, model: str | None) -> str:
        """How the UI names the provider running `model`: "OpenAI gpt-image-1", or the title
        alone for no model or a provider without models ("local preview renderer")."""
        if model and self.default_model is not None:
            return f"{self.title} {model}"
        return self.title


class DeclaredProvider:
    """Base class of the providers: turns the class's `info` into the attributes the
    `ImageProvider` protocol declares.

    A subclass sets `info = ProviderInfo(...)`; its class then has `name` and `allowed_n`
    from it, and each instance `model` (the configured one, else `info.default_model`),
    `label` and `poll_schedule`.
    """

    info: ClassVar[ProviderInfo]
    name: ClassVar[str]
    allowed_n: ClassVar[tuple[int, ...]]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "info" in vars(cls):  # an intermediate base (HTTPProvider) declares nothing
            cls.name = cls.info.name
            cls.allowed_n = cls.info.allowed_n

    def __init__(self, model: str | None = None) -> None:
        """Args: model: the model to send when a request names none (IMAGE_MODEL), or None
        for `info.default_model`."""
        self.model: str | None = model or self.info.default_model
        self.label: str = self.info.label(self.model)
        self.poll_schedule: PollSchedule = self.info.poll_schedule


class ImageProvider(Protocol):
    """An image provider. Implementations live in `core.providers.<name>` and are listed in
    `core.providers.registry`.

    Everything the rest of the code reads from a provider is declared here:

    - `info`: the class-level declaration (`ProviderInfo`); the attributes below are its
      per-instance view.
    - `name`: the IMAGE_PROVIDER value (`info.name`).
    - `label`: how the UI names it ("local preview renderer", "OpenAI gpt-image-1", …).
    - `allowed_n`: the image counts one task can make (`info.allowed_n`).
    - `model`: the model sent when the request names none (IMAGE_MODEL or
      `info.default_model`); None for a provider without models.
    - `poll_schedule`: when the engine polls a submitted task (seconds); starts as
      `info.poll_schedule`, tests may replace it.
    """

    info: ClassVar[ProviderInfo]
    name: str
    label: str
    allowed_n: tuple[int, ...]
    model: str | None
    poll_schedule: PollSchedule

    async def submit(self, request: GenerationRequest) -> Submission:
        """Start a task. Raises ProviderError."""
        ...

    async def poll(self, task_id: str, request: GenerationRequest) -> TaskStatus:
        """Report the task's state; `request` is the one given to `submit`. Raises ProviderError."""
        ...

    async def cancel(self, task_id: str) -> bool:
        """Ask the provider to stop the task; False where the API has no cancel."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
