"""The Alembic migrations build exactly the schema the models describe, and roll back, on
SQLite and on PostgreSQL (when TEST_DATABASE_URL names a server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.ext.asyncio import create_async_engine

from bot.workspaces import store_metadata
from core import db
from core.models import Base
from tests import pg


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (never migrated) on SQLite or PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/m.db"
        return
    admin = pg.admin_url()
    if admin is None:
        pytest.skip(pg.SKIP_REASON)
    name = pg.unique_name("imagine_m")
    url = await pg.create_database(admin, name)
    try:
        yield url
    finally:
        await pg.drop_database(admin, name)


def expected_schema() -> MetaData:
    """Our models plus slack_sdk's installation and OAuth state tables (as slack_sdk
    defines them, so a slack_sdk upgrade that changes them shows up here)."""
    metadata = MetaData()
    for table in [*Base.metadata.tables.values(), *store_metadata().tables.values()]:
        table.to_metadata(metadata)
    return metadata


def _diff_and_tables(conn) -> tuple[list, list[str]]:  # type: ignore[no-untyped-def,type-arg]
    diff = compare_metadata(MigrationContext.configure(conn), expected_schema())
    return diff, sorted(inspect(conn).get_table_names())


async def _inspect(url: str) -> tuple[list, list[str]]:  # type: ignore[type-arg]
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff_and_tables)
    finally:
        await engine.dispose()


async def test_upgrade_matches_the_models_and_downgrade_empties(empty_url: str) -> None:
    await db.upgrade_to_head(empty_url)
    diff, tables = await _inspect(empty_url)
    assert diff == []
    assert set(Base.metadata.tables) <= set(tables)
    await asyncio.to_thread(command.downgrade, db.alembic_config(empty_url), "base")
    _, tables = await _inspect(empty_url)
    assert tables == ["alembic_version"]
    # …and up again from nothing, as a fresh install would.
    await db.upgrade_to_head(empty_url)
    diff, _ = await _inspect(empty_url)
    assert diff == []
