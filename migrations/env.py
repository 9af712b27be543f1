"""Alembic environment: async engine, batch mode for SQLite's limited ALTER TABLE.

The URL comes from `config.attributes["database_url"]` (set by core.db), else
from `sqlalchemy.url` in alembic.ini, else from DATABASE_URL / the default.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from bot.workspaces import store_metadata
from core.models import Base

config = context.config
# Our models, plus slack_sdk's OAuth installation and state tables (migration 0003).
target_metadata = [Base.metadata, store_metadata()]


def _url() -> str:
    return (
        config.attributes.get("database_url")
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
        or "sqlite+aiosqlite:///./data/imagine.db"
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _do_run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_do_run)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
