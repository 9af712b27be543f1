"""The Alembic migration builds exactly the schema the models describe, and rolls back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, inspect

from bot.workspaces import store_metadata
from core import db
from core.models import Base


def expected_schema() -> MetaData:
    """Our models plus slack_sdk's installation and OAuth state tables (as slack_sdk
    defines them, so a slack_sdk upgrade that changes them shows up here)."""
    metadata = MetaData()
    for table in [*Base.metadata.tables.values(), *store_metadata().tables.values()]:
        table.to_metadata(metadata)
    return metadata


def test_upgrade_matches_the_models_and_downgrade_empties(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/m.db"
    asyncio.run(db.upgrade_to_head(url))
    sync = create_engine(f"sqlite:///{tmp_path}/m.db")
    with sync.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), expected_schema())
    assert diff == []
    command.downgrade(db.alembic_config(url), "base")
    assert inspect(sync).get_table_names() == ["alembic_version"]
    sync.dispose()
