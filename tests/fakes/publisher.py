"""A recording in-memory Publisher for unit tests of the job engine and use cases.

Every call is appended to `calls` as a `Call` (method name, the view it was given, and the
failure for `report_failure` / `tell_requester`). Timestamps and file ids are made up in
order ("1000.000001", "F0001", …). `fail_next(method, error)` makes the next call of
`method` raise `error` (a ChannelUnreachable or PublishError, as Slack's publisher would).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from core.ports import Failure, GenerationView


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
        self._record(Call("open_thread", view, result=ts))
        return ts

    async def show_status(self, view: GenerationView, *, force: bool = False) -> str | None:
        self._raise_if_scripted("show_status", view)
        ts = view.status_ts or self._next_ts()
        self._record(Call("show_status", view, force=force, result=ts))
        return ts

    async def upload_images(self, view: GenerationView) -> dict[int, str]:
        self._raise_if_scripted("upload_images", view)
        ids = {i.index: f"F{next(self._files):04d}" for i in view.images if i.file_id is None}
        self._record(Call("upload_images", view, result=ids))
        return ids

    async def post_result(self, view: GenerationView) -> str:
        self._raise_if_scripted("post_result", view)
        ts = self._next_ts()
        self._record(Call("post_result", view, result=ts))
        return ts

    async def report_failure(self, view: GenerationView, failure: Failure) -> None:
        self._raise_if_scripted("report_failure", view)
        self._record(Call("report_failure", view, failure=failure))

    async def tell_requester(self, view: GenerationView, failure: Failure) -> None:
        self._raise_if_scripted("tell_requester", view)
        self._record(Call("tell_requester", view, failure=failure))
