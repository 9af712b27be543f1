"""New sessions on SQLite: stored before the ack, started right after it (issue 13).

Slack wants every slash command acknowledged within 3 s, and an acknowledged command must
survive a crash. Recording a session is a transaction of several statements (styles,
quotas, duplicates: `core.sessions.start_all`, ~0.15 ms of CPU per command); under a burst,
acks that each waited for that transaction came ×2 later than a bare Bolt app's. So the
intake splits it:

1. `receive` stores the request as it was typed in the inbox (`command_inbox`, one
   multi-row INSERT per group of concurrent requests, committed by the command writer,
   core.db.writer) and returns once that commit is done: the caller may ack now, and a
   process that dies after this point leaves the request in the inbox.
2. The writer then starts the stored requests in groups (`start_all` and the inbox rows'
   removal, one transaction) once the web side is idle (core.jobs.gate: no Slack request
   in flight) or a request has waited the gate's cap. The outcome (the generation id, or
   the StyleRefused / QuotaExceeded / DuplicateRequest that refused it) resolves the task
   `receive` returned; the listener tells the person through the command's `response_url`
   (the same private message the ack would have carried) and wakes the job engine.
3. At start, `replay` starts what a stopped process left in the inbox.

PostgreSQL takes concurrent transactions without one database-wide write lock; there the
listeners record sessions directly (core.sessions.start) and no intake exists.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import create_engine, sessionmaker
from core.db import inbox as inbox_db
from core.db.writer import CommandWriter, WriterClosed
from core.jobs.gate import IdleGate
from core.quotas import CostPolicy, DuplicateRequest, QuotaExceeded
from core.sessions import StartRequest, start_all
from core.styles import StyleRefused

log = logging.getLogger(__name__)


class StartedElsewhere(Exception):
    """The request had left the inbox already: another start took it (and tells its
    outcome), e.g. the start of what a stopped process left racing a live request."""


@dataclass(frozen=True)
class Stored:
    """A request in the inbox, named by `token` (hex: this process's random prefix and a
    counter, so unique across processes and restarts)."""

    token: str
    request: StartRequest


class Replayed(NamedTuple):
    """A request a stopped process left in the inbox (`Intake.replay`)."""

    request: StartRequest
    start: Coroutine[Any, Any, int]  # as `Intake.receive` returns it
    received_at: float  # UTC epoch seconds: when the stopped process stored it


class Intake:
    """The inbox and its writer (module doc).

    `database_url`: the SQLite database; `cost`: the quota and duplicate rules the
    sessions are started under; `gate`: the web side's requests in flight (the sessions
    start once it is idle, or after its `cap_seconds`); None: at once.
    """

    def __init__(
        self, database_url: str, cost: CostPolicy | None, gate: IdleGate | None = None
    ) -> None:
        self._url = database_url
        self._cost = cost
        self._mine: set[str] = set()  # tokens this process stored and has not started yet
        # Tokens: 64 random bits drawn once, then a counter (a draw per request costs an
        # os.urandom call on the loop that parses a burst).
        self._prefix = secrets.token_hex(8)
        self._count = itertools.count(1)

        async def store(db: AsyncSession, items: Sequence[Stored | str]) -> list[None]:
            # A Stored goes in; a token (a request that failed alone) comes out.
            await inbox_db.add_all(
                db, [(i.token, i.request.to_stored()) for i in items if isinstance(i, Stored)]
            )
            await inbox_db.take(db, [i for i in items if isinstance(i, str)])
            return [None] * len(items)

        async def start(db: AsyncSession, items: Sequence[Stored]) -> list[int | Exception]:
            # Taken out of the inbox first: only what is still there is started here.
            here = await inbox_db.take(db, [item.token for item in items])
            chosen = [item for item in items if item.token in here]
            answers = await start_all(db, [item.request for item in chosen], self._cost)
            by_token = dict(zip((item.token for item in chosen), answers, strict=True))
            return [by_token.get(item.token, StartedElsewhere()) for item in items]

        self.writer: CommandWriter[Stored | str, object] = CommandWriter(
            database_url,
            store,
            apply_later=start,
            ready=gate.quiet_left if gate else None,
            cap_seconds=gate.cap_seconds if gate else 0.0,
        )
        if gate is not None:
            gate.watch(self.writer.nudge)

    async def receive(self, request: StartRequest) -> Coroutine[Any, Any, int]:
        """Store `request` (a new session as typed: `StartRequest.to_stored`) and return
        once it is committed, with the coroutine that starts it: to be awaited after the
        ack (nothing of it runs before; until it is awaited the request stays stored).

        Its result is the generation id (queued); it raises StartedElsewhere (another start
        took it and tells its outcome), the refusal
        (core.styles.StyleRefused, core.quotas.QuotaExceeded, DuplicateRequest: nothing of
        the request stays stored) or WriterClosed when the process stops first (the request
        stays in the inbox and starts with the next process). Raises WriterClosed itself
        when the writer is stopped (nothing stored).
        """
        stored = Stored(f"{self._prefix}{next(self._count):x}", request)
        self._mine.add(stored.token)
        try:
            await self.writer.submit(stored)
        except BaseException:
            self._mine.discard(stored.token)
            raise
        return self._start(stored)

    async def replay(self) -> list[Replayed]:
        """The requests a stopped process stored and did not start, in arrival order, each
        with the coroutine that starts it (as `receive`'s) and when it was received."""
        engine = create_engine(self._url)
        try:
            async with sessionmaker(engine)() as db:
                rows = await inbox_db.pending(db)
        finally:
            await engine.dispose()
        started = []
        for token, data, received_at in rows:
            if token in self._mine:  # stored by this process since it started: started
                continue
            stored = Stored(token, StartRequest.from_stored(data))
            self._mine.add(token)
            started.append(Replayed(stored.request, self._start(stored), received_at))
        if started:
            log.info("starting %d requests a stopped process had acknowledged", len(started))
        return started

    async def _start(self, stored: Stored) -> int:
        try:
            answer = await self.writer.submit(stored, later=True)
        except (WriterClosed, StyleRefused, QuotaExceeded, DuplicateRequest, StartedElsewhere):
            raise  # stays stored for the next process / refused / taken by another start
        except Exception:  # failed even alone: its transaction rolled back, so drop it
            log.exception("a stored request failed to start; it is dropped")
            with contextlib.suppress(WriterClosed):
                await self.writer.submit(stored.token)
            raise
        finally:
            self._mine.discard(stored.token)
        assert isinstance(answer, int)
        return answer

    async def aclose(self) -> None:
        """Commit what is stored and start what waits, then stop the writer."""
        await self.writer.aclose()
