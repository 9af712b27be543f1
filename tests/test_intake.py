"""The intake (issue 13, core.intake): a new session's request is stored before its ack and
started after it, once no Slack request is in flight; a refusal then reaches the person
through the command's response_url; what a stopped process stored starts with the next."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import messages
from bot.emulator import Ephemeral
from core import db
from core.db.sessions import NewSession
from core.db.writer import CommandWriter, WriterClosed
from core.flags import Params
from core.forget import DeletionCounts, forget, preview
from core.intake import Intake
from core.jobs.gate import IdleGate
from core.models import GenerationState, InboxRow, SessionRow
from core.ports import Ask
from core.quotas import CostPolicy, QuotaExceeded
from core.sessions import StartRequest
from tests.harness import ALICE, CHANNEL, Harness


@pytest.fixture
async def url(tmp_path: Path) -> str:
    address = f"sqlite+aiosqlite:///{tmp_path}/intake.db"
    await db.upgrade_to_head(address)
    return address


def _request(i: int, user: str = "U0ME") -> StartRequest:
    return StartRequest(
        NewSession("T0TEAM", "C0HERE", user),
        Ask(f"a lighthouse, take {i}", Params(aspect_ratio="3:2"), "local", None),
        response_url="https://hooks.slack.com/commands/T0TEAM/1/x",
        resolve_style=True,
    )


async def _counts(url: str) -> tuple[int, int]:
    """(requests in the inbox, sessions)."""
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as s:
            stored = await s.scalar(select(func.count()).select_from(InboxRow))
            started = await s.scalar(select(func.count()).select_from(SessionRow))
    finally:
        await engine.dispose()
    return stored or 0, started or 0


async def test_stored_before_the_ack_started_once_no_request_is_in_flight(url: str) -> None:
    gate = IdleGate(cap_seconds=30.0)
    intake = Intake(url, CostPolicy(), gate)
    try:
        with gate.busy():  # a Slack request of the same burst still being answered
            started = asyncio.ensure_future(await intake.receive(_request(1)))
            assert await _counts(url) == (1, 0)  # durable: the caller may ack now
            await asyncio.sleep(0.2)
            assert not started.done()
        generation_id = await asyncio.wait_for(started, 5)  # the gate's quiet spell after
        assert generation_id > 0
        assert await _counts(url) == (0, 1)
    finally:
        await intake.aclose()


async def test_two_processes_storing_on_one_database_name_their_requests_apart(
    url: str,
) -> None:
    """Inbox tokens are a per-process random prefix and a counter: the first request of
    one process and of another (e.g. a web process and its restart) never collide."""
    gate = IdleGate(cap_seconds=30.0)
    one, other = Intake(url, CostPolicy(), gate), Intake(url, CostPolicy(), gate)
    try:
        with gate.busy():  # both stay in the inbox
            for intake, i in ((one, 1), (other, 2)):
                (await intake.receive(_request(i))).close()  # stored; not started here
            assert await _counts(url) == (2, 0)
    finally:
        await one.writer.kill()
        await other.writer.kill()


async def test_a_refused_request_leaves_nothing_stored(url: str) -> None:
    intake = Intake(url, CostPolicy(user_daily_images=1))
    try:
        first = asyncio.ensure_future(await intake.receive(_request(1)))
        second = asyncio.ensure_future(await intake.receive(_request(2)))
        assert await asyncio.wait_for(first, 5) > 0
        with pytest.raises(QuotaExceeded):
            await asyncio.wait_for(second, 5)
        assert await _counts(url) == (0, 1)
    finally:
        await intake.aclose()


async def test_what_a_stopped_process_stored_starts_with_the_next(url: str) -> None:
    gate = IdleGate(cap_seconds=30.0)
    stopped = Intake(url, CostPolicy(), gate)
    with gate.busy():  # the sessions cannot start before the process dies
        tasks = [asyncio.ensure_future(await stopped.receive(_request(i))) for i in range(3)]
        await asyncio.sleep(0.05)  # each waiting for the gate
        await stopped.writer.kill()
    for task in tasks:
        with pytest.raises(WriterClosed):
            await task
    assert await _counts(url) == (3, 0)
    following = Intake(url, CostPolicy())
    try:
        replayed = await following.replay()
        assert [r.request.ask.prompt for r in replayed] == [
            f"a lighthouse, take {i}" for i in range(3)
        ]
        ids = [await asyncio.wait_for(r.start, 5) for r in replayed]
        assert ids == sorted(ids) and len(set(ids)) == 3  # in arrival order
        assert await _counts(url) == (0, 3)
        assert await following.replay() == []
    finally:
        await following.aclose()


async def test_later_work_waits_for_idle_but_never_holds_up_the_first_queue(url: str) -> None:
    """The writer's second queue: taken only when `ready()` says 0 or after the cap, and a
    request of the first queue that arrives meanwhile is committed at once."""
    idle_in = [float("inf")]

    async def apply(_db: AsyncSession, items: Sequence[str]) -> list[str]:
        return [f"done {item}" for item in items]

    writer: CommandWriter[str, str] = CommandWriter(
        url, apply, ready=lambda: idle_in[0], cap_seconds=30.0
    )
    try:
        later = asyncio.ensure_future(writer.submit("later", later=True))
        assert await asyncio.wait_for(writer.submit("now"), 5) == "done now"
        await asyncio.sleep(0.2)
        assert not later.done()
        idle_in[0] = 0.0
        writer.nudge()  # as the gate does when its last request ends
        assert await asyncio.wait_for(later, 5) == "done later"
    finally:
        await writer.aclose()


async def test_over_http_a_quota_refusal_follows_an_empty_ack(tmp_path: Path) -> None:
    h = Harness(tmp_path, local_render_seconds=0.05, quota_user_daily_images=1)
    await h.start()
    try:
        assert await h.ask("a red fox") == ""
        before = len(h.emulator.ephemerals)
        answer = await h.imagine("a blue fox")
        assert (answer.status, answer.text) == (200, "")  # the ack: stored
        told = [e for e in h.emulator.ephemerals[before:] if e.user == ALICE]
        assert len(told) == 1 and told[0].source == "response_url"
        assert "You've used 1 of 1 images today" in told[0].text
        assert "Nothing was queued" in told[0].text
        [row] = await h.generations()
        await h.wait_state(row.id, GenerationState.POSTED)
    finally:
        await h.close()


async def test_over_http_a_request_stored_before_a_crash_is_posted_after_the_restart(
    tmp_path: Path,
) -> None:
    h = await Harness(tmp_path, local_render_seconds=0.05).start()
    try:
        assert h.settings is not None
        gate = IdleGate(cap_seconds=30.0)
        crashed = Intake(h.settings.database_url, CostPolicy(), gate)
        request = StartRequest(
            NewSession("T0TEAM", CHANNEL, ALICE),
            Ask("a harbour at night", Params(), "local", None),
            resolve_style=True,
        )
        with gate.busy():
            task = asyncio.ensure_future(await crashed.receive(request))
            await asyncio.sleep(0.05)
            await crashed.writer.kill()
        with pytest.raises(WriterClosed):
            await task
        await h.stop()
        await h.start()  # the new process starts what the inbox holds
        [row] = await h.wait_generations(1)
        posted = await h.wait_state(row.id, GenerationState.POSTED)
        assert posted.prompt == "a harbour at night"
        assert (await _counts(h.settings.database_url))[0] == 0
    finally:
        await h.close()


async def test_a_request_two_starts_race_for_is_started_once(url: str) -> None:
    """Two processes starting what a stopped one left (or a replay racing the live start):
    the first to take the row starts it, the other hears StartedElsewhere."""
    gate = IdleGate(cap_seconds=30.0)
    stopped = Intake(url, CostPolicy(), gate)
    with gate.busy():
        await stopped.receive(_request(1))
        await stopped.writer.kill()
    first, second = Intake(url, CostPolicy()), Intake(url, CostPolicy())
    try:
        [(_, a, _)] = await first.replay()
        [(_, b, _)] = await second.replay()
        outcomes = await asyncio.gather(a, b, return_exceptions=True)
        assert sorted(type(o).__name__ for o in outcomes) == ["StartedElsewhere", "int"]
        assert await _counts(url) == (0, 1)
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_failed_group_is_tried_one_by_one(url: str) -> None:
    """One bad item fails only its own caller; the others of its group are committed."""

    async def apply(_db: AsyncSession, items: Sequence[str]) -> list[str]:
        if "bad" in items:
            raise RuntimeError("a broken item")
        return [f"done {item}" for item in items]

    idle_in = [float("inf")]
    writer: CommandWriter[str, str] = CommandWriter(
        url, apply, ready=lambda: idle_in[0], cap_seconds=30.0
    )
    try:
        pending = [asyncio.ensure_future(writer.submit(i, later=True)) for i in ("a", "bad", "b")]
        deadline = asyncio.get_running_loop().time() + 5
        while len(writer._later) < 3:  # all three queued: they go as one group
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        idle_in[0] = 0.0
        writer.nudge()
        outcomes = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 5)
        assert outcomes[0] == "done a" and outcomes[2] == "done b"
        assert isinstance(outcomes[1], RuntimeError)
        assert writer.groups == 2  # the group failed; then "a" and "b" alone ("bad" failed)
    finally:
        await writer.aclose()


async def test_later_work_starts_after_the_cap_even_if_never_idle(url: str) -> None:
    async def apply(_db: AsyncSession, items: Sequence[str]) -> list[str]:
        return [f"done {item}" for item in items]

    writer: CommandWriter[str, str] = CommandWriter(
        url, apply, ready=lambda: float("inf"), cap_seconds=0.3
    )
    try:
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(writer.submit("later", later=True), 5) == "done later"
        assert asyncio.get_running_loop().time() - started >= 0.25
    finally:
        await writer.aclose()


async def _told_after_a_late_restart(h: Harness, cost: CostPolicy, ask: Ask) -> Ephemeral:
    """ALICE's `/imagine <ask>` in CHANNEL stored by a process that then dies, its inbox row
    made 40 minutes old (past Slack's 30 for its response_url), the bot restarted: the one
    private message ALICE then gets."""
    assert h.settings is not None
    gate = IdleGate(cap_seconds=30.0)
    crashed = Intake(h.settings.database_url, cost, gate)
    request = StartRequest(
        NewSession("T0TEAM", CHANNEL, ALICE),
        ask,
        response_url=f"{h.emulator.base_url}response/gone",
    )
    with gate.busy():
        (await crashed.receive(request)).close()  # stored, then the process dies
        await crashed.writer.kill()
    await h.stop()
    engine = db.create_engine(h.settings.database_url)
    try:
        async with engine.begin() as conn:  # the restart comes 40 minutes later
            await conn.execute(InboxRow.__table__.update().values(received_at=0.0))
    finally:
        await engine.dispose()
    before = len(h.emulator.ephemerals)
    await h.start()
    deadline = asyncio.get_running_loop().time() + 10
    while not [e for e in h.emulator.ephemerals[before:] if e.user == ALICE]:
        assert asyncio.get_running_loop().time() < deadline, "nobody told"
        await asyncio.sleep(0.02)
    [told] = [e for e in h.emulator.ephemerals[before:] if e.user == ALICE]
    return told


async def test_a_refusal_replayed_after_slacks_30_minutes_is_told_in_the_channel(
    tmp_path: Path,
) -> None:
    """A response_url takes messages for 30 minutes (the stand-in answers 404
    `expired_url` after): a request replayed later hears its refusal by chat.postEphemeral."""
    h = Harness(tmp_path, local_render_seconds=0.05, quota_user_daily_images=1)
    await h.start()
    try:
        assert h.settings is not None
        assert await h.ask("a red fox") == ""  # the day's one image
        ask = Ask("a harbour at night", Params(), "local", None)
        told = await _told_after_a_late_restart(h, CostPolicy(user_daily_images=1), ask)
        assert told.source == "chat.postEphemeral" and told.channel == CHANNEL
        assert "You've used 1 of 1 images today" in told.text
        assert not h.emulator.calls_to("response_url")
        assert (await _counts(h.settings.database_url))[0] == 0
    finally:
        await h.close()


async def test_forget_me_drops_what_a_stopped_process_left_of_that_person(url: str) -> None:
    """A request acknowledged before a crash and not started is the person's data too: after
    forget-me the next process has nothing of theirs to start."""
    gate = IdleGate(cap_seconds=30.0)
    stopped = Intake(url, CostPolicy(), gate)
    with gate.busy():
        for i, user in enumerate(("U0ME", "U0OTHER")):
            (await stopped.receive(_request(i, user))).close()
        await stopped.writer.kill()
    engine = db.create_engine(url)
    try:
        before = await preview(db.sessionmaker(engine), "T0TEAM", "U0ME")
        report = await forget(db.sessionmaker(engine), "T0TEAM", "U0ME")
    finally:
        await engine.dispose()
    assert before.waiting == 1 and not before.empty  # their only data: still asked to confirm
    assert "1 request of yours not started yet" in messages.forget_preview(before)
    assert report.waiting == 1
    assert "1 request of yours not started yet" in messages.forget_done(report, DeletionCounts())
    following = Intake(url, CostPolicy())
    try:
        [left] = await following.replay()
        assert left.request.session.owner == "U0OTHER"
        left.start.close()
    finally:
        await following.aclose()


async def test_a_duplicate_replayed_after_slacks_30_minutes_keeps_generate_anyway(
    tmp_path: Path,
) -> None:
    h = await Harness(tmp_path, local_render_seconds=0.05).start()
    try:
        assert h.settings is not None
        assert await h.ask("a red fox") == ""
        [first] = await h.wait_generations(1)
        ask = Ask(first.prompt, Params.from_stored(first.params), first.provider, first.model)
        told = await _told_after_a_late_restart(h, CostPolicy(duplicate_window=120), ask)
        assert told.source == "chat.postEphemeral"
        buttons = [el for b in told.blocks if b["type"] == "actions" for el in b["elements"]]
        assert any(el["action_id"] == "generate_anyway" for el in buttons), told.blocks
    finally:
        await h.close()
