"""Group commit: one writer commits concurrent requests together (issue 13).

On SQLite every write transaction takes the one database-wide write lock, so a burst of
commands that each open a transaction queue for a pooled connection and then for the lock
(with SQLite's busy-handler sleeps in between). `CommandWriter` queues the requests instead;
its writer takes everything queued, runs `apply` over all of it in ONE transaction, commits,
and only then resolves each caller's future with its own answer. A caller's answer
therefore always follows its commit: whoever acknowledges on that answer acknowledges a
durable request, and a writer stopped or killed before the commit answers nothing as done.

The writer runs in its own thread with its own event loop and its own connection: under a
burst the web server's loop is busy parsing requests, and a transaction whose every
statement had to wait for a turn of that loop would take as long as the whole burst.

`apply(db, items)` returns one answer per item, in order: a value, or an exception
*instance* for an item it refused (a refusal is an answer; the transaction still commits the
others). When the whole transaction fails (an error raised by `apply`, a failed commit)
each item of the group is tried again alone, so one bad item fails only its own caller.

Work that may wait goes in a second queue (`submit(item, later=True)`, applied in groups by
`apply_later`): the writer takes it only when the first queue is empty and `ready()` says
the web side is idle (the seconds until it is, 0.0 now), or once its oldest item has waited
`cap_seconds`. The intake (core.intake) stores commands before their ack in the first
queue and starts their sessions in the second, so a burst's acks never wait behind the
sessions of its first commands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import create_engine, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

Apply = Callable[[AsyncSession, Sequence[T]], Awaitable[Sequence[R | BaseException]]]
Waiting = tuple[T, asyncio.Future[R], asyncio.AbstractEventLoop]


class WriterClosed(RuntimeError):
    """The writer stopped before this request was committed: nothing of it was stored
    (unless its group's commit had already reached the database)."""


class CommandWriter(Generic[T, R]):
    """Write requests committed in groups by one writer thread (module doc).

    `database_url`: the database (the writer opens its own engine with `core.db`'s
    settings); `apply`: the use case over a group, inside its transaction; `max_group`:
    most requests per transaction (the rest wait for the next one).
    """

    def __init__(
        self,
        database_url: str,
        apply: Apply,
        max_group: int = 500,
        *,
        apply_later: Apply | None = None,
        ready: Callable[[], float] | None = None,
        cap_seconds: float = 0.5,
    ) -> None:
        self._url = database_url
        self._apply = apply
        self._apply_later = apply_later or apply
        self._ready = ready or (lambda: 0.0)
        self._cap_seconds = cap_seconds
        self._max_group = max_group
        self._queue: deque[Waiting] = deque()
        self._later: deque[tuple[Waiting, float]] = deque()  # with time.monotonic() queued
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._closed = False
        self._killed = False
        self._in_flight: list[Waiting] = []
        self._sleeping = False  # the writer waits for a poke (guarded by _lock)
        self._timed = False  # ... and wakes by itself for later work (guarded by _lock)
        # Items of a failed group put back, to be tried one by one (guarded by _lock).
        self._alone = {False: 0, True: 0}  # by queue: later?
        self.groups = 0  # transactions committed (for tests and metrics)

    async def submit(self, item: T, *, later: bool = False) -> R:
        """Queue `item` and wait until its group is committed; returns `apply`'s (with
        `later`: `apply_later`'s) answer for it, or raises the exception it answered with
        (or raised, when the item was tried alone). Raises WriterClosed when the writer
        stopped first."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            if self._closed:
                raise WriterClosed("the writer is stopped")
            if later:
                self._later.append(((item, future, loop), time.monotonic()))
            else:
                self._queue.append((item, future, loop))
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="command-writer")
                self._thread.start()
            # Only a sleeping writer needs a wake-up; a busy one takes the queue next. (Under
            # a burst a wake-up per request costs the web thread a GIL hand-over each.) A
            # writer asleep with later work already has a time to wake (`_later_wait`) and
            # is nudged when the web side goes idle: it needs no wake-up for more of it.
            sleeping = self._sleeping and not (later and self._timed)
            if sleeping:
                self._sleeping = False
        if sleeping:
            self._poke()
        return await future

    async def aclose(self) -> None:
        """Stop taking requests, commit what is queued, stop the writer."""
        with self._lock:
            self._closed = True
        self._poke()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    async def kill(self) -> None:
        """Stop at once, as a crash would: every caller still waiting gets WriterClosed
        now, and the group in flight is rolled back instead of committed (unless its commit
        had already begun)."""
        with self._lock:
            self._closed = self._killed = True
            left = [*self._in_flight, *self._queue, *(waiting for waiting, _ in self._later)]
            self._queue.clear()
            self._later.clear()
        _answer(left, [WriterClosed("the writer stopped before this was stored")] * len(left))
        self._poke()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    def nudge(self) -> None:
        """Have a writer waiting with later work look again whether it may run it now
        (thread-safe; nothing to do otherwise)."""
        with self._lock:
            waiting = self._sleeping and bool(self._later)
        if waiting:
            self._poke()

    def _poke(self) -> None:
        """Wake the writer (one that is still starting looks at the queue first anyway)."""
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the writer's loop already ended
                loop.call_soon_threadsafe(wake.set)

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        engine = create_engine(self._url)
        self._wake, self._loop = asyncio.Event(), asyncio.get_running_loop()
        try:
            await self._drain(sessionmaker(engine))
        finally:
            await engine.dispose()

    async def _drain(self, sm: async_sessionmaker[AsyncSession]) -> None:
        assert self._wake is not None
        while True:
            with self._lock:
                if self._killed:
                    return
                group, later_group = self._take()
                self._in_flight = group
                closed = self._closed
                later = bool(self._later)
            if group:
                await self._commit(sm, group, later_group)
                with self._lock:
                    self._in_flight = []
                continue
            if closed and not later:
                return
            self._wake.clear()
            with self._lock:
                idle = self._sleeping = not self._queue and not self._closed
                self._timed = idle and bool(self._later)
                timeout = self._later_wait() if self._timed else None
            if idle:  # woken by a new request, or (later work waiting) when it may run
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                with self._lock:
                    self._sleeping = self._timed = False

    def _take(self) -> tuple[list[Waiting], bool]:
        """The next group, and whether it is later work (caller holds `_lock`): the first
        queue first; the later queue when the web side is idle or the writer is closing,
        and before the first once its oldest item has waited `cap_seconds`."""
        overdue = bool(self._later) and self._later[0][1] + self._cap_seconds <= time.monotonic()
        if self._queue and not overdue:
            return self._pop(self._queue, False), False
        if self._later and (overdue or self._closed or self._later_wait() == 0.0):
            return [waiting for waiting, _ in self._pop(self._later, True)], True
        return [], False

    def _pop(self, queue: deque[Any], later: bool) -> list[Any]:
        """The next group from `queue`: one item while a failed group is tried alone."""
        size = 1 if self._alone[later] else min(len(queue), self._max_group)
        self._alone[later] = max(0, self._alone[later] - size)
        return [queue.popleft() for _ in range(size)]

    def _later_wait(self) -> float:
        """Seconds until the later queue may be taken (0.0: now)."""
        if not self._later:
            return 0.0
        capped = self._later[0][1] + self._cap_seconds - time.monotonic()
        return max(0.0, min(self._ready(), capped))

    async def _commit(
        self, sm: async_sessionmaker[AsyncSession], group: list[Waiting], later: bool
    ) -> None:
        """Commit a group, then answer its callers. A failed group goes back to the front
        of its queue, to be tried one item at a time (the first queue still going first)."""
        apply = self._apply_later if later else self._apply
        try:
            async with sm.begin() as session:
                answers = await apply(session, [item for item, _, _ in group])
                if len(answers) != len(group):  # before the commit: nothing is stored then
                    raise RuntimeError(f"apply answered {len(answers)} of {len(group)} items")
                if self._killed:  # a crash here would lose the transaction: roll it back
                    raise WriterClosed("the writer was killed")
        except Exception as err:
            if self._killed:  # `kill` answered the callers
                return None
            if len(group) == 1:
                return _answer(group, [err])
            log.warning("a group of %d writes failed (%r); trying each alone", len(group), err)
            with self._lock:
                if later:  # due at once: they were taken already
                    due = time.monotonic() - self._cap_seconds
                    self._later.extendleft((waiting, due) for waiting in reversed(group))
                else:
                    self._queue.extendleft(reversed(group))
                self._alone[later] += len(group)
            return None
        self.groups += 1
        _answer(group, answers)


def _answer(group: Sequence[Waiting], answers: Sequence[Any]) -> None:
    """Settle each caller's future on its own loop (thread-safe): one wake-up per loop for
    the whole group, not one per caller."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for (_, future, loop), answer in zip(group, answers, strict=True):
        by_loop.setdefault(loop, []).append((future, answer))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody waits
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, answer in settled:
        if future.done():  # the caller went away
            continue
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
