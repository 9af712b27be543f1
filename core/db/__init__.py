"""Database access: the async engine, sessions, and the Alembic upgrade at start."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


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
