"""Real payload shapes over loopback: Slack Connect file references (check_file_info),
deleted files (tombstone), and `@imagine` mentions in a channel and in a session thread."""

from __future__ import annotations

import json

from core.models import GenerationRow, GenerationState
from tests.fakes import png_bytes
from tests.harness import ALICE, BOB, CHANNEL, Harness

S = GenerationState
BOT = "<@U0BOT>"


async def _session(harness: Harness) -> tuple[GenerationRow, str]:
    await harness.imagine("a lighthouse at dusk")
    [v1] = await harness.wait_generations(1)
    v1 = await harness.wait_state(v1.id, S.POSTED)
    return v1, await harness.thread_of(v1.id)


def _bot_replies(harness: Harness, thread_ts: str, words: str) -> list:  # type: ignore[type-arg]
    return [m for m in harness.thread(thread_ts) if m.bot_id and words in m.text]


async def test_a_slack_connect_file_is_looked_up_with_files_info(harness: Harness) -> None:
    _v1, thread_ts = await _session(harness)
    red = png_bytes(8, 8, (255, 0, 0, 255))
    _ts, delivery = await harness.emulator.post_user_message(
        BOB,
        CHANNEL,
        "",
        thread_ts=thread_ts,
        files=[("red.png", red, "image/png")],
        file_shape="check_file_info",
    )
    assert delivery is not None and delivery.status == 200
    event_files = delivery_files(harness)
    assert event_files[0].keys() == {"id", "mode", "file_access"}  # no name, no url_private
    got = await harness.emulator.wait_for(lambda: _bot_replies(harness, thread_ts, "Got"))
    assert "red.png" in got[0].text  # the name came from files.info
    # (files.info is also how the bot sees its own uploads shared: look at this file's.)
    file_id = event_files[0]["id"]
    [info] = [c for c in harness.emulator.calls_to("files.info") if c.params["file"] == file_id]
    assert info.params == {"file": file_id} and info.ok


async def test_a_deleted_file_is_reported_as_deleted(harness: Harness) -> None:
    _v1, thread_ts = await _session(harness)
    looked_up = len(harness.emulator.calls_to("files.info"))  # the bot's own uploads so far
    await harness.emulator.post_user_message(
        BOB,
        CHANNEL,
        "",
        thread_ts=thread_ts,
        files=[("gone.png", png_bytes(8, 8, (0, 0, 255, 255)), "image/png")],
        file_shape="tombstone",
    )
    said = await harness.emulator.wait_for(lambda: _bot_replies(harness, thread_ts, "deleted"))
    assert "post the image again" in said[0].text
    assert len(harness.emulator.calls_to("files.info")) == looked_up  # nothing to look up


def delivery_files(harness: Harness) -> list[dict]:  # type: ignore[type-arg]
    """The files of the last event delivered, as the bot received them."""
    body = json.loads(harness.emulator.events[harness.emulator.last_event_id()])
    return body["event"]["files"]


async def test_a_mention_in_a_channel_starts_a_session_under_that_message(
    harness: Harness,
) -> None:
    ts, message, mention = await harness.emulator.mention_bot(
        ALICE, CHANNEL, f"{BOT} a red fox in the snow --ar 3:2"
    )
    assert message is not None and mention is not None and mention.status == 200
    [v1] = await harness.wait_generations(1)
    v1 = await harness.wait_state(v1.id, S.POSTED)
    assert await harness.thread_of(v1.id) == ts  # the person's message is the root
    assert v1.prompt == "a red fox in the snow" and v1.width > v1.height
    thread = harness.thread(ts)
    assert thread[0].user == ALICE and thread[0].ts == ts  # no root message of the bot's
    assert [m for m in harness.emulator.messages(CHANNEL) if m.bot_id and not m.thread_ts] == []
    assert any(m.files for m in thread[1:])  # the images are in that thread
    assert len(await harness.generations()) == 1  # the message event did not start another


async def test_a_mention_in_a_session_thread_refines_once(harness: Harness) -> None:
    _v1, thread_ts = await _session(harness)
    _ts, message, mention = await harness.emulator.mention_bot(
        BOB, CHANNEL, f"{BOT} make it snow", thread_ts=thread_ts
    )
    assert message is not None and mention is not None
    rows = await harness.wait_generations(2)
    v2 = await harness.wait_state(rows[1].id, S.POSTED)
    assert v2.kind == "refine" and v2.instruction == "make it snow"
    await harness.emulator.wait_idle()
    assert len(await harness.generations()) == 2  # handled once, not twice


async def test_a_mention_with_a_bad_flag_is_answered_privately(harness: Harness) -> None:
    ts, _message, mention = await harness.emulator.mention_bot(
        ALICE, CHANNEL, f"{BOT} a red fox --ar 9:1"
    )
    assert mention is not None and mention.status == 200
    said = await harness.emulator.wait_for(lambda: harness.emulator.ephemerals_for(ALICE))
    assert "Nothing was queued" in said[0].text
    assert await harness.generations() == []
    assert harness.thread(ts)[1:] == []  # nothing was posted in public
