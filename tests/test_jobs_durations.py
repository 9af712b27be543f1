"""The engine learns how long a provider's tasks take from the provider's own timestamps
(issue 13: polls aimed at the expected finish need the real durations, not the polls'
coarse brackets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from core.models import GenerationState
from core.providers.toapis import ToAPIsProvider
from core.schedule import PollSchedule
from tests.conftest import TOAPIS_KEY
from tests.fakes import RecordedRequest
from tests.fakes.publisher import RecordingPublisher
from tests.fakes.toapis_server import FakeToAPIs, TaskStep
from tests.jobs_support import Maker, make_engine, queue, wait_row

S = GenerationState
# Polls 0.6 s apart: the task is seen running at 0.6 s and done at 1.2 s, a bracket too
# wide (> 2 * near) to learn from, whose middle would be 0.9 s.
SLOW = PollSchedule(first=0.6, interval=0.6, factor=1.0, cap=0.6, jitter=0, near=0.1)


class _OneSecondTasks(FakeToAPIs):
    """Each task's `completed_at` is 1 s after its `created_at` (as ToAPIs reports them)."""

    async def _submit(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        response = await super()._submit(recorded, request)
        for task in self.tasks.values():
            task.completed_at = task.created_at + 1
        return response


@pytest.fixture
async def fake() -> AsyncIterator[FakeToAPIs]:
    server = _OneSecondTasks(api_key=TOAPIS_KEY)
    server.task_script = (TaskStep("in_progress", 0), TaskStep("completed", 100))
    await server.start()
    yield server
    await server.stop()


async def test_the_duration_learned_is_the_one_the_provider_reports(
    sm: Maker, tmp_path: Path, fake: FakeToAPIs
) -> None:
    provider = ToAPIsProvider(TOAPIS_KEY, fake.root_url, None, timeout=5)
    engine = make_engine(sm, tmp_path, RecordingPublisher(), provider=provider)
    engine.ctx.schedule = SLOW
    job_id = await queue(sm, "a lighthouse", provider="toapis")
    engine.start()
    try:
        done = await wait_row(sm, job_id, lambda r: r is not None and r.state == S.POSTED)
    finally:
        await engine.stop()
        await provider.aclose()
    assert done is not None and fake.tasks[done.provider_task_id].polls == 2
    assert list(engine.ctx.durations.of("toapis", done.model)) == [1.0]
    assert engine.ctx.durations.reported("toapis", done.model)  # so no probes are needed
