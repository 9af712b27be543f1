"""The Publisher port and the plain data it is given.

`core` calls a Publisher to show a generation's progress and results; `bot`
implements it with Slack. Views are plain, frozen data read from the database
in one transaction, so a publisher never touches the database.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
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


class Effect(StrEnum):
    """A side effect of publishing a generation, recorded before it is made (exactly once).

    ROOT: the session's root message in the channel (its ts is the thread).
    STATUS: the generation's status message in the thread.
    UPLOAD: the generation's images shared into the thread.
    RESULT: the result message (buttons) in the thread.
    FAILURE: the failure report in the thread (tagged, not resumed: the job is terminal).
    MENTION: the thread reply that calls the channel's reviewers (issue 10), made once per
        session: by the first version posted under a policy with named reviewers.
    """

    ROOT = "root"
    STATUS = "status"
    UPLOAD = "upload"
    RESULT = "result"
    FAILURE = "failure"
    MENTION = "mention"


class UploadState(StrEnum):
    """Where reserved uploads stand on the platform (Publisher.uploads_state).

    SHARED: the files are in the thread. UPLOADED: the bytes are there, not shared yet
    (share them). MISSING: the platform does not know them (upload again).
    """

    SHARED = "shared"
    UPLOADED = "uploaded"
    MISSING = "missing"


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
class InputsNote:
    """Which posted images a refinement sends, as labels (file names, "v2 image 1"): the
    references `used`, the `mask` (or None), and those `dropped` because one generation
    takes at most `limit` images (`has_base`: the base image counted as one), and the brand
    `style` applied (its name) with its `style_refs` reference images. Stored as
    JSON text in `generations.inputs_note`; a row written before it was data holds an
    English sentence, kept in `legacy`."""

    used: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    mask: str | None = None
    has_base: bool = False
    limit: int = 0
    style: str | None = None
    style_refs: int = 0
    legacy: str | None = None

    def to_stored(self) -> str | None:
        """The stored text: JSON, or None when no image was posted for the version (a
        legacy note: its sentence, as read)."""
        if self.legacy is not None:
            return self.legacy
        if not (self.used or self.dropped or self.mask or self.style):
            return None
        data = asdict(self)
        data.pop("legacy")
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_stored(cls, text: str | None) -> InputsNote | None:
        """Read the stored text back; None for None or ""."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return cls(legacy=text)
        if not isinstance(data, dict):
            return cls(legacy=text)
        return cls(
            used=tuple(data.get("used") or ()),
            dropped=tuple(data.get("dropped") or ()),
            mask=data.get("mask"),
            has_base=bool(data.get("has_base")),
            limit=int(data.get("limit") or 0),
            style=data.get("style"),
            style_refs=int(data.get("style_refs") or 0),
        )


@dataclass(frozen=True)
class Ask:
    """What a person asked for: everything a regeneration repeats.

    `prompt` as typed; `params` the flags (`params.seed` None: pick one; once the
    generation is recorded, its seed); `provider` the IMAGE_PROVIDER name and `model` its
    model (IMAGE_MODEL, the `--model` flag winning once recorded; None: the provider's
    default). A refinement adds its `instruction` (the reply's text), the `provider_prompt`
    sent instead of `prompt` (the refinement chain, a style's fragment), its `inputs_note`
    (which posted images it uses) and `parent_image_id`, the image it edits.
    """

    prompt: str
    params: Params
    provider: str
    model: str | None
    instruction: str | None = None
    provider_prompt: str | None = None
    inputs_note: InputsNote | None = None
    parent_image_id: int | None = None

    def with_seed(self, seed: int) -> Ask:
        """The same ask with `seed` fixed."""
        return replace(self, params=replace(self.params, seed=seed))


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

    `ask` is what was asked (its `params.seed` the seed used); `width` × `height` the
    size in pixels; `provider_label` names `ask`'s provider and model for people.
    `state` is a GenerationState value; `progress` 0-100; `thread_ts` is None until
    the session's root message exists; `status_ts` / `result_ts` are the messages
    already posted for it. `waiting_reason` says why a queued job has not started and
    `waiting_number` carries its number (see WaitReason). `failure` says why it failed.
    A refinement carries the `parent_label` of the image it edits ("v2 image 1").
    `enterprise_id` is the Enterprise Grid org of `team_id` (None outside Grid).
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
    ask: Ask
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
    parent_label: str | None = None
    cancel_requested: bool = False
    images: tuple[ImageView, ...] = ()
    enterprise_id: str | None = None
    # issue 10: the channel's review policy, and (image index, user id) change requests
    review: Policy = DEFAULT_POLICY
    changes_requested: tuple[tuple[int, str], ...] = ()


class Publisher(Protocol):
    """Where results go. Every method may raise PublishError (retried) or ChannelUnreachable.

    Every message a publisher posts is tagged with its Effect and generation id, so that
    after a lost answer or a crash `find_posted` finds it instead of posting it again.
    """

    async def open_thread(self, view: GenerationView) -> str:
        """Post the session's root message (who asked, prompt, parameters); return its ts."""
        ...

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        """Post or update the generation's status message; return its ts.

        Publishers throttle updates; `force` (terminal states) always goes out.
        Returns None when an update was skipped by the throttle.
        """
        ...

    async def find_posted(self, view: GenerationView, effect: Effect, since: float) -> str | None:
        """The ts of the message of `effect` for `view`'s generation that this publisher
        posted at or after `since` (UTC epoch seconds, the time the post was first tried),
        looked up in the channel (ROOT) or the thread (the others); None when there is none."""
        ...

    async def reserve_uploads(self, view: GenerationView) -> dict[int, str]:
        """Upload the bytes of `view.images` that have no `file_id`, without sharing them
        anywhere yet; return {index: file_id}."""
        ...

    async def share_uploads(self, view: GenerationView, file_ids: dict[int, str]) -> None:
        """Share reserved files into the thread (one message) and return once they are
        visible there (bounded wait: after the bound it returns anyway and logs)."""
        ...

    async def uploads_state(self, view: GenerationView, file_ids: dict[int, str]) -> UploadState:
        """Where files reserved earlier stand: shared into the thread, uploaded, or missing."""
        ...

    async def post_result(self, view: GenerationView) -> str:
        """Post the result message (images by file id, buttons); return its ts."""
        ...

    async def mention_reviewers(self, view: GenerationView) -> str:
        """Post the thread reply that calls `view.review`'s reviewers (people and groups,
        notified) to the version waiting for them; tagged Effect.MENTION; return its ts."""
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

    async def review_items_changed(self, view: GenerationView) -> None:
        """Review items of `view`'s generation changed (issue 10): a version now waits for
        the channel's reviewers, or an image of it was approved, got a change request or
        reached the gallery. The platform refreshes whatever lists show them (the App Home
        of the reviewers and the requester) in the background: this returns at once and
        never raises for a failed refresh."""
        ...
