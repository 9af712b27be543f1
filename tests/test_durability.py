"""Restarts and dead workers: a submitted task is polled, never resubmitted; one result."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import update

from core.models import GenerationRow, GenerationState, db_now
from core.providers.local import LocalProvider
from tests.harness import Harness, buttons

S = GenerationState


def _results(harness: Harness, thread_ts: str) -> list:  # type: ignore[type-arg]
    return [m for m in harness.thread(thread_ts) if ("approve" in [a for a, _ in buttons(m)])]


async def test_restart_while_submitted_polls_the_same_task_and_posts_once(
    tmp_path: Path, database_url: str
) -> None:
    # The provider's clock stands still until the restart: the task cannot finish while
    # the test stops the server, however slow a busy machine makes that (with a real clock
    # and a 2 s render, a stop that took longer than 2 s let the old process post it).
    now = [time.time()]
    provider = LocalProvider(render_seconds=2.0, clock=lambda: now[0])
    harness = await Harness(tmp_path, database_url=database_url, provider=provider).start()
    try:
        await harness.imagine("a quiet harbour at night")
        [generation] = await harness.generations()
        submitted = await harness.wait_state(generation.id, S.SUBMITTED)
        task_id = submitted.provider_task_id
        assert task_id

        await harness.stop()  # the server goes down mid-task
        assert (await harness.generation(generation.id)).state == S.SUBMITTED
        now[0] += 2.5  # the render time passes while it is down
        await harness.start()  # a new process, same database, a new engine owner

        done = await harness.wait_state(generation.id, S.POSTED)
        assert done.provider_task_id == task_id
        assert provider.submitted_task_ids == [task_id]  # submitted once, polled after restart
        thread_ts = await harness.thread_of(generation.id)
        assert len(_results(harness, thread_ts)) == 1
        assert len([m for m in harness.thread(thread_ts) if m.files]) == 1
        assert len(harness.emulator.calls_to("files.completeUploadExternal")) == 1
    finally:
        await harness.close()


async def test_restart_after_completion_posts_the_stored_result_once(
    tmp_path: Path, database_url: str
) -> None:
    provider = LocalProvider(render_seconds=0.2)
    harness = await Harness(tmp_path, database_url=database_url, provider=provider).start()
    try:
        # Slack rate-limits the upload: the images are stored, the post waits 30 s to retry.
        harness.emulator.fail_next(
            "files.getUploadURLExternal", "ratelimited", status=429, retry_after=30
        )
        await harness.imagine("a red kite")
        [generation] = await harness.generations()
        row = await harness.wait_row(generation.id, lambda r: r.attempts == 1)
        assert row.state == S.COMPLETED and row.error_kind == "publish"

        await harness.stop()
        await harness.start()
        async with harness.sm.begin() as s:  # skip the 30 s wait
            await s.execute(update(GenerationRow).values(next_attempt_at=db_now()))
        await harness.wait_state(generation.id, S.POSTED)
        thread_ts = await harness.thread_of(generation.id)
        assert len(_results(harness, thread_ts)) == 1
        assert len([m for m in harness.thread(thread_ts) if m.files]) == 1
        assert len(provider.submitted_task_ids) == 1
    finally:
        await harness.close()


async def test_job_of_a_dead_worker_is_finished_after_its_lease_expires(
    tmp_path: Path, database_url: str
) -> None:
    now = [time.time()]  # stands still until the crash (see the first test)
    provider = LocalProvider(render_seconds=1.0, clock=lambda: now[0])
    harness = await Harness(
        tmp_path, database_url=database_url, provider=provider, job_lease_seconds=1.5
    ).start()
    try:
        await harness.imagine("a field of sunflowers")
        [generation] = await harness.generations()
        await harness.wait_state(generation.id, S.SUBMITTED)
        # Hold the job mid-step, then die without releasing it.
        async with harness.sm.begin() as s:
            await s.execute(
                update(GenerationRow).values(
                    lease_owner="dead-worker", lease_expires_at=db_now() + 4.0
                )
            )
        dead_owner_row = await harness.generation(generation.id)
        assert dead_owner_row.lease_owner == "dead-worker"
        await harness.stop(crash=True)
        now[0] += 1.5
        await harness.start()
        # Not before the lease expires…
        row = await harness.generation(generation.id)
        assert row.state == S.SUBMITTED and row.lease_owner == "dead-worker"
        # …then the new process takes it over and finishes it.
        done = await harness.wait_state(generation.id, S.POSTED, within=15)
        assert done.lease_owner is None
        assert len(provider.submitted_task_ids) == 1
        assert len(_results(harness, await harness.thread_of(generation.id))) == 1
    finally:
        await harness.close()
