"""Throughput of 2 `imagine-bot worker` processes against 1, on PostgreSQL (issue 14).

    python benchmarks/workers_ratio.py [--jobs 60] [--latency 5] [--concurrency 4]

For each worker count (1, then 2) it makes a fresh PostgreSQL database (migrated to head),
starts the Slack stand-in and the OpenAI Images fake (tests/fakes) in this process on
loopback, queues `--jobs` /imagine through one `serve --no-worker` process, then starts the
workers and times them from their first claim until every job is posted (root message,
status, provider call, image stored, upload shared, result posted). It prints jobs per
minute for each and the ratio (the target is at least 1.7x).

What it measures: every generation call takes a fixed `--latency` seconds at the fake (as
OpenAI's synchronous Images API holds the request until the image is made), and a worker
runs at most PROVIDER_CONCURRENCY (`--concurrency`) provider calls at once, so one
worker's ceiling is concurrency / latency jobs per second and a second worker doubles it.
The run shows whether the queue (SKIP LOCKED claims, LISTEN/NOTIFY, admission, leases)
lets two processes reach that, not how fast the CPU is: the Slack stand-in, the fake and
the database share the machine, and on a loaded machine they pull the ratio down (the
5 s default latency keeps that share small; with 2 s on a loaded 2-CPU machine the ratio
fell to about 1.45x). A worker stays below its ceiling because a job held for a provider
slot looks again after 1 s (core.jobs.admission), and because of the Slack calls of
each job. About 3 minutes with the defaults.

The PostgreSQL server comes from --database-url, else TEST_DATABASE_URL (a database to
administer from, e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/postgres); the
benchmark databases are dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.emulator import SlackEmulator
from core import db
from core.models import GenerationRow, GenerationState
from tests import pg
from tests.fakes import FakeResponse
from tests.fakes.openai_server import FakeOpenAI
from tests.fleet import Fleet, free_port, healthy
from tests.harness import ALICE, CHANNEL

SECRET, TOKEN, KEY = "bench-secret", "xoxb-bench", "sk-bench"


async def _wait(condition, within: float, what: str, fleet: Fleet) -> float:  # type: ignore[no-untyped-def]
    """Poll `condition` every 0.1 s; the monotonic time it held. Raises TimeoutError."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}\n{fleet.logs()}")
        await asyncio.sleep(0.1)
    return time.monotonic()


async def run(workers: int, args: argparse.Namespace) -> float:
    """Queue `args.jobs` jobs, run them on `workers` worker processes; seconds from the first
    claim until all are posted."""
    admin = make_url(args.database_url)
    name = pg.unique_name("imagine_bench")
    url = await pg.create_database(admin, name)
    engine = db.create_engine(url)
    sm = db.sessionmaker(engine)
    emulator = SlackEmulator(SECRET, TOKEN)
    openai = FakeOpenAI(api_key=KEY)
    fleet: Fleet | None = None
    try:
        await db.upgrade_to_head(url)
        await emulator.start()
        base = await openai.start()
        openai.enqueue("generations", *[FakeResponse.slow(args.latency)] * (args.jobs * 2))
        tmp = Path(tempfile.mkdtemp(prefix="imagine-bench-"))
        env = {
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": emulator.api_url,
            "DATABASE_URL": url,
            "IMAGE_STORE_DIR": str(tmp / "images"),
            "IMAGE_PROVIDER": "openai",
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": base,
            "PROVIDER_CONCURRENCY": str(args.concurrency),
            "LOG_LEVEL": "WARNING",
        }
        fleet = Fleet(tmp, env)

        async def count(*where) -> int:  # type: ignore[no-untyped-def]
            async with sm() as s:
                query = select(func.count()).select_from(GenerationRow).where(*where)
                return int(await s.scalar(query) or 0)

        port = free_port()
        await fleet.spawn("web", "serve", "--no-worker", PORT=str(port))
        await _wait(lambda: healthy(port), 60, "the web process", fleet)
        emulator.request_url = f"http://127.0.0.1:{port}/slack/events"
        for i in range(args.jobs):
            answer = await emulator.send_slash_command(ALICE, CHANNEL, f"benchmark image {i}")
            assert answer.status == 200, answer.body
        for i in range(workers):
            await fleet.spawn(f"worker{i}", "worker")
        started = await _wait(
            lambda: count(GenerationRow.state != GenerationState.QUEUED), 60, "a claim", fleet
        )

        async def all_posted() -> bool:
            return await count(GenerationRow.state == GenerationState.POSTED) == args.jobs

        done = await _wait(
            all_posted,
            600,
            "every job posted",
            fleet,
        )
        return done - started
    finally:
        if fleet is not None:
            await fleet.close()
        await engine.dispose()
        await openai.stop()
        await emulator.stop()
        await pg.drop_database(admin, name)


async def main(args: argparse.Namespace) -> None:
    ceiling = args.concurrency / args.latency * 60
    print(
        f"{args.jobs} jobs, provider latency {args.latency:g} s, PROVIDER_CONCURRENCY "
        f"{args.concurrency} per worker (ceiling {ceiling:.0f} jobs/min per worker); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    rates = {}
    for workers in (1, 2):
        seconds = await run(workers, args)
        rates[workers] = args.jobs / seconds * 60
        print(f"{workers} worker(s): {seconds:6.1f} s  {rates[workers]:6.1f} jobs/min")
    ratio = rates[2] / rates[1]
    verdict = "meets" if ratio >= 1.7 else "below"
    print(f"ratio 2/1: {ratio:.2f}x ({verdict} the 1.7x target)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module doc)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=60, help="jobs per run (default 60)")
    parser.add_argument("--latency", type=float, default=5.0, help="seconds per provider call")
    parser.add_argument("--concurrency", type=int, default=4, help="PROVIDER_CONCURRENCY")
    parser.add_argument("--database-url", default=os.environ.get(pg.ENV, ""))
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error(f"name a PostgreSQL server with --database-url or {pg.ENV}")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
