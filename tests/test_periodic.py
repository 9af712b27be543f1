"""`core.periodic.Periodic`: a round in progress finishes before the loop stops (a round
cut in the middle of a transaction could leave SQLite's write lock held); a loop waiting
for its next round stops at once."""

from __future__ import annotations

import asyncio

from core.periodic import Periodic


class Blocking(Periodic):
    """A round that waits for `go`, then records that it finished."""

    def __init__(self) -> None:
        super().__init__(interval=3600)
        self.entered, self.go, self.done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self.finished = 0

    async def run_once(self) -> None:
        self.entered.set()
        await self.go.wait()
        self.finished += 1
        self.done.set()


async def test_a_round_in_progress_finishes_before_the_stop_returns() -> None:
    loop = Blocking()
    loop.start()
    await asyncio.wait_for(loop.entered.wait(), 10)
    stopping = asyncio.create_task(loop.stop(grace=60))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()
    loop.go.set()
    await asyncio.wait_for(stopping, 10)
    assert loop.finished == 1


async def test_past_the_grace_the_round_is_cancelled() -> None:
    loop = Blocking()
    loop.start()
    await asyncio.wait_for(loop.entered.wait(), 10)
    await asyncio.wait_for(loop.stop(grace=0.05), 10)
    assert loop.finished == 0


async def test_between_rounds_the_stop_is_immediate() -> None:
    loop = Blocking()
    loop.go.set()
    loop.start()
    await asyncio.wait_for(loop.done.wait(), 10)
    for _ in range(5):  # let the loop reach its wait for the next round
        await asyncio.sleep(0)
    await asyncio.wait_for(loop.stop(grace=3600), 10)  # the hour-long wait is cut short
    assert loop.finished == 1
