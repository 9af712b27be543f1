"""Acks first under load (issue 13): the job engine starts no step while Slack requests are
being answered (core.jobs.gate, fed by the bot's HTTP middleware), for at most the gate's
cap; Bolt's answer leaves as soon as the listener acks (bot.ack_runner)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest

from bot import ack_runner
from core.jobs.gate import IdleGate
from core.models import GenerationState
from tests.harness import Harness


async def test_wait_returns_at_once_when_no_request_is_in_flight() -> None:
    gate = IdleGate(cap_seconds=5, quiet_seconds=0.0)
    assert await gate.wait() == 0.0


async def test_wait_holds_until_the_requests_end_and_a_quiet_spell_passes() -> None:
    gate = IdleGate(cap_seconds=30, quiet_seconds=0.05)
    with gate.busy():
        with gate.busy():
            waiting = asyncio.create_task(gate.wait())
            await asyncio.sleep(0)
        assert gate.in_flight == 1
        for _ in range(20):  # many turns of the loop: still held
            await asyncio.sleep(0)
        assert not waiting.done()
    waited = await waiting
    assert gate.in_flight == 0
    assert 0.05 <= waited < 30


async def test_a_steady_stream_of_requests_holds_background_work_for_the_cap_only() -> None:
    gate = IdleGate(cap_seconds=0.2, quiet_seconds=0.05)
    with gate.busy():
        waited = await gate.wait()
        assert gate.in_flight == 1
    assert 0.2 <= waited < 5
    assert gate.deferred_seconds >= 0.2


async def test_the_engine_waits_for_the_requests_in_flight(tmp_path: Path) -> None:
    """A command acked while another request is still being answered: its job starts (no
    thread posted, still queued) only once that request ends (the gate's cap set long
    here), then runs to the post."""
    h = await Harness(tmp_path, local_render_seconds=0.05).start()
    try:
        assert h.runtime is not None
        jobs = h.runtime.jobs
        jobs.gate.cap_seconds = 60.0
        posts = len(h.emulator.calls_to("chat.postMessage"))
        with jobs.gate.busy():  # as a slow request of the same burst would
            answer = await h.imagine("a lighthouse at dusk")
            assert answer.status == 200
            [row] = await h.wait_generations(1)
            for _ in range(50):  # the engine's wake-up and several turns of the loop
                await asyncio.sleep(0.01)
            assert (await h.generation(row.id)).state == GenerationState.QUEUED
            assert len(h.emulator.calls_to("chat.postMessage")) == posts
            assert jobs.gate.deferred_seconds == 0.0  # still holding, not yet released
        await h.wait_state(row.id, GenerationState.POSTED)
        assert jobs.gate.deferred_seconds > 0.0
    finally:
        await h.close()


def _bolt(listener: Any) -> AsyncApp:
    async def authorize(**_: Any) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=None, team_id="T1", bot_token="xoxb-1")

    app = AsyncApp(signing_secret="unused", request_verification_enabled=False, authorize=authorize)
    app.command("/imagine")(listener)
    ack_runner.install(app)
    return app


def _command() -> AsyncBoltRequest:
    body = "command=%2Fimagine&text=x&team_id=T1&user_id=U1&channel_id=C1"
    return AsyncBoltRequest(body=body, headers={})


async def test_the_answer_leaves_at_the_ack_while_the_listener_goes_on() -> None:
    release, finished = asyncio.Event(), asyncio.Event()

    async def listener(ack: AsyncAck) -> None:
        await ack(text="queued", response_type="ephemeral")
        await release.wait()  # work after the ack
        finished.set()

    answer = await asyncio.wait_for(_bolt(listener).async_dispatch(_command()), 5)
    assert answer.status == 200
    assert answer.body == '{"text": "queued", "response_type": "ephemeral"}'
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), 5)


async def test_a_listener_failing_before_its_ack_still_gets_bolts_500() -> None:
    async def listener(ack: AsyncAck) -> None:
        raise RuntimeError("broken before the ack")

    answer = await asyncio.wait_for(_bolt(listener).async_dispatch(_command()), 5)
    assert answer.status == 500


async def test_requests_waiting_for_their_ack_do_not_wake_the_loop(monkeypatch: Any) -> None:
    """Bolt's own runner looks at `ack.response` every 10 ms (`asyncio.sleep(0.01)`) for
    each request until its listener acks: a burst whose acks wait for their group commit
    would wake the loop (waiting requests) x (looks) times. The AckRunner waits on the ack."""
    looks = 0
    sleep = asyncio.sleep

    async def counting_sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        nonlocal looks
        looks += delay == 0.01
        return await sleep(delay, *args, **kwargs)

    release = asyncio.Event()

    async def listener(ack: AsyncAck) -> None:
        await release.wait()  # as a command waiting for its group commit
        await ack()

    app = _bolt(listener)
    monkeypatch.setattr(asyncio, "sleep", counting_sleep)
    answers = asyncio.gather(*(app.async_dispatch(_command()) for _ in range(50)))
    await sleep(0.2)  # 20 of Bolt's looks for each of the 50
    release.set()
    assert [a.status for a in await asyncio.wait_for(answers, 5)] == [200] * 50
    assert looks == 0


async def test_a_listener_that_ends_without_acking_gets_no_answer_at_once() -> None:
    async def listener(ack: AsyncAck) -> None:
        return None  # never acks: Bolt logs its warning and answers 404

    started = asyncio.get_running_loop().time()
    answer = await asyncio.wait_for(_bolt(listener).async_dispatch(_command()), 5)
    assert answer.status == 404
    assert asyncio.get_running_loop().time() - started < 2.0  # not Bolt's 3 s of looks


async def test_a_listener_that_never_acks_is_answered_when_slacks_3_seconds_are_up(
    caplog: Any,
) -> None:
    """The wait for the ack ends at the listener's `ack_timeout` (3 s for commands), with
    Bolt's warning and no answer (Bolt's 404), while the listener itself goes on."""
    release = asyncio.Event()

    async def listener(ack: AsyncAck) -> None:
        await release.wait()  # far longer than Slack waits

    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await asyncio.wait_for(_bolt(listener).async_dispatch(_command()), 10)
    waited = loop.time() - started
    assert answer.status == 404
    assert 2.9 <= waited < 6.0
    assert "ack()" in caplog.text  # Bolt's "did not call ack()" warning
    assert ack_runner._running  # still running
    release.set()
    await asyncio.wait_for(asyncio.gather(*ack_runner._running), 5)


async def test_the_bots_bolt_app_checks_no_signature_twice_and_builds_no_middleware_kwargs(
    tmp_path: Path,
) -> None:
    """Per request, the bot's Bolt app does only what the guard in front has not done:
    no second signature check (bot/http_guard.py verified it) and no function middleware
    (Bolt builds every function middleware's keyword arguments for each request)."""
    h = await Harness(tmp_path).start()
    try:
        assert h.runtime is not None
        chain = h.runtime.bolt._async_middleware_list
        names = {type(m).__name__ for m in chain}
        assert "AsyncRequestVerification" not in names
        assert "AsyncCustomMiddleware" not in names
        assert {"DropRetriedDeliveries", "ProvideRuntime"} <= names
    finally:
        await h.close()
