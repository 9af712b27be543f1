"""Buttons over real HTTP: a click acts only in the conversation it came from, a tampered
or stale payload gets a private "out of date" (acknowledged, no traceback), and a
double-click on Regenerate makes one version (issue 8, items 5, 6 and 10)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from bot import messages
from bot.emulator import delivery as dl
from bot.listeners.actions import button
from core.models import ApprovalRow, GenerationRow, GenerationState, SessionRow
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text, buttons

S = GenerationState
SECRET = "C0SECRET"
PRIVATE_PROMPT = "the confidential launch poster"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, local_render_seconds=0.1)
    harness.emulator.add_channel(SECRET, "secret", members=[ALICE], is_private=True)
    await harness.start()
    yield harness
    await harness.close()


async def _posted(bot: Harness, channel: str, prompt: str, user: str) -> GenerationRow:
    before = len(await bot.generations())
    reply = await bot.emulator.send_slash_command(user, channel, prompt)
    assert reply.status == 200
    rows = await bot.wait_generations(before + 1)
    return await bot.wait_state(rows[before].id, S.POSTED)


def _result(bot: Harness, channel: str, thread_ts: str) -> Any:
    return next(m for m in bot.emulator.replies(channel, thread_ts) if buttons(m))


async def _forged_click(
    bot: Harness,
    user: str,
    channel: str,
    message_ts: str,
    action_id: str,
    value: str | None,
    *,
    drop_user: bool = False,
) -> dl.Delivery:
    """A block_actions payload as Slack would sign it, for a button the message does not
    have (a tampered value), sent from `channel`."""
    emu = bot.emulator
    ws = emu.ws
    msg = ws.message(channel, message_ts)
    assert msg is not None
    button: dict[str, Any] = {"type": "button", "action_id": action_id, "text": "x"}
    if value is not None:
        button["value"] = value
    ctx = dl.ResponseUrl(channel, user, msg.ts, msg.thread_ts)
    payload = dl.block_actions_payload(
        ws,
        ws.users[user],
        ws.channels[channel],
        msg,
        {"block_id": "forged"},
        button,
        emu._new_response_url(ctx),
        emu._trigger_id(),
    )
    if drop_user:
        del payload["user"]
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return await emu.send_raw(body, "application/x-www-form-urlencoded", kind="block_actions")


async def test_clicks_naming_another_channels_generation_change_nothing(bot: Harness) -> None:
    secret = await _posted(bot, SECRET, PRIVATE_PROMPT, ALICE)
    mine = await _posted(bot, CHANNEL, "a public sketch", BOB)
    secret_thread = await bot.thread_of(secret.id)
    secret_before = [block_text(m) for m in bot.emulator.replies(SECRET, secret_thread)]
    public = _result(bot, CHANNEL, await bot.thread_of(mine.id))
    clicks = [
        ("approve", f"{secret.id}:0"),
        ("regenerate", str(secret.id)),
        ("refine_this", f"{secret.id}:0"),
        ("history", str(secret.id)),
        ("cancel", str(secret.id)),
    ]
    for action_id, value in clicks:
        delivery = await _forged_click(bot, BOB, CHANNEL, public.ts, action_id, value)
        assert delivery.status == 200
    notices = await bot.emulator.wait_for(
        lambda: (
            len(bot.emulator.ephemerals_for(BOB)) == len(clicks)
            and bot.emulator.ephemerals_for(BOB)
        )
    )
    assert all(n.text == messages.WRONG_CONVERSATION for n in notices)
    assert all(PRIVATE_PROMPT not in n.text for n in notices)
    await bot.emulator.wait_idle()
    # Nothing changed in the private channel: no version, approval, base or message.
    assert [g.id for g in await bot.generations()] == [secret.id, mine.id]
    assert await bot.count(ApprovalRow) == 0
    async with bot.sm() as s:
        session = await s.scalar(select(SessionRow).where(SessionRow.channel_id == SECRET))
        assert session is not None and session.base_image_id is None
    assert [block_text(m) for m in bot.emulator.replies(SECRET, secret_thread)] == secret_before
    assert not (await bot.generation(secret.id)).cancel_requested


async def test_a_click_in_the_right_channel_still_works(bot: Harness) -> None:
    v1 = await _posted(bot, CHANNEL, "a lighthouse", ALICE)
    result = _result(bot, CHANNEL, await bot.thread_of(v1.id))
    await bot.emulator.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    # The result message is edited to show the approval (the status message has its own
    # edits, so wait for one of the result message).
    await bot.emulator.wait_for(
        lambda: [c for c in bot.emulator.calls_to("chat.update") if c.params.get("ts") == result.ts]
    )
    async with bot.sm() as s:
        assert (await s.scalar(select(ApprovalRow.user_id))) == BOB


GARBAGE = ["abc", "", "1:x", "99999999999999999999999", "-1", "1:2:3", ":0", "1 ", "１"]


async def test_garbage_values_are_acked_and_answered_privately(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    v1 = await _posted(bot, CHANNEL, "a lighthouse", ALICE)
    result = _result(bot, CHANNEL, await bot.thread_of(v1.id))
    caplog.set_level(logging.INFO)
    sent = 0
    for action_id in ("approve", "regenerate", "refine_this", "cancel", "history"):
        for value in [*GARBAGE, None]:
            delivery = await _forged_click(bot, BOB, CHANNEL, result.ts, action_id, value)
            assert delivery.status == 200, (action_id, value, delivery.body)
            sent += 1
    # Missing user, and a value without the image index a per-image button needs.
    for action_id, value, drop in (("history", str(v1.id), True), ("approve", str(v1.id), False)):
        delivery = await _forged_click(
            bot, BOB, CHANNEL, result.ts, action_id, value, drop_user=drop
        )
        assert delivery.status == 200
        sent += 1
    notices = await bot.emulator.wait_for(
        lambda: len(bot.emulator.ephemerals_for(BOB)) == sent and bot.emulator.ephemerals_for(BOB),
        within=20,
    )
    assert all(n.text == messages.STALE_BUTTON for n in notices)
    await bot.emulator.wait_idle()
    assert [g.id for g in await bot.generations()] == [v1.id]
    assert await bot.count(ApprovalRow) == 0
    assert not [r for r in caplog.records if r.exc_info]
    assert "Traceback" not in caplog.text


async def test_a_value_naming_no_generation_says_it_is_gone(bot: Harness) -> None:
    v1 = await _posted(bot, CHANNEL, "a lighthouse", ALICE)
    result = _result(bot, CHANNEL, await bot.thread_of(v1.id))
    await _forged_click(bot, BOB, CHANNEL, result.ts, "regenerate", "999999999999999999")
    [notice] = await bot.emulator.wait_for(lambda: bot.emulator.ephemerals_for(BOB))
    assert notice.text == messages.GONE


async def test_a_double_click_on_regenerate_makes_one_version(
    bot: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.listeners.actions")
    v1 = await _posted(bot, CHANNEL, "a lighthouse", ALICE)
    result = _result(bot, CHANNEL, await bot.thread_of(v1.id))
    for _ in range(2):
        assert (await bot.emulator.click_button(ALICE, CHANNEL, result.ts, "regenerate")).status
    # The second click does nothing visible; its handler logs the refusal when it is done.
    deadline = time.monotonic() + 30
    while "refused: double_click" not in caplog.text:
        rows = await bot.generations()
        assert len(rows) <= 2 and time.monotonic() < deadline, [(r.version, r.kind) for r in rows]
        await asyncio.sleep(0.05)
    rows = await bot.generations()
    assert [(r.version, r.kind) for r in rows] == [(1, "imagine"), (2, "regenerate")]
    await bot.wait_state(rows[1].id, S.POSTED)
    # Someone else's click is not a double-click: it makes its own version.
    await bot.emulator.click_button(BOB, CHANNEL, result.ts, "regenerate")
    rows = await bot.wait_generations(3)
    assert rows[2].requested_by == BOB and bot.emulator.ephemerals_for(ALICE) == []


async def test_a_click_that_opens_a_modal_gets_its_trigger_or_is_out_of_date() -> None:
    """`button(opens_modal=True, menu=True)`: the opener gets the payload's trigger_id and
    the overflow menu's chosen value; no trigger, or no chosen option, is out of date."""
    opened: list[tuple[int, int, str]] = []
    answers: list[str] = []

    async def opener(runtime: Any, click: Any, trigger: str, respond: Any) -> None:
        opened.append((click.generation_id, click.index, trigger))

    async def ack() -> None:
        pass

    async def respond(*, text: str, **_: Any) -> None:
        answers.append(text)

    listener = button(with_index=True, opens_modal=True, menu=True)(opener)
    body = {"user": {"id": BOB}, "team": {"id": "T0TEAM"}, "channel": {"id": CHANNEL}}
    chosen = {"action_id": "overflow", "selected_option": {"value": "7:1"}}
    await listener(ack, {**body, "trigger_id": "1.2.abc"}, chosen, respond, {"runtime": None})
    assert opened == [(7, 1, "1.2.abc")] and answers == []
    await listener(ack, body, chosen, respond, {"runtime": None})
    await listener(ack, {**body, "trigger_id": "1.2.abc"}, {"value": "7:1"}, respond, {})
    assert opened == [(7, 1, "1.2.abc")]
    assert answers == [messages.STALE_BUTTON] * 2
