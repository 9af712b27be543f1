"""Foreground first: background work waits while requests are being answered (issue 13).

The web server and the job engine share one event loop. Under a burst of slash commands
every job step the engine starts (a thread to post, a task to submit: ~20 ms of CPU each)
delays the acks still to send, and Slack gives each ack 3 s. `IdleGate` lets the web side
say how many requests it is answering (`busy()`, fed by the bot's HTTP middleware: core
knows nothing of HTTP), and lets background work wait (`wait()`) until none is, plus a
short quiet spell (the next request of a burst usually follows within milliseconds), for
at most `cap_seconds` per wait, so a steady stream of requests slows the engine down but
never stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

CAP_SECONDS = 0.5  # longest one wait() holds background work back
QUIET_SECONDS = 0.05  # idle means no request in flight for this long


class IdleGate:
    """Counts the requests in flight; `wait()` returns once there has been none for
    `quiet_seconds`, or after `cap_seconds` (both seconds). Single event loop, not
    thread-safe."""

    def __init__(self, cap_seconds: float = CAP_SECONDS, quiet_seconds: float = QUIET_SECONDS):
        self.cap_seconds = cap_seconds
        self.quiet_seconds = quiet_seconds
        self._in_flight = 0
        self._last_left = -float("inf")  # time.monotonic() when the last request ended
        self._idle = asyncio.Event()
        self._idle.set()
        self.deferred_seconds = 0.0  # total time wait() held callers back (metrics, tests)
        self._watchers: list[Callable[[], None]] = []

    @property
    def in_flight(self) -> int:
        """Requests being answered now."""
        return self._in_flight

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Count one request in flight for the duration of the `with` block."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            # This order, for another thread reading `quiet_left`: it sees the request in
            # flight or the new time it left, never "none in flight" with an old time.
            self._last_left = time.monotonic()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
                for watcher in self._watchers:
                    watcher()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (on this loop; it must be quick) each time the last request in
        flight ends: e.g. to wake a thread waiting for the gate to be idle."""
        self._watchers.append(callback)

    def quiet_left(self) -> float:
        """Seconds until the gate counts as idle: 0.0 idle now, inf while a request is in
        flight. Only reads, so another thread may ask (the command writer, core.intake)."""
        return self._quiet_left(time.monotonic())

    def _quiet_left(self, now: float) -> float:
        """Seconds until the gate counts as idle (0: idle now; inf: a request is in flight)."""
        if self._in_flight:
            return float("inf")
        return max(0.0, self._last_left + self.quiet_seconds - now)

    async def wait(self) -> float:
        """Wait until idle (see the class doc), at most `cap_seconds`; returns the seconds
        waited (0.0 on the fast path, when idle already)."""
        start = now = time.monotonic()
        if self._quiet_left(now) == 0.0:
            return 0.0
        deadline = start + self.cap_seconds
        while (left := self._quiet_left(now)) > 0.0 and now < deadline:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, deadline - now)):
                    if self._in_flight:
                        await self._idle.wait()
                    else:
                        await asyncio.sleep(left)  # the quiet spell; a new request restarts it
            now = time.monotonic()
        waited = now - start
        self.deferred_seconds += waited
        return waited
