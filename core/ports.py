"""The Publisher port and the plain data it is given.

`core` calls a Publisher to show a generation's progress and results; `bot`
implements it with Slack. Views are plain, frozen data read from the database
in one transaction, so a publisher never touches the database.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from core.flags import Params
from core.policy import DEFAULT_POLICY, Policy


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


class WaitReason(StrEnum):
    """Why a queued job has not started yet (stored in `generations.waiting`).

    THREAD: an older version of the same session runs first (`waiting_number` = its version).
    SLOT: the provider already runs as many tasks as allowed (PROVIDER_CONCURRENCY).
    BREAKER: the provider failed repeatedly; the circuit breaker holds new jobs back.
    QUEUE: not stored; shown for a queued job with older active jobs
        (`waiting_number` = how many).
    """

    THREAD = "thread"
    SLOT = "slot"
    BREAKER = "breaker"
    QUEUE = "queue"


class FailureReason(StrEnum):
    """Why a job failed or could not start; `bot` words each one.

    PROVIDER: the provider refused or failed the task (no retry helps); `detail` is the
        provider's message, None when it gave none.
    GAVE_UP: `attempts` retryable failures in a row (`kind` and `detail` of the last one).
    DEADLINE: the provider did not finish within `minutes` minutes.
    NO_IMAGE: the provider finished without an image.
    CHANNEL_UNREACHABLE: the bot cannot post in the channel; `kind` is the platform's code
        (e.g. "not_in_channel").
    """

    PROVIDER = "provider"
    GAVE_UP = "gave_up"
    DEADLINE = "deadline"
    NO_IMAGE = "no_image"
    CHANNEL_UNREACHABLE = "channel_unreachable"


@dataclass(frozen=True)
class Failure:
    """A failure as a code and its data, no words.

    `kind` is the error kind stored in `generations.error_kind`: a provider ErrorKind value,
    "publish" (the platform did not accept a message), "internal" (a bug on our side),
    "deadline", or the platform's channel error code. `detail` is the provider's own message
    (already meant for the user), `attempts` the tries made, `minutes` the deadline.
    """

    reason: FailureReason
    kind: str
    detail: str | None = None
    attempts: int = 0
    minutes: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form (a JSON object)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Failure | None:
        """Read the stored form back; None for None."""
        if not data:
            return None
        return cls(**{**data, "reason": FailureReason(data["reason"])})


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
    # issue 10: everyone who approved it so far (user ids, oldest first)
    votes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationView:
    """Everything a publisher needs to show one generation.

    `state` is a GenerationState value; `progress` 0-100; `thread_ts` is None until
    the session's root message exists; `status_ts` / `result_ts` are the messages
    already posted for it. `waiting_reason` says why a queued job has not started and
    `waiting_number` carries its number (see WaitReason). `failure` says why it failed.
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
    waiting_reason: WaitReason | None = None
    waiting_number: int | None = None
    failure: Failure | None = None
    instruction: str | None = None
    parent_label: str | None = None
    inputs_note: str | None = None
    cancel_requested: bool = False
    images: tuple[ImageView, ...] = ()
    # issue 10: the channel's review policy, and (image index, user id) change requests
    review: Policy = DEFAULT_POLICY
    changes_requested: tuple[tuple[int, str], ...] = ()


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

    async def report_failure(self, view: GenerationView, failure: Failure) -> None:
        """Tell the thread that the generation failed (`failure`: why, with its data) and
        what to do about it."""
        ...

    async def tell_requester(self, view: GenerationView, failure: Failure) -> None:
        """Tell only the requester (ephemeral) why their image could not start: the channel
        is unreachable (FailureReason.CHANNEL_UNREACHABLE), or it failed before its thread
        existed (any other reason)."""
        ...
