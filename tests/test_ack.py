"""Fast acks, durable first (issue 13): concurrent `/imagine` commands are stored in groups
by one writer before they are acknowledged (core.intake) and their sessions started in
groups after; quota, duplicate and style rules hold inside a group as if each request came
alone; a writer killed mid-burst leaves every acknowledged command stored and tells the
others to retry; no `auth.test` per request."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import messages
from core import db, sessions
from core.db.sessions import NewSession
from core.db.writer import CommandWriter, WriterClosed
from core.flags import Params
from core.models import CostRow, GenerationRow, GenerationState, SessionRow
from core.ports import Ask
from core.quotas import CostPolicy, DuplicateRequest, QuotaExceeded
from core.sessions import StartRequest
from core.styles import StyleRefused
from tests.harness import CHANNEL, Harness
from tests.test_oauth import install

TEAM = "T0TEAM"


@pytest.fixture
async def url(tmp_path: Path) -> str:
    address = f"sqlite+aiosqlite:///{tmp_path}/ack.db"
    await db.upgrade_to_head(address)
    return address


def _request(
    i: int, *, user: str | None = None, prompt: str | None = None, **extra
) -> StartRequest:  # type: ignore[no-untyped-def]
    return StartRequest(
        NewSession(TEAM, "C0HERE", user or f"U{i:03d}"),
        ask=Ask(prompt or f"a lighthouse, take {i}", extra.pop("params", Params()), "local", None),
        **extra,
    )


def _start_writer(url: str, cost: CostPolicy) -> CommandWriter[StartRequest, int]:
    """A writer starting sessions in groups, as the intake's second queue does."""

    async def apply(db: AsyncSession, requests: Sequence[StartRequest]) -> list[int | Exception]:
        return await sessions.start_all(db, requests, cost)

    return CommandWriter(url, apply)


async def _answers(writer: CommandWriter, requests: list[StartRequest]) -> list[object]:  # type: ignore[type-arg]
    return list(await asyncio.gather(*(writer.submit(r) for r in requests), return_exceptions=True))


async def _stored(url: str) -> tuple[dict[int, str], int, int]:
    """The stored first generations with their session and cost rows ({id: prompt}), and
    how many sessions and generations there are in all."""
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as s:
            rows = await s.execute(
                select(GenerationRow.id, GenerationRow.prompt)
                .join(SessionRow, SessionRow.id == GenerationRow.session_id)
                .join(CostRow, CostRow.generation_id == GenerationRow.id)
            )
            found = {gid: prompt for gid, prompt in rows}
            sessions_ = await s.scalar(select(func.count()).select_from(SessionRow))
            generations = await s.scalar(select(func.count()).select_from(GenerationRow))
    finally:
        await engine.dispose()
    return found, sessions_ or 0, generations or 0


@contextlib.asynccontextmanager
async def write_lock(url: str) -> AsyncIterator[None]:
    """Hold SQLite's write lock from another connection for the block (taken in a thread:
    the bot on this loop may hold it for a moment)."""
    path = url.split("///", 1)[1]
    conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    try:
        await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def _until(condition, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_burst_is_committed_in_groups_each_caller_getting_its_own_id(url: str) -> None:
    writer = _start_writer(url, CostPolicy(duplicate_window=120))
    requests = [_request(i) for i in range(60)]
    try:
        answers = await _answers(writer, requests)
    finally:
        await writer.aclose()
    assert all(isinstance(a, int) for a in answers), answers
    assert len(set(answers)) == 60
    stored, sessions_, generations = await _stored(url)
    assert [stored[a] for a in answers] == [r.ask.prompt for r in requests]  # type: ignore[index]
    assert sessions_ == generations == 60
    assert writer.groups < 60  # grouped: fewer transactions than commands


async def test_quota_duplicate_and_style_refusals_reach_the_right_caller(url: str) -> None:
    """Judged in order, within and across groups, as if each came alone: of five requests by
    one person with a quota of 3 images a day, the first three pass; the same prompt twice is a
    duplicate of the first (its id); an unknown style refuses only its own request."""
    writer = _start_writer(url, CostPolicy(user_daily_images=3, duplicate_window=120))
    mine = [_request(i, user="U0ME") for i in range(5)]
    twice = [_request(10, prompt="a cat"), _request(10, prompt="a cat")]
    styled = _request(20, params=Params(style="nosuch"), resolve_style=True)
    async with write_lock(url):  # they all queue while the first group waits for the lock
        pending = asyncio.gather(
            *(writer.submit(r) for r in [*mine, *twice, styled, _request(21)]),
            return_exceptions=True,
        )
        await _until(lambda: writer._in_flight)  # the rest queue behind the group in flight
    answers = await pending
    await writer.aclose()
    assert [type(a) for a in answers[:5]] == [int, int, int, QuotaExceeded, QuotaExceeded]
    first_cat, second_cat = answers[5:7]
    assert isinstance(first_cat, int)
    assert isinstance(second_cat, DuplicateRequest) and second_cat.previous_id == first_cat
    assert isinstance(answers[7], StyleRefused)
    assert isinstance(answers[8], int)
    stored, sessions_, generations = await _stored(url)
    assert sorted(stored) == sorted(a for a in answers if isinstance(a, int))
    assert sessions_ == generations == len(stored)  # nothing of a refused request stays


async def test_a_writer_killed_mid_burst_stored_everything_it_answered(url: str) -> None:
    writer = _start_writer(url, CostPolicy())
    done = await _answers(writer, [_request(i) for i in range(10)])
    assert all(isinstance(a, int) for a in done)
    async with write_lock(url):  # the next group cannot commit
        late = asyncio.gather(
            *(writer.submit(_request(100 + i)) for i in range(20)), return_exceptions=True
        )
        await _until(lambda: writer._in_flight)
        killing = asyncio.create_task(writer.kill())
        await _until(late.done)  # answered while the group still waits for the lock
    await killing
    answers = await late
    assert all(isinstance(a, WriterClosed) for a in answers), answers
    stored, sessions_, _ = await _stored(url)
    assert sorted(stored) == sorted(done) and sessions_ == len(done)  # type: ignore[type-var]
    with pytest.raises(WriterClosed):
        await writer.submit(_request(200))


async def test_acked_commands_are_stored_and_the_rest_asked_to_retry(tmp_path: Path) -> None:
    """Over HTTP: commands acknowledged before the writer died are stored; the ones it was
    still holding get a private "send it again" and nothing stored."""
    h = await Harness(tmp_path, local_render_seconds=0.05).start()
    try:
        users = [f"U0P{i:03d}" for i in range(12)]
        for user in users:
            h.emulator.add_user(user, user.lower())
        first = await asyncio.gather(*(h.imagine(f"early {u}", user=u) for u in users[:4]))
        assert [(r.status, r.text) for r in first] == [(200, "")] * 4
        await h.wait_generations(4)  # started after their acks
        assert h.runtime and h.runtime.intake
        writer = h.runtime.intake.writer
        async with write_lock(h.settings.database_url):  # type: ignore[union-attr]
            late = asyncio.gather(*(h.imagine(f"late {u}", user=u) for u in users[4:]))
            await _until(lambda: writer._in_flight)
            killing = asyncio.create_task(writer.kill())
            await _until(late.done)  # answered while the group still waits for the lock
        await killing
        answers = await late
        assert all(r.status == 200 and messages.START_STOPPED in r.text for r in answers)
        async with h.sm() as s:
            prompts = set((await s.scalars(select(GenerationRow.prompt))).all())
        assert prompts == {f"early {u}" for u in users[:4]}
        await _all_posted(h, 4)
    finally:
        await h.close()


async def _all_posted(h: Harness, count: int) -> None:
    """Wait until `count` generations are posted (the engine is idle before the test ends)."""
    for row in await h.wait_generations(count, within=60):
        await h.wait_state(row.id, GenerationState.POSTED)


async def test_one_auth_test_for_a_burst_of_commands(tmp_path: Path) -> None:
    """Single workspace without the start-up answer: ten commands at once share one
    `auth.test` (Bolt alone would call it for each request that arrives before the first
    answer)."""
    # Slack's rates x10 at the stand-in (and the bot told so): 30 posts in one channel.
    h = Harness(tmp_path, local_render_seconds=0.05, slack_rate_scale=10)
    h.emulator.rates.scale = 10
    await h.start()
    try:
        users = [f"U0Q{i:03d}" for i in range(10)]
        for user in users:
            h.emulator.add_user(user, user.lower())
        answers = await asyncio.gather(*(h.imagine(f"a fox {u}", user=u) for u in users))
        assert [r.status for r in answers] == [200] * 10
        await _all_posted(h, 10)
        assert len(h.emulator.calls_to("auth.test")) == 1
    finally:
        await h.close()


async def test_oauth_asks_auth_test_once_per_token(tmp_path: Path) -> None:
    """OAuth: the installation store answers each request; `auth.test` is asked once for
    the workspace's token, not once per command."""
    import secrets

    h = Harness(tmp_path, slack_bot_token=None, local_render_seconds=0.05, slack_rate_scale=10)
    emu = h.emulator
    emu.rates.scale = 10  # Slack's rates x10 (and the bot told so): 30 posts in one channel
    h.overrides.update(
        slack_client_id=emu.installs.client_id,
        slack_client_secret=emu.installs.client_secret,
        slack_state_secret=secrets.token_hex(16),
    )
    emu.installs.place(CHANNEL, TEAM)
    await h.start()
    try:
        await install(h, TEAM)
        before = len(emu.calls_to("auth.test"))
        first = await h.imagine("a heron")
        assert first.status == 200
        users = [f"U0R{i:03d}" for i in range(9)]
        for user in users:
            emu.add_user(user, user.lower())
        rest = await asyncio.gather(*(h.imagine(f"a heron {u}", user=u) for u in users))
        assert [r.status for r in rest] == [200] * 9
        await _all_posted(h, 10)
        assert len(emu.calls_to("auth.test")) - before <= 1
    finally:
        await h.close()


async def test_each_channel_of_a_group_gets_its_own_default_style_and_quota(url: str) -> None:
    """A group from several channels (their defaults and overrides read in one query each):
    the channel with a default style styles its request, the others do not; the channel
    with a one-image-a-day override refuses its second request, the others do not."""
    from core.db import styles as styles_db
    from core.db import usage as usage_db

    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine).begin() as s:
            await styles_db.save(s, TEAM, "noir", "black and white film", "U0ADMIN")
            await styles_db.set_channel_default(s, TEAM, "C0NOIR", "noir", "U0ADMIN")
            await usage_db.set_channel_quota(s, TEAM, "C0TIGHT", 1, None, "U0ADMIN")
    finally:
        await engine.dispose()
    writer = _start_writer(url, CostPolicy(duplicate_window=120))
    where = ["C0NOIR", "C0PLAIN", "C0TIGHT", "C0TIGHT", "C0PLAIN"]
    users = ["U0A", "U0B", "U0C", "U0C", "U0D"]
    requests = [
        replace(
            r := _request(i, user=user, resolve_style=True),
            session=replace(r.session, channel_id=channel),
        )
        for i, (channel, user) in enumerate(zip(where, users, strict=True))
    ]
    async with write_lock(url):  # all five queue while the first group waits for the lock
        pending = asyncio.gather(*(writer.submit(r) for r in requests), return_exceptions=True)
        await _until(lambda: len(writer._queue) + len(writer._in_flight) == 5)
    answers = await pending
    await writer.aclose()
    assert [type(a) for a in answers] == [int, int, int, QuotaExceeded, int]
    engine = db.create_engine(url)
    try:
        async with db.sessionmaker(engine)() as s:
            rows = await s.execute(select(GenerationRow.id, GenerationRow.provider_prompt))
            styled = {gid: prompt for gid, prompt in rows}
    finally:
        await engine.dispose()
    assert "black and white film" in (styled[answers[0]] or "")  # type: ignore[index]
    assert not any("black and white" in (styled[a] or "") for a in (answers[1], answers[2]))  # type: ignore[index]
