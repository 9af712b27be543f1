"""Retention (issue 12) with an injected clock: stale sessions lose their images,
attachments and prompts, approved images stay, running jobs are untouched, old deliveries
are pruned, and the counts are in the audit trail."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import select, update

from bot.worker import Worker, build_worker
from core import sessions
from core.db import policy as policy_db
from core.flags import Params
from core.models import (
    AttachmentRow,
    DeliveryRow,
    GenerationRow,
    GenerationState,
    ImageRow,
    SessionRow,
)
from core.privacy import DAY, RetentionTask, sweep
from tests.fakes import png_bytes
from tests.harness import BOB, CHANNEL, Harness

S = GenerationState


def _on_disk(path: str) -> bool:
    return Path(path).exists()


async def _posted(harness: Harness, prompt: str) -> GenerationRow:
    before = len(await harness.generations())
    await harness.imagine(prompt)
    rows = await harness.wait_generations(before + 1)
    return await harness.wait_state(rows[-1].id, S.POSTED)


async def test_retention_keeps_approved_images_and_running_jobs(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, local_render_seconds=0.1, retention_days=30).start()
    try:
        kept = await _posted(harness, "an approved lighthouse")
        gone = await _posted(harness, "a forgotten harbour")
        thread_ts = await harness.thread_of(gone.id)
        files = [("ref.png", png_bytes(12, 12), "image/png")]
        await harness.emulator.post_user_message(BOB, CHANNEL, "", thread_ts=thread_ts, files=files)
        deadline = time.monotonic() + 10
        while await harness.count(AttachmentRow) < 1:
            assert time.monotonic() < deadline, "the posted image was not kept"
            await asyncio.sleep(0.05)
        async with harness.sm() as db:
            team = await db.scalar(select(SessionRow.team_id).limit(1))
        where = sessions.Conversation(team or "", CHANNEL)
        await sessions.approve(harness.sm, kept.id, 0, BOB, where)
        # A running job (its next step far away, so the engine leaves it alone).
        running = await sessions.start(
            harness.sm,
            team_id=team or "",
            channel_id=CHANNEL,
            user_id=BOB,
            prompt="a running dune",
            params=Params(),
            provider="local",
            model=None,
            response_url=None,
        )
        async with harness.sm.begin() as db:
            row = await db.get(GenerationRow, running)
            assert row is not None
            row.state, row.next_attempt_at = S.SUBMITTED, time.time() + 3600
        async with harness.sm.begin() as db:
            db.add(DeliveryRow(key="event:old", received_at=time.time() - 2 * DAY))
        stored = sorted((tmp_path / "images").rglob("*.png"))
        assert len(stored) == 3

        early = await sweep(harness.sm, 30, now=time.time() + 29 * DAY)
        assert (early.sessions, early.images, early.prompts) == (0, 0, 0)
        assert early.deliveries >= 1  # the old delivery and, a month on, the others
        async with harness.sm() as db:
            assert await db.get(DeliveryRow, "event:old") is None

        report = await sweep(harness.sm, 30, now=time.time() + 31 * DAY)
        assert report.sessions == 2 and report.images == 1 and report.attachments == 1
        assert report.prompts == 2 and report.files == 2
        async with harness.sm() as db:
            images = (await db.scalars(select(ImageRow))).all()
            assert [i.generation_id for i in images] == [kept.id]
            kept_path = images[0].path
            prompts = {g.id: g.prompt for g in (await db.scalars(select(GenerationRow))).all()}
            states = {g.id: g.state for g in (await db.scalars(select(GenerationRow))).all()}
            [event] = await policy_db.audit_events(db, "retention")
        assert _on_disk(kept_path)
        assert prompts == {kept.id: "", gone.id: "", running: "a running dune"}
        assert states[running] == S.SUBMITTED
        assert await harness.count(AttachmentRow) == 0
        assert len(sorted((tmp_path / "images").rglob("*.png"))) == 1
        assert event["detail"]["images"] == 1 and event["user_id"] is None
        assert "harbour" not in str(event)
    finally:
        await harness.close()


async def test_the_daily_task_runs_with_the_server(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, retention_days=1).start()
    try:
        task = harness.runtime.retention if harness.runtime else None
        assert isinstance(task, RetentionTask) and task.days == 1
        deadline = time.monotonic() + 10
        while task.runs < 1:
            assert time.monotonic() < deadline, "the retention task never ran"
            await asyncio.sleep(0.05)
    finally:
        await harness.close()


async def test_the_worker_runs_the_daily_sweep_too(tmp_path: Path) -> None:
    """`imagine-bot worker` sweeps as `serve` does: here the server keeps everything
    (RETENTION_DAYS unset) and a worker on the same database with RETENTION_DAYS=1 erases
    the stale session."""
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    worker: Worker | None = None
    try:
        old = await _posted(harness, "an old harbour")
        long_ago = time.time() - 3 * DAY
        async with harness.sm.begin() as db:
            await db.execute(update(SessionRow).values(created_at=long_ago))
            await db.execute(update(GenerationRow).values(created_at=long_ago))
        assert harness.runtime is not None and harness.runtime.retention is not None
        assert harness.runtime.retention.days is None
        assert harness.settings is not None
        worker = build_worker(harness.settings.model_copy(update={"retention_days": 1}))
        assert worker.retention.days == 1
        worker.start()
        deadline = time.monotonic() + 10
        while worker.retention.runs < 1:
            assert time.monotonic() < deadline, "the worker's retention task never ran"
            await asyncio.sleep(0.05)
        async with harness.sm() as db:
            prompt = await db.scalar(select(GenerationRow.prompt).where(GenerationRow.id == old.id))
            [event] = await policy_db.audit_events(db, "retention")
        assert prompt == "" and event["detail"]["sessions"] == 1
        assert await harness.count(ImageRow) == 0
    finally:
        if worker is not None:
            await worker.stop()
        await harness.close()
