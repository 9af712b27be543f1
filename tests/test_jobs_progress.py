"""Progress is shown (and written) within the engine's share of status edits (issue 13):
each running job shows a new progress step at most every `running jobs /
progress_edits_per_second` seconds, counted from its submit."""

from __future__ import annotations

import time
from pathlib import Path

from core.jobs.context import PollTrack
from core.models import GenerationState
from core.schedule import PollSchedule
from tests.fakes.publisher import RecordingPublisher
from tests.jobs_support import Maker, make_engine, queue, wait_row

S = GenerationState
FAST = PollSchedule(first=0.05, interval=0.05, factor=1.0, cap=0.1, jitter=0)


async def _progress_shown(sm: Maker, tmp_path: Path, others: int) -> list[int]:
    """Run one 1.5 s job while `others` jobs run too; the progress its status showed."""
    publisher = RecordingPublisher()
    job_id = await queue(sm)
    engine = make_engine(sm, tmp_path, publisher, render_seconds=1.5)
    engine.ctx.schedule = FAST
    for other in range(others):  # jobs of this engine at the provider (by id)
        engine.ctx.tracks[-1 - other] = PollTrack(time.monotonic())
    engine.start()
    try:
        await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
    return [
        c.view.progress
        for c in publisher.of("show_status")
        if c.view.state == S.SUBMITTED and c.view.status_ts
    ]


async def test_a_job_alone_shows_its_progress(sm: Maker, tmp_path: Path) -> None:
    shown = await _progress_shown(sm, tmp_path, 0)
    assert shown and all(0 < p < 100 for p in shown)


async def test_among_many_running_jobs_progress_waits_for_its_share(
    sm: Maker, tmp_path: Path
) -> None:
    # 99 others: one step every 100 s at most, so none within a 1.5 s task.
    assert await _progress_shown(sm, tmp_path, 99) == []
