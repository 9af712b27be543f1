"""The Publisher port and the plain data it is given.

`core` calls a Publisher to show a generation's progress and results; `bot`
implements it with Slack. Views are plain, frozen data read from the database
in one transaction, so a publisher never touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from core.flags import Params


class ChannelUnreachable(Exception):
    """The bot cannot post where the session lives (not in the channel, channel gone).

    `reason` is the platform's error code (e.g. "not_in_channel"); no retry helps.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PublishError(Exception):
    """A transient failure to publish (rate limited, network); the step is retried later.

    `retry_after` is the platform's hint in seconds, when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class ImageView:
    """One stored image of a generation. `index` is 0-based; `path` is in the image store;
    `file_id` is the uploaded file; `approved_by` / `approved_at` say who approved it, when."""

    image_id: int
    index: int
    path: Path
    width: int
    height: int
    mime: str
    bytes: int
    sha256: str
    file_id: str | None = None
    approved_by: str | None = None
    approved_at: float | None = None  # UTC epoch seconds


@dataclass(frozen=True)
class GenerationView:
    """Everything a publisher needs to show one generation.

    `state` is a GenerationState value; `progress` 0-100; `thread_ts` is None until
    the session's root message exists; `status_ts` / `result_ts` are the messages
    already posted for it. `waiting_reason` says why a queued job has not started.
    A refinement carries its `instruction`, the `parent_label` of the image it edits
    ("v2 image 1") and `inputs_note` (which references and mask it used).
    """

    generation_id: int
    session_id: int
    version: int
    kind: str
    team_id: str
    channel_id: str
    thread_ts: str | None
    owner_user_id: str
    requested_by: str
    prompt: str
    params: Params
    seed: int
    width: int
    height: int
    provider_label: str
    state: str
    progress: int = 0
    status_ts: str | None = None
    result_ts: str | None = None
    response_url: str | None = None
    note: str | None = None
    error: str | None = None
    waiting_reason: str | None = None
    instruction: str | None = None
    parent_label: str | None = None
    inputs_note: str | None = None
    cancel_requested: bool = False
    images: tuple[ImageView, ...] = ()


class Publisher(Protocol):
    """Where results go. Every method may raise PublishError (retried) or ChannelUnreachable."""

    async def open_thread(self, view: GenerationView) -> str:
        """Post the session's root message (who asked, prompt, parameters); return its ts."""
        ...

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        """Post or update the generation's status message; return its ts.

        Publishers throttle updates; `force` (terminal states) always goes out.
        Returns None when an update was skipped by the throttle.
        """
        ...

    async def upload_images(self, view: GenerationView) -> dict[int, str]:
        """Upload `view.images` that have no `file_id` into the thread; return {index: file_id}."""
        ...

    async def post_result(self, view: GenerationView) -> str:
        """Post the result message (images by file id, buttons); return its ts."""
        ...

    async def report_failure(self, view: GenerationView, message: str) -> None:
        """Tell the thread that the generation failed and what to do about it."""
        ...

    async def tell_requester(self, view: GenerationView, message: str) -> None:
        """Tell only the requester (ephemeral), e.g. when the thread cannot be opened."""
        ...
