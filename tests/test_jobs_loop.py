"""Unit tests of the job engine's loop on a real SQLite database: claims, leases, guarded
writes, retries and failures (Slack is the local stand-in, where a step reaches it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.emulator import SlackEmulator
from bot.publisher import SlackPublisher
from core import sessions
from core.db import jobs as jobs_db
from core.db import views
from core.flags import Params
from core.jobs import EngineConfig, JobEngine, LeaseLost, outcomes
from core.models import GenerationRow, GenerationState, SessionRow, db_now
from core.providers.local import LocalProvider
from core.store import ImageStore
from tests.harness import ALICE, CHANNEL

TOKEN = "xoxb-engine-test"

S = GenerationState


@pytest.fixture
async def emulator() -> AsyncIterator[SlackEmulator]:
    emu = SlackEmulator("secret", TOKEN)
    await emu.start()
    yield emu
    await emu.stop()


def _engine(
    sm: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    owner: str,
    emulator: SlackEmulator | None = None,
    **cfg: float,
) -> JobEngine:
    api_url = emulator.api_url if emulator else "http://127.0.0.1:9/api/"  # never called
    return JobEngine(
        sm,
        LocalProvider(render_seconds=0),
        publisher=SlackPublisher(AsyncWebClient(token=TOKEN, base_url=api_url)),
        store=ImageStore(tmp_path / "images"),
        config=EngineConfig(**cfg),  # type: ignore[arg-type]
        owner=owner,
    )


async def _queue(sm: async_sessionmaker[AsyncSession]) -> int:
    return await sessions.start(
        sm,
        team_id="T0TEAM",
        channel_id=CHANNEL,
        user_id=ALICE,
        prompt="a test",
        params=Params(),
        provider="local",
        model=None,
        response_url=None,
    )


async def _row(sm: async_sessionmaker[AsyncSession], job_id: int) -> GenerationRow:
    async with sm() as s:
        row = await s.get(GenerationRow, job_id)
        assert row is not None
        return row


async def _retry(worker: JobEngine, job_id: int, retry_after: float | None) -> float | None:
    job = await jobs_db.load(worker.ctx.sm, job_id)
    assert job is not None
    view = await views.get_view(worker.ctx.sm, job_id)
    return await outcomes.retry(worker.ctx, job, view, "unavailable", "Busy.", retry_after)


async def test_a_live_lease_cannot_be_claimed_an_expired_one_can(sm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job_id = await _queue(sm)
    first = _engine(sm, tmp_path, "first", lease_seconds=30)
    second = _engine(sm, tmp_path, "second", lease_seconds=30)
    assert await first.claim() == job_id
    row = await _row(sm, job_id)
    assert row.lease_owner == "first" and row.lease_expires_at is not None
    assert await second.claim() is None
    async with sm.begin() as s:  # the first worker died 31 s ago
        await s.execute(update(GenerationRow).values(lease_expires_at=db_now() - 1))
    assert await second.claim() == job_id
    assert (await _row(sm, job_id)).lease_owner == "second"


async def test_only_due_active_jobs_are_claimed(sm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    later, done = await _queue(sm), await _queue(sm)
    async with sm.begin() as s:
        await s.execute(
            update(GenerationRow)
            .where(GenerationRow.id == later)
            .values(next_attempt_at=db_now() + 60)
        )
        await s.execute(
            update(GenerationRow).where(GenerationRow.id == done).values(state=S.POSTED)
        )
    assert await _engine(sm, tmp_path, "w").claim() is None


async def test_writes_without_the_lease_are_refused(sm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job_id = await _queue(sm)
    owner, intruder = _engine(sm, tmp_path, "owner"), _engine(sm, tmp_path, "intruder")
    assert await owner.claim() == job_id
    with pytest.raises(LeaseLost):
        await jobs_db.write(sm, job_id, intruder.owner, state=S.FAILED)
    await jobs_db.write(sm, job_id, owner.owner, progress=10)
    row = await _row(sm, job_id)
    assert (row.state, row.progress) == (S.QUEUED, 10)


async def test_a_guarded_write_takes_plain_values_sql_expressions_and_columns_together(  # type: ignore[no-untyped-def]
    sm, tmp_path: Path
) -> None:
    """The lease-guarded UPDATE is built once per set of plain columns (issue 13); SQL
    expressions and ORM columns among the values still go into it as SQL, whatever the
    order, and the same columns with other values reuse it."""
    job_id = await _queue(sm)
    owner = _engine(sm, tmp_path, "owner")
    assert await owner.claim() == job_id
    await jobs_db.write(
        sm,
        job_id,
        owner.owner,
        progress=20,
        next_attempt_at=GenerationRow.created_at,
        submitted_at=db_now() + 5,
        error=None,
    )
    row = await _row(sm, job_id)
    assert (row.progress, row.error, row.next_attempt_at) == (20, None, row.created_at)
    assert row.submitted_at is not None and row.submitted_at > row.created_at
    await jobs_db.write(sm, job_id, owner.owner, error="busy", progress=30)
    row = await _row(sm, job_id)
    assert (row.progress, row.error, row.lease_owner) == (30, "busy", "owner")


async def test_retries_count_attempts_then_fail_with_a_clear_message(  # type: ignore[no-untyped-def]
    sm, tmp_path: Path, emulator: SlackEmulator
) -> None:
    job_id = await _queue(sm)
    # The thread exists (as after the job's first step), so the failure is told there.
    client = AsyncWebClient(token=TOKEN, base_url=emulator.api_url)
    root = await client.chat_postMessage(channel=CHANNEL, text="root")
    async with sm.begin() as s:
        await s.execute(update(SessionRow).values(thread_ts=root["ts"]))
    worker = _engine(sm, tmp_path, "w", emulator, max_attempts=3)
    assert await worker.claim() == job_id
    delays = []
    for _ in range(2):
        delays.append(await _retry(worker, job_id, 5.0))
    row = await _row(sm, job_id)
    assert row.attempts == 2 and row.state == S.QUEUED and row.error == "Busy."
    assert all(d is not None and d >= 5.0 for d in delays)  # the provider's Retry-After
    assert await _retry(worker, job_id, None) is None
    row = await _row(sm, job_id)
    assert row.state == S.FAILED and row.lease_owner is None
    assert (row.attempts, row.error_kind, row.error) == (3, "unavailable", "Busy.")
    assert row.failure == {
        "reason": "gave_up",
        "kind": "unavailable",
        "detail": "Busy.",
        "attempts": 3,
        "minutes": None,
    }
    assert await worker.claim() is None  # failed is terminal
    told = [m.text for m in emulator.replies(CHANNEL, root["ts"]) if "failed" in m.text]
    assert told and all("gave up after 3 tries" in text for text in told)
