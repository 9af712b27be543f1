"""Fixtures: a running bot on loopback with the Slack stand-in and a fresh database.

Database tests take `database_url`, parametrised over SQLite (always) and PostgreSQL (when
TEST_DATABASE_URL names a server; otherwise that variant is skipped with the reason).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import db
from tests import pg
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.toapis_server import FakeToAPIs
from tests.harness import Harness

OPENAI_KEY = "sk-test-key"
TOAPIS_KEY = "toapis-test-key"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str | None]:
    """The name of a PostgreSQL database migrated to head for this test session (copied per
    test), or None without TEST_DATABASE_URL. Dropped at the end of the session."""
    admin = pg.admin_url()
    if admin is None:
        yield None
        return
    name = pg.unique_name("imagine_tpl")
    url = asyncio.run(pg.create_database(admin, name))
    try:
        asyncio.run(db.upgrade_to_head(url))
        yield name
    finally:
        asyncio.run(pg.drop_database(admin, name))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_template: str | None
) -> AsyncIterator[str]:
    """A fresh database's SQLAlchemy async URL: a SQLite file in `tmp_path` (not migrated yet),
    or a new PostgreSQL database already migrated to head (dropped after the test)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/imagine.db"
        return
    admin = pg.admin_url()
    if admin is None or pg_template is None:
        pytest.skip(pg.SKIP_REASON)
    name = pg.unique_name()
    url = await pg.create_database(admin, name, template=pg_template)
    try:
        yield url
    finally:
        await pg.drop_database(admin, name)


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """`database_url` migrated to head."""
    await db.upgrade_to_head(database_url)
    return database_url


@pytest.fixture
async def sm(migrated_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on `migrated_url` (SQLite, and PostgreSQL when configured)."""
    engine = db.create_engine(migrated_url)
    yield db.sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
async def harness(tmp_path: Path, database_url: str) -> AsyncIterator[Harness]:
    """A started bot with the local provider (0.5 s renders), on SQLite and on PostgreSQL."""
    h = await Harness(tmp_path, database_url=database_url).start()
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def openai_fake() -> AsyncIterator[FakeOpenAI]:
    """A local OpenAI Images API (accepts OPENAI_KEY)."""
    fake = FakeOpenAI(api_key=OPENAI_KEY)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def toapis_fake() -> AsyncIterator[FakeToAPIs]:
    """A local ToAPIs task API (accepts TOAPIS_KEY)."""
    fake = FakeToAPIs(api_key=TOAPIS_KEY)
    await fake.start()
    yield fake
    await fake.stop()
