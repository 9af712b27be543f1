"""A background loop that does one thing now and then every `interval` seconds (the
retention sweep, the gallery post retries) until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class Periodic:
    """Runs `run_once()` at start and then every `interval` seconds until `stop()`. A
    failed round is logged and tried again at the next one; `runs` counts the rounds."""

    name = "periodic"

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.runs = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def run_once(self) -> None:
        """One round of the work (overridden)."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the loop (once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=self.name)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("%s failed; next try in %.0f s", self.name, self.interval)
            self.runs += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._stopping.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop the loop and wait for it: a round in progress may finish (`grace` seconds
        at most, then it is cancelled), so no transaction is cut in the middle."""
        if self._task is not None:
            self._stopping.set()
            await asyncio.wait([self._task], timeout=grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
