"""Scale-out on PostgreSQL (issue 14): three processes on one database, as real
subprocesses: two web processes, `serve` (which also runs the job engine) and
`serve --no-worker`, and one `imagine-bot worker`; the Slack stand-in and the ToAPIs fake run
in this process on loopback. 200 /imagine are spread over the two web processes; once every
task is submitted and results are being posted, the worker is killed with SIGKILL while it
holds leases; the engine in `serve` takes its jobs over once the leases expire. Every
/imagine gets one thread with one result and one upload, every task is submitted once, none
is lost.

SCALE_TEST_JOBS sets how many /imagine are sent (default 200).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.emulator import SlackEmulator
from core import db
from core.models import GenerationRow, GenerationState, SessionRow
from tests import pg
from tests.conftest import TOAPIS_KEY
from tests.fakes.toapis_server import FakeToAPIs, TaskStep
from tests.fleet import Fleet, free_port, healthy
from tests.harness import ALICE, CHANNEL, buttons

S = GenerationState
JOBS = int(os.environ.get("SCALE_TEST_JOBS", "200"))
LEASE_SECONDS = 3.0

pytestmark = pytest.mark.timeout(420)


@pytest.fixture
async def pg_url(pg_template: str | None) -> AsyncIterator[str]:
    """A fresh PostgreSQL database migrated to head; the test is skipped without one."""
    admin = pg.admin_url()
    if admin is None or pg_template is None:
        pytest.skip(pg.SKIP_REASON)
    name = pg.unique_name()
    url = await pg.create_database(admin, name, template=pg_template)
    try:
        yield url
    finally:
        await pg.drop_database(admin, name)


async def _until(condition, within: float, what: str, fleet: Fleet, sm=None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            states = await _states(sm) if sm is not None else ""
            raise AssertionError(f"timed out waiting for {what}: {states}\n{fleet.logs()}")
        await asyncio.sleep(0.1)


async def _states(sm) -> str:  # type: ignore[no-untyped-def]
    """What the jobs are doing, for a failure message."""
    async with sm() as s:
        rows = (
            await s.execute(
                select(
                    GenerationRow.state,
                    GenerationRow.waiting,
                    GenerationRow.lease_owner,
                    GenerationRow.error,
                    func.count(),
                ).group_by(
                    GenerationRow.state,
                    GenerationRow.waiting,
                    GenerationRow.lease_owner,
                    GenerationRow.error,
                )
            )
        ).all()
    return "; ".join(str(tuple(r)) for r in rows)


async def test_three_processes_worker_killed_mid_run_every_job_posted_once(
    tmp_path: Path, pg_url: str
) -> None:
    secret, token = "scale-secret", "xoxb-scale-test"
    emulator = SlackEmulator(secret, token)
    await emulator.start()
    toapis = FakeToAPIs(api_key=TOAPIS_KEY)
    base = await toapis.start()
    toapis.task_script = (TaskStep("in_progress", 50), TaskStep("completed", 100))
    engine = db.create_engine(pg_url)
    sm = db.sessionmaker(engine)
    ports = [free_port(), free_port()]
    fleet = Fleet(
        tmp_path,
        {
            "SLACK_BOT_TOKEN": token,
            "SLACK_SIGNING_SECRET": secret,
            "SLACK_API_URL": emulator.api_url,
            "DATABASE_URL": pg_url,
            "IMAGE_STORE_DIR": str(tmp_path / "images"),  # one machine: a shared folder
            "IMAGE_PROVIDER": "toapis",
            "TOAPIS_API_KEY": TOAPIS_KEY,
            "TOAPIS_BASE_URL": base,
            "JOB_LEASE_SECONDS": str(LEASE_SECONDS),
            "PROVIDER_CONCURRENCY": str(JOBS),
            "LOG_LEVEL": "WARNING",
        },
    )

    async def count(*where) -> int:  # type: ignore[no-untyped-def]
        async with sm() as s:
            query = select(func.count()).select_from(GenerationRow).where(*where)
            return int(await s.scalar(query) or 0)

    try:
        await fleet.spawn("web0", "serve", PORT=str(ports[0]))  # web and job engine
        await fleet.spawn("web1", "serve", "--no-worker", PORT=str(ports[1]))
        doomed = await fleet.spawn("worker", "worker")
        for port in ports:
            await _until(lambda p=port: healthy(p), 60, f"web :{port}", fleet)

        t0 = time.monotonic()
        toapis.polls_open.clear()  # workers will sit mid-poll, holding their leases
        for i in range(JOBS):  # spread over the two web processes
            emulator.request_url = f"http://127.0.0.1:{ports[i % 2]}/slack/events"
            answer = await emulator.send_slash_command(ALICE, CHANNEL, f"lighthouse number {i}")
            assert answer.status == 200, answer.body
        assert await count() == JOBS
        sent = time.monotonic()

        async def all_submitted_and_doomed_holds_some() -> bool:
            held = await count(GenerationRow.lease_owner.like(f"%:{doomed.pid}:%"))
            return await count(GenerationRow.state == S.SUBMITTED) == JOBS and held > 0

        await _until(all_submitted_and_doomed_holds_some, 150, "every task submitted", fleet, sm)
        print(
            f"sent {JOBS} in {sent - t0:.1f}s; all submitted after {time.monotonic() - sent:.1f}s"
        )
        toapis.polls_open.set()

        async def posting_and_doomed_holds_some() -> bool:
            held = await count(
                GenerationRow.lease_owner.like(f"%:{doomed.pid}:%"), GenerationRow.state != S.POSTED
            )
            return await count(GenerationRow.state == S.POSTED) >= JOBS // 4 and held > 0

        await _until(posting_and_doomed_holds_some, 120, "a quarter posted", fleet, sm)
        posted_at_kill = await count(GenerationRow.state == S.POSTED)
        doomed.send_signal(signal.SIGKILL)  # mid-run, with its leases in the database
        await doomed.wait()
        print(f"worker killed with {posted_at_kill} of {JOBS} posted")
        assert posted_at_kill < JOBS

        async def all_posted() -> bool:
            return await count(GenerationRow.state == S.POSTED) == JOBS

        await _until(all_posted, 180, "every job posted", fleet, sm)
        print(f"all posted {time.monotonic() - sent:.1f}s after the last was sent")

        # Each task submitted once: one submit per prompt, and the stored task ids are those.
        prompts = collections.Counter(r.json["prompt"] for r in toapis.calls("submit"))
        assert len(prompts) == JOBS and set(prompts.values()) == {1}, prompts.most_common(3)
        async with sm() as s:
            rows = (await s.scalars(select(GenerationRow))).all()
            threads = (await s.scalars(select(SessionRow.thread_ts))).all()
        assert sorted(r.provider_task_id for r in rows) == sorted(toapis.tasks)
        # Posted once: one thread per /imagine, one result with buttons and files in each.
        assert len(set(threads)) == JOBS and None not in threads
        roots = [m for m in emulator.messages(CHANNEL) if not m.thread_ts or m.thread_ts == m.ts]
        assert len(roots) == JOBS
        for thread_ts in threads:
            replies = emulator.replies(CHANNEL, thread_ts)
            results = [m for m in replies if "approve" in [a for a, _ in buttons(m)]]
            assert len(results) == 1, emulator.transcript(CHANNEL, thread_ts)
            assert len([m for m in replies if m.files]) == 1
        assert len(emulator.calls_to("files.completeUploadExternal")) == JOBS
        # The killed worker's jobs were finished by the other one.
        assert all(r.lease_owner is None for r in rows)
    finally:
        await fleet.close()
        await engine.dispose()
        await toapis.stop()
        await emulator.stop()
