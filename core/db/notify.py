"""Queue notifications on PostgreSQL: `LISTEN/NOTIFY`, so idle workers wake when a job is
queued by any process on any machine.

`announce(db)` sends `NOTIFY imagine_jobs` inside the caller's transaction; PostgreSQL
delivers it to every listening connection when (and only if) that transaction commits
(https://www.postgresql.org/docs/current/sql-notify.html). `QueueListener` keeps one
dedicated asyncpg connection that LISTENs on the channel and calls a callback for each
notification, reconnecting (and calling the callback once, for anything missed while it
was away) when the connection drops. On SQLite there is one process: `announce` does
nothing and the engine is woken in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

CHANNEL = "imagine_jobs"
log = logging.getLogger(__name__)


def is_postgresql(bind: AsyncEngine | AsyncSession | Any) -> bool:
    """True when `bind` (an engine, a session, or a sessionmaker's bind) talks to PostgreSQL."""
    engine = bind.bind if isinstance(bind, AsyncSession) else bind
    return getattr(getattr(engine, "dialect", None), "name", "") == "postgresql"


async def announce(db: AsyncSession) -> None:
    """Tell every listening worker that a job was queued, when `db`'s transaction commits.
    Does nothing on databases without NOTIFY (SQLite)."""
    if is_postgresql(db):
        await db.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class QueueListener:
    """LISTEN on the queue channel over one asyncpg connection to `database_url`
    (`postgresql+asyncpg://…`); calls `on_notify()` (plain function, on the event loop) for
    each notification and once after every (re)connect. `start()` / `stop()`.

    A lost connection is retried every `retry_seconds` (seconds); the engine's periodic
    look at the queue covers the gap meanwhile.
    """

    def __init__(
        self, database_url: str, on_notify: Callable[[], None], *, retry_seconds: float = 2.0
    ) -> None:
        self._connect_args = make_url(database_url).translate_connect_args(username="user")
        self._on_notify = on_notify
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.connected = asyncio.Event()

    def start(self) -> None:
        """Start listening on the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="queue-listener")

    async def stop(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        self._stopping = True
        # Cancel until it is done: a cancellation that lands while asyncpg's connect (with
        # its own timeout) completes can be swallowed by asyncio.wait_for (Python < 3.12).
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                task.result()

    def _notified(self, *_args: object) -> None:
        self._on_notify()

    async def _run(self) -> None:
        import asyncpg  # the `postgres` extra

        while not self._stopping:
            conn = None
            try:
                conn = await asyncpg.connect(**self._connect_args, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, ev=lost: ev.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.connected.set()
                self._on_notify()  # anything queued while we were not listening
                await lost.wait()
                log.warning("queue listener: connection lost; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as err:  # server down, restarting, refused
                log.warning("queue listener: cannot listen (%s); retrying", type(err).__name__)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(self._retry)
