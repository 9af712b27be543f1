"""The persistence layer: every query and write lives in this package.

This module holds the connection set-up (the async engine, sessions, the Alembic upgrade at
start); the modules beside it (`core.db.jobs`, …) hold the named queries and writes of one
subject each, taking and returning plain data. No other module in `core` builds SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent

retry_busy = retry(
    retry=retry_if_exception_type((IntegrityError, OperationalError)),
    stop=stop_after_attempt(6),
    wait=wait_random(0.01, 0.1),
    reraise=True,
)
"""Run a whole use case again (6 tries, 10-100 ms apart) when the database refuses it for
a concurrent writer: SQLite may answer "database is locked" to the one that read first, and
a unique constraint may refuse the loser's row (two approvals of one image at the same
moment); the rerun reads the winner's row and goes on from there."""


def create_engine(database_url: str) -> AsyncEngine:
    """An AsyncEngine for `database_url`.

    For SQLite the folder is created, and every connection gets WAL mode, foreign
    keys and a 30 s busy timeout, so the web handlers and the job engine can
    write concurrently.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(database_url)
    if url.get_backend_name() == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL is stored in the file and upgrade_to_head sets it before anyone connects;
            # switching needs an exclusive lock, so only a file never migrated here does it.
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    """Session factory; objects stay usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(database_url: str) -> Config:
    """An Alembic Config pointing at the packaged migrations and at `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["database_url"] = database_url
    return config


async def upgrade_to_head(database_url: str) -> None:
    """Run Alembic migrations up to head (in a worker thread: env.py runs its own loop)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_sqlite_wal, url.database)
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")


def _sqlite_wal(path: str) -> None:
    """Put a SQLite file in WAL mode before anyone else connects (the mode is stored in
    the file; switching later needs every other connection closed)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


async def ping(engine: AsyncEngine) -> bool:
    """True when the database answers a trivial query."""
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


def describe_url(database_url: str) -> tuple[str, str | None]:
    """(`database_url` with its password hidden, the SQLite file's path or None when the
    database is not a SQLite file)."""
    url = make_url(database_url)
    database = url.database or ""
    on_disk = url.get_backend_name() == "sqlite" and database not in ("", ":memory:")
    return url.render_as_string(hide_password=True), database if on_disk else None


async def revisions(database_url: str) -> tuple[str | None, str]:
    """(the database's Alembic revision, None when never migrated; the migrations' head).
    Raises what connecting raises (the database is down, the URL is wrong)."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            current = await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    assert head is not None
    return current, head
