"""What a person sees when the input is wrong, and proof that nothing was stored."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bot.emulator.delivery import Delivery
from core.models import DeliveryRow, GenerationRow, GenerationState, SessionRow
from tests.harness import ALICE, CHANNEL, Harness

S = GenerationState


async def _nothing_stored(harness: Harness) -> None:
    assert await harness.count(SessionRow) == 0
    assert await harness.count(GenerationRow) == 0


@pytest.mark.parametrize("text", ["", "help", "  HELP "])
async def test_empty_or_help_answers_usage_privately(harness: Harness, text: str) -> None:
    answer = await harness.imagine(text)
    assert answer.status == 200
    body = answer.json()
    assert "Usage" in body["text"] and "--ar W:H" in body["text"]
    assert body.get("response_type", "ephemeral") == "ephemeral"
    await _nothing_stored(harness)
    assert harness.emulator.calls_to("chat.postMessage") == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a cat --n 9", "Use `--n` with 1, 2, 3 or 4"),
        ("a cat --ar 0:3", "from 1:4 to 4:1"),
        ("a cat --ar 9:1", "too wide"),
        ("a cat --ar 1:9", "too tall"),
        ("a cat --stylize 50", "`--stylize` is not a flag I know"),
        ("a cat --seed lots", "from 0 to 4294967295"),
        ("a cat --quality ultra", "low, medium or high"),
        ("--ar 3:2", "Tell me what to draw"),
    ],
)
async def test_bad_flags_say_what_is_allowed_and_queue_nothing(
    harness: Harness, text: str, says: str
) -> None:
    answer = await harness.imagine(text)
    assert answer.status == 200
    reply = answer.json()["text"]
    assert says in reply and "Nothing was queued" in reply
    await _nothing_stored(harness)


async def test_channel_without_the_bot_explains_how_to_invite_and_leaves_nothing(
    harness: Harness,
) -> None:
    answer = await harness.imagine("a lighthouse", channel="C0PRIVATE")
    assert answer.status == 200
    emu = harness.emulator
    notice = await emu.wait_for(lambda: emu.ephemerals_for(ALICE))
    assert "/invite @imagine" in notice[0].text
    assert notice[0].channel == "C0PRIVATE"
    await harness.until_nothing_stored()
    assert emu.messages("C0PRIVATE") == []


async def test_channel_not_found_is_explained_and_leaves_nothing(harness: Harness) -> None:
    harness.emulator.fail_next("chat.postMessage", "channel_not_found")
    await harness.imagine("a lighthouse")
    emu = harness.emulator
    notice = await emu.wait_for(lambda: emu.ephemerals_for(ALICE))
    assert "can't see this channel" in notice[0].text
    await harness.until_nothing_stored()


def _command_body() -> bytes:
    return urlencode(
        {
            "command": "/imagine",
            "text": "a lighthouse",
            "team_id": "T0TEAM",
            "channel_id": CHANNEL,
            "user_id": ALICE,
            "response_url": "http://127.0.0.1:9/response/x",
            "trigger_id": "1.2.3",
        }
    ).encode()


async def test_bad_signature_is_rejected_with_401(harness: Harness) -> None:
    answer = await harness.emulator.send_raw(
        _command_body(), "application/x-www-form-urlencoded", signature="v0=" + "0" * 64
    )
    assert answer.status == 401
    await _nothing_stored(harness)


async def test_stale_timestamp_is_rejected_with_401(harness: Harness) -> None:
    answer = await harness.emulator.send_raw(
        _command_body(), "application/x-www-form-urlencoded", timestamp=int(time.time()) - 301
    )
    assert answer.status == 401
    await _nothing_stored(harness)


async def test_correctly_signed_raw_command_is_accepted(harness: Harness) -> None:
    # The same body, signed now, is taken: the 401s above are about the signature alone.
    answer = await harness.emulator.send_raw(_command_body(), "application/x-www-form-urlencoded")
    assert answer.status == 200
    await harness.listeners_done()  # the session starts right after the ack (core.intake)
    assert await harness.count(GenerationRow) == 1


async def test_own_messages_and_edits_are_acknowledged_and_ignored(tmp_path: Path) -> None:
    harness = await Harness(tmp_path).start()
    harness.emulator.echo_bot_messages = True
    try:
        await harness.imagine("a lighthouse")
        [generation] = await harness.generations()
        await harness.wait_state(generation.id, S.POSTED)
        emu = harness.emulator

        def echoes() -> list[Delivery]:
            return [d for d in emu.deliveries if d.kind == "event"]

        def subtypes() -> set[str | None]:
            return {json.loads(d.body)["event"].get("subtype") for d in echoes()}

        # The status edits may still be on their way after the state is stored: wait for an
        # echoed edit (delivered and answered), not for a moment of quiet.
        await emu.wait_for(lambda: "message_changed" in subtypes(), within=20)
        await emu.wait_idle()
        assert None in subtypes(), "the stand-in should have echoed the bot's posts"
        assert all(d.status == 200 for d in echoes())
        assert await harness.count(GenerationRow) == 1
        assert await harness.count(SessionRow) == 1
    finally:
        await harness.close()


async def test_retried_event_delivery_is_recognised(harness: Harness) -> None:
    emu = harness.emulator
    await harness.imagine("a lighthouse")
    [generation] = await harness.generations()
    await harness.wait_state(generation.id, S.POSTED)
    thread_ts = await harness.thread_of(generation.id)
    _ts, first = await emu.post_user_message(ALICE, CHANNEL, "nice", thread_ts=thread_ts)
    assert first is not None and first.status == 200
    event_id = emu.last_event_id()
    retry = await emu.redeliver(event_id, retry_num=1)
    assert retry.status == 200
    assert await harness.count(DeliveryRow) == 1


async def test_failure_before_the_thread_exists_is_told_privately(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, job_max_attempts=2).start()
    try:
        harness.emulator.fail_next("chat.postMessage", "invalid_blocks", times=2)
        await harness.imagine("a lighthouse")
        notice = await harness.emulator.wait_for(
            lambda: harness.emulator.ephemerals_for(ALICE), within=15
        )
        assert "couldn't start your image" in notice[0].text
        assert "gave up after 2 tries" in notice[0].text
        await harness.until_nothing_stored()
    finally:
        await harness.close()
