"""Shared set-up of the job engine unit tests: a migrated SQLite file, a recording
publisher, the local provider, and helpers that wait on conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import sessions
from core.db import jobs as jobs_db
from core.db.jobs import Job
from core.flags import Params
from core.jobs import EngineConfig, JobEngine
from core.models import GenerationRow
from core.providers.base import ImageProvider
from core.providers.local import LocalProvider
from core.store import ImageStore
from tests.fakes.publisher import RecordingPublisher
from tests.harness import ALICE, CHANNEL

Maker = async_sessionmaker[AsyncSession]


def make_engine(
    sm: Maker,
    tmp_path: Path,
    publisher: RecordingPublisher,
    *,
    render_seconds: float = 0,
    owner: str = "w",
    provider: ImageProvider | None = None,
    **cfg: float,
) -> JobEngine:
    """A JobEngine (not started) over the local provider (`provider`, else a new one
    rendering for `render_seconds`) and `publisher`."""
    return JobEngine(
        sm,
        provider or LocalProvider(render_seconds=render_seconds),
        publisher=publisher,
        store=ImageStore(tmp_path / "images"),
        config=EngineConfig(idle_seconds=0.05, **cfg),  # type: ignore[arg-type]
        owner=owner,
    )


async def queue(
    sm: Maker, prompt: str = "a test", params: Params | None = None, provider: str = "local"
) -> int:
    """Start a session with one queued generation for `provider`; its id."""
    return await sessions.start(
        sm,
        team_id="T0TEAM",
        channel_id=CHANNEL,
        user_id=ALICE,
        prompt=prompt,
        params=params or Params(),
        provider=provider,
        model=None,
        response_url=None,
    )


async def set_row(sm: Maker, job_id: int, **values: object) -> None:
    """Write columns of a generation directly (as another process would)."""
    async with sm.begin() as db:
        await db.execute(update(GenerationRow).where(GenerationRow.id == job_id).values(**values))


async def job(sm: Maker, job_id: int) -> Job:
    """The job as stored now."""
    found = await jobs_db.load(sm, job_id)
    assert found is not None
    return found


async def row(sm: Maker, job_id: int) -> GenerationRow | None:
    """The generation row as stored now (None when deleted)."""
    async with sm() as db:
        return await db.get(GenerationRow, job_id)


async def wait_row(
    sm: Maker, job_id: int, predicate: Callable[[GenerationRow | None], bool], within: float = 20
) -> GenerationRow | None:
    """Wait until the row satisfies `predicate`; fail the test otherwise."""
    deadline = time.monotonic() + within
    while not predicate(found := await row(sm, job_id)):
        if time.monotonic() > deadline:
            raise AssertionError(f"generation {job_id} is {found and found.state}")
        await asyncio.sleep(0.02)
    return found
