"""A recording in-memory Publisher for unit tests of the job engine and use cases.

Every call is appended to `calls` as a `Call` (method name, the view it was given, and the
failure for `report_failure` / `tell_requester`). Timestamps and file ids are made up in
order ("1000.000001", "F0001", …). `fail_next(method, error)` makes the next call of
`method` raise `error` (a ChannelUnreachable or PublishError, as Slack's publisher would);
`lose_next(method)` lets the next call take effect and then raise PublishError (the answer
was lost). Posted messages are remembered by (generation, Effect) for `find_posted`, and
files by id ("reserved" or "shared") for `uploads_state`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from core.ports import Effect, Failure, GenerationView, PublishError, UploadState


@dataclass(frozen=True)
class Call:
    """One publisher call: `method`, the `view` given, `force` for show_status, `failure`
    for report_failure / tell_requester, and what the call returned (`result`)."""

    method: str
    view: GenerationView
    force: bool = False
    failure: Failure | None = None
    result: object = None


class RecordingPublisher:
    """Implements core.ports.Publisher in memory and records every call."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._errors: dict[str, list[Exception]] = defaultdict(list)
        self._ts = itertools.count(1)
        self._files = itertools.count(1)
        self._changed = asyncio.Event()
        self._lose: dict[str, int] = defaultdict(int)
        self.posted: dict[tuple[int, Effect], str] = {}
        self.files: dict[str, str] = {}  # file id -> "reserved" | "shared"

    def lose_next(self, method: str) -> None:
        """Let the next call of `method` take effect, then raise PublishError."""
        self._lose[method] += 1

    def _answer(self, method: str) -> None:
        if self._lose[method]:
            self._lose[method] -= 1
            raise PublishError("the answer was lost")

    def fail_next(self, method: str, error: Exception) -> None:
        """Make the next call of `method` raise `error` (queued: one error per call)."""
        self._errors[method].append(error)

    def of(self, method: str) -> list[Call]:
        """The calls of one method, oldest first."""
        return [call for call in self.calls if call.method == method]

    async def wait_for(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        """Wait until `predicate()` holds after some call; TimeoutError otherwise."""
        async with asyncio.timeout(within):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changed.set()

    def _next_ts(self) -> str:
        return f"1000.{next(self._ts):06d}"

    def _raise_if_scripted(self, method: str, view: GenerationView) -> None:
        if self._errors[method]:
            error = self._errors[method].pop(0)
            self._record(Call(method, view, result=error))
            raise error

    async def open_thread(self, view: GenerationView) -> str:
        self._raise_if_scripted("open_thread", view)
        ts = self._next_ts()
        self.posted[(view.generation_id, Effect.ROOT)] = ts
        self._record(Call("open_thread", view, result=ts))
        self._answer("open_thread")
        return ts

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        self._raise_if_scripted("show_status", view)
        ts = view.status_ts or self._next_ts()
        self.posted.setdefault((view.generation_id, Effect.STATUS), ts)
        self._record(Call("show_status", view, force=force, result=ts))
        self._answer("show_status")
        return ts

    async def find_posted(self, view: GenerationView, effect: Effect, since: float) -> str | None:
        ts = self.posted.get((view.generation_id, effect))
        self._record(Call("find_posted", view, result=ts))
        return ts

    async def reserve_uploads(self, view: GenerationView) -> dict[int, str]:
        self._raise_if_scripted("reserve_uploads", view)
        ids = {i.index: f"F{next(self._files):04d}" for i in view.images if i.file_id is None}
        self.files.update(dict.fromkeys(ids.values(), "reserved"))
        self._record(Call("reserve_uploads", view, result=ids))
        self._answer("reserve_uploads")
        return ids

    async def share_uploads(self, view: GenerationView, file_ids: dict[int, str]) -> None:
        self._raise_if_scripted("share_uploads", view)
        self.files.update(dict.fromkeys(file_ids.values(), "shared"))
        self._record(Call("share_uploads", view, result=dict(file_ids)))
        self._answer("share_uploads")

    async def uploads_state(self, view: GenerationView, file_ids: dict[int, str]) -> UploadState:
        states = {self.files.get(file_id) for file_id in file_ids.values()}
        state = (
            UploadState.MISSING
            if None in states
            else UploadState.SHARED
            if states == {"shared"}
            else UploadState.UPLOADED
        )
        self._record(Call("uploads_state", view, result=state))
        return state

    async def post_result(self, view: GenerationView) -> str:
        self._raise_if_scripted("post_result", view)
        ts = self._next_ts()
        self.posted[(view.generation_id, Effect.RESULT)] = ts
        self._record(Call("post_result", view, result=ts))
        self._answer("post_result")
        return ts

    async def mention_reviewers(self, view: GenerationView) -> str:
        self._raise_if_scripted("mention_reviewers", view)
        ts = self._next_ts()
        self.posted[(view.generation_id, Effect.MENTION)] = ts
        self._record(Call("mention_reviewers", view, result=ts))
        self._answer("mention_reviewers")
        return ts

    async def report_failure(self, view: GenerationView, failure: Failure) -> None:
        self._raise_if_scripted("report_failure", view)
        self._record(Call("report_failure", view, failure=failure))

    async def tell_requester(self, view: GenerationView, failure: Failure) -> None:
        self._raise_if_scripted("tell_requester", view)
        self._record(Call("tell_requester", view, failure=failure))

    async def review_items_changed(self, view: GenerationView) -> None:
        self._record(Call("review_items_changed", view))
