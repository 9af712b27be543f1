"""PostgreSQL's part of the job queue: the database clock, claims under contention
(`FOR UPDATE SKIP LOCKED`) and LISTEN/NOTIFY waking a worker in another process."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import jobs as jobs_db
from core.db.notify import QueueListener, is_postgresql
from core.models import db_now
from tests.jobs_support import queue

Maker = async_sessionmaker[AsyncSession]


async def test_the_database_clock_is_epoch_seconds_as_a_float(sm: Maker) -> None:
    async with sm() as s:
        now = await s.scalar(select(db_now()))
    assert isinstance(now, float)
    assert abs(now - time.time()) < 5  # the server is this machine


async def test_concurrent_claims_take_each_job_once(sm: Maker) -> None:
    ids = [await queue(sm, f"job {i}") for i in range(12)]
    owners = [f"w{i}" for i in range(6)]

    async def claim_all(owner: str) -> list[int]:
        got = []
        while (job_id := await jobs_db.claim(sm, owner, 30, got)) is not None:
            got.append(job_id)
        return got

    claimed = await asyncio.gather(*(claim_all(o) for o in owners))
    flat = [j for got in claimed for j in got]
    assert sorted(flat) == ids  # every job once, none twice
    assert await jobs_db.next_due_in(sm, []) == pytest.approx(30, abs=5)  # leases expire then


async def test_next_due_in_is_none_with_no_active_job(sm: Maker) -> None:
    assert await jobs_db.next_due_in(sm, []) is None
    job_id = await queue(sm)
    due = await jobs_db.next_due_in(sm, [])
    assert due is not None and due <= 0
    assert await jobs_db.next_due_in(sm, [job_id]) is None


async def test_queuing_a_job_notifies_a_listener_on_another_connection(
    sm: Maker, migrated_url: str
) -> None:
    if not is_postgresql(sm.kw["bind"]):
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; SQLite wakes the engine in-process")
    woken = asyncio.Event()
    listener = QueueListener(migrated_url, woken.set)
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        await asyncio.wait_for(woken.wait(), 10)  # once at connect, for anything missed
        woken.clear()
        await queue(sm)
        await asyncio.wait_for(woken.wait(), 10)
    finally:
        await listener.stop()
