"""Unit tests of the exactly-once rule (core.jobs.once) with the recording publisher: a
side effect whose answer was lost is adopted on the next try, never made twice, and every
side effect is recorded before it is made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core import db
from core.models import EffectRow, GenerationState
from tests.fakes.publisher import RecordingPublisher
from tests.jobs_support import Maker, make_engine, queue, wait_row

S = GenerationState
POSTING = ("open_thread", "show_status", "share_uploads", "post_result")


@pytest.fixture
async def sm(tmp_path: Path) -> AsyncIterator[Maker]:
    url = f"sqlite+aiosqlite:///{tmp_path}/jobs.db"
    await db.upgrade_to_head(url)
    engine = db.create_engine(url)
    yield db.sessionmaker(engine)
    await engine.dispose()


async def effects(sm: Maker, job_id: int) -> dict[str, EffectRow]:
    async with sm() as s:
        rows = (await s.scalars(select(EffectRow).where(EffectRow.generation_id == job_id))).all()
    return {r.effect: r for r in rows}


@pytest.mark.parametrize("method", POSTING)
async def test_a_lost_answer_is_adopted_on_the_next_try(
    sm: Maker, tmp_path: Path, method: str
) -> None:
    publisher = RecordingPublisher()
    publisher.lose_next(method)
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher)
    engine.start()
    try:
        done = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
    assert done is not None and done.attempts == 1 and done.error_kind == "publish"
    assert len(publisher.of("open_thread")) == 1
    assert len([c for c in publisher.of("show_status") if c.view.status_ts is None]) == 1
    assert len(publisher.of("reserve_uploads")) == 1
    assert len(publisher.of("share_uploads")) == 1
    assert len(publisher.of("post_result")) == 1
    assert publisher.of("post_result")[0].result == done.result_ts
    if method == "share_uploads":
        assert [c.result for c in publisher.of("uploads_state")] == ["shared"]
    else:
        [found] = publisher.of("find_posted")
        assert found.result is not None  # adopted
    recorded = await effects(sm, job_id)
    assert set(recorded) == {"root", "status", "upload", "result"}
    assert all(r.done_at is not None and r.done_at >= r.attempted_at for r in recorded.values())
    assert recorded["result"].ref == done.result_ts and recorded["status"].ref == done.status_ts
    assert recorded["upload"].file_ids == {
        str(i): f for i, f in publisher.of("reserve_uploads")[0].result.items()
    }


async def test_reserved_files_that_slack_lost_are_uploaded_again(sm: Maker, tmp_path: Path) -> None:
    publisher = RecordingPublisher()
    publisher.lose_next("reserve_uploads")  # ids never recorded: the next try starts over
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher)
    engine.start()
    try:
        await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
    first, second = publisher.of("reserve_uploads")
    [shared] = publisher.of("share_uploads")
    assert shared.result == second.result != first.result
    assert (await effects(sm, job_id))["upload"].attempts == 2
