"""Fresh PostgreSQL databases for tests, on the server `TEST_DATABASE_URL` names.

`TEST_DATABASE_URL` (e.g. `postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`) names a
database the tests may connect to for administration; they never write into it. They
create their own databases beside it (`imagine_t_<random>…`) and drop them afterwards:
one template per test session, migrated once to head, and one copy of it per test
(`CREATE DATABASE … TEMPLATE …`, a file copy on the server, so each test starts empty).
"""

from __future__ import annotations

import os
import secrets

import asyncpg
from sqlalchemy.engine import URL, make_url

ENV = "TEST_DATABASE_URL"
SKIP_REASON = (
    f"{ENV} is not set: the PostgreSQL variant of the database tests is skipped "
    "(set it to postgresql+asyncpg://USER@HOST:PORT/DB, a database to administer from)"
)


def admin_url() -> URL | None:
    """The parsed `TEST_DATABASE_URL`, or None when it is not set (or empty)."""
    value = os.environ.get(ENV, "").strip()
    return make_url(value) if value else None


async def _connect(url: URL) -> asyncpg.Connection:
    return await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        database=url.database or "postgres",
        timeout=10,
    )


def unique_name(prefix: str = "imagine_t") -> str:
    """A database name no other test run uses (lower case, at most 63 bytes)."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


async def create_database(admin: URL, name: str, template: str | None = None) -> str:
    """Create database `name` (from `template`, else empty) on the admin server; returns
    its SQLAlchemy async URL."""
    conn = await _connect(admin)
    try:
        source = f' TEMPLATE "{template}"' if template else " TEMPLATE template0"
        await conn.execute(f'CREATE DATABASE "{name}"{source}')
    finally:
        await conn.close()
    return admin.set(drivername="postgresql+asyncpg", database=name).render_as_string(
        hide_password=False
    )


async def drop_database(admin: URL, name: str) -> None:
    """Drop database `name`, ending any connection still open to it (PostgreSQL 13+)."""
    conn = await _connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
