"""The `local` provider: an offline "local preview renderer", the embedded default.

It needs no network and no API key, yet behaves like a task API so the job engine
runs the same code path as for a remote provider: `submit` returns a task id at
once, `poll` reports progress rising from 0 to 99 over `render_seconds`, then
renders the images with Pillow (`core.providers.local.render`, in a worker thread) and reports the
task completed. The picture follows the provider prompt (the whole refinement chain); the
caption shows what the person typed (`caption_for`).

The provider is stateless across restarts: the submit time is encoded in the task
id (`local-<32 hex>-<submit epoch ms>`), so a new instance, after a restart, can
finish a task that an earlier instance submitted. Only cancellations are kept in
memory (a restart forgets them).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import deque
from collections.abc import Callable

from core.providers.base import (
    MB,
    DeclaredProvider,
    ErrorKind,
    GeneratedImage,
    GenerationRequest,
    InputLimits,
    ProviderError,
    ProviderInfo,
    Submission,
    TaskStatus,
)
from core.providers.local.render import RenderInputError, render_png
from core.schedule import PollSchedule

__all__ = ["INFO", "LocalProvider", "caption_for"]

INFO = ProviderInfo(
    name="local",
    title="local preview renderer",
    default_model=None,  # one renderer, no models: the label never names one
    allowed_n=(1, 2, 3, 4),  # images one task can make
    # Kept modest because it decodes everything in-process. References: the product's cap
    # (DESIGN.md: at most 5 per generation); the renderer composites any number.
    limits=InputLimits(
        max_references=5,
        max_bytes=20 * MB,
        mask_max_bytes=20 * MB,
    ),
    # Fast polling: first poll 0.5 s after submit, then every 0.5-1 s; near an expected
    # finish every 0.2 s (issue 13).
    poll_schedule=PollSchedule(first=0.5, interval=0.5, factor=1.25, cap=1.0, near=0.2),
    default_prices={"local": {"*": {"*": 0.0}}},  # free; priced under its provider name
    honours_seed=True,  # deterministic for prompt, size, seed and inputs
)

_TASK_ID = re.compile(r"^local-(?P<uid>[0-9a-f]{32})-(?P<ms>\d{1,16})$")


class LocalProvider(DeclaredProvider):
    """Renders preview images offline with Pillow, deterministic for prompt and seed.

    Declared by `INFO` (name "local", label "local preview renderer", `model` None, fast
    `poll_schedule`).

    Attributes:
        render_seconds: simulated render time in seconds, from submit to completion.
        submitted_task_ids: the task ids this instance submitted, oldest first, at most the
            last `KEPT_TASK_IDS` (an instance created after a restart starts with an empty
            list). A new list on each read.
    """

    info = INFO
    KEPT_TASK_IDS = 1000  # how many submitted task ids `submitted_task_ids` remembers

    def __init__(self, render_seconds: float = 3.0, clock: Callable[[], float] = time.time) -> None:
        """Create the provider.

        Args:
            render_seconds: how long (seconds, >= 0) a task reports "running" before it
                completes; 0 completes at the first poll.
            clock: wall-clock time in seconds since the epoch; the submit time is encoded in
                the task id, so it must be comparable across process restarts.
        """
        if render_seconds < 0:
            raise ValueError("render_seconds must be >= 0")
        super().__init__(model=None)
        self.render_seconds = float(render_seconds)
        self._submitted: deque[str] = deque(maxlen=self.KEPT_TASK_IDS)
        self._clock = clock
        self._cancelled: dict[str, None] = {}  # an ordered set, the last KEPT_TASK_IDS

    @property
    def submitted_task_ids(self) -> list[str]:
        """The last task ids (at most `KEPT_TASK_IDS`) this instance submitted, oldest first."""
        return list(self._submitted)

    async def submit(self, request: GenerationRequest) -> Submission:
        """Start a task and return its id at once; nothing is rendered yet."""
        submitted_ms = round(self._clock() * 1000)
        task_id = f"local-{uuid.uuid4().hex}-{submitted_ms}"
        self._submitted.append(task_id)
        return Submission(task_id=task_id)

    async def poll(self, task_id: str, request: GenerationRequest) -> TaskStatus:
        """Report the task: running with progress 0-99, or completed with `request.n` PNGs.

        Image i (0-based) of the n images is rendered with seed `request.seed + i`, at
        exactly `request.width` x `request.height` pixels.

        Raises:
            ProviderError: TASK_FAILED for a malformed task id or an unreadable reference or
                mask; INVALID_REQUEST for a size the renderer cannot draw.
        """
        if task_id in self._cancelled:
            return TaskStatus(
                state="failed", error=ProviderError(ErrorKind.TASK_FAILED, "cancelled")
            )
        submitted = _submit_time(task_id)
        elapsed = max(0.0, self._clock() - submitted)
        if elapsed < self.render_seconds:
            progress = min(99, int(99 * elapsed / self.render_seconds))
            return TaskStatus(state="running", progress=progress)
        images = await asyncio.to_thread(_render_all, request)
        return TaskStatus(state="completed", progress=100, images=images)

    async def cancel(self, task_id: str) -> bool:
        """Mark the task cancelled: later polls report it failed ("cancelled"). Returns True.
        The last `KEPT_TASK_IDS` cancellations are kept (a job polls its cancelled task
        once more at most)."""
        self._cancelled[task_id] = None
        if len(self._cancelled) > self.KEPT_TASK_IDS:
            del self._cancelled[next(iter(self._cancelled))]
        return True

    async def aclose(self) -> None:
        """Nothing to release: the local renderer holds no connections."""


def _submit_time(task_id: str) -> float:
    """The submit time (seconds since the epoch) encoded in a local task id."""
    match = _TASK_ID.match(task_id)
    if match is None:
        raise ProviderError(
            ErrorKind.TASK_FAILED,
            f"Unknown local task id {task_id[:80]!r}: the local preview renderer cannot "
            "resume it. Generate the image again.",
            detail="expected local-<32 hex>-<submit epoch ms>",
        )
    return int(match["ms"]) / 1000


def caption_for(request: GenerationRequest) -> str:
    """The caption of the request's images: what the person typed (`typed_prompt`: the
    prompt of a new image or the refining reply), else the provider prompt, on one line
    (runs of whitespace become one space)."""
    return " ".join((request.typed_prompt or request.prompt).split())


def _render_all(request: GenerationRequest) -> tuple[GeneratedImage, ...]:
    """Render the request's n images (blocking; runs in a worker thread)."""
    references = tuple(ref.path for ref in request.references)
    mask = request.mask.path if request.mask is not None else None
    images: list[GeneratedImage] = []
    for i in range(max(1, request.n)):
        try:
            data = render_png(
                request.prompt,
                request.width,
                request.height,
                request.seed + i,
                caption=caption_for(request),
                negative_prompt=request.negative_prompt,
                quality=request.quality,
                references=references,
                mask=mask,
            )
        except ValueError as exc:  # RenderInputError is a ValueError too
            if isinstance(exc, RenderInputError):
                what = f"cannot read {exc.what}; post the image again."
                kind = ErrorKind.TASK_FAILED
            else:
                what, kind = f"cannot draw this: {exc}.", ErrorKind.INVALID_REQUEST
            message = f"The local preview renderer {what}"
            raise ProviderError(kind, message, detail=str(exc)) from exc
        images.append(GeneratedImage(data=data, mime="image/png"))
    return tuple(images)
