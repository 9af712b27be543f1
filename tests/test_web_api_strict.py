"""The stand-in reads arguments the way Slack does, keeps message metadata, and can lose
an answer after processing the call; the bot's publisher speaks to it with slack_sdk's
typed methods (form or query arguments for read methods)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.emulator import SlackEmulator
from core.providers.local import LocalProvider
from tests.harness import CHANNEL, Harness

TOKEN = "xoxb-strict-test"
META = {"event_type": "imagine_root", "event_payload": {"generation_id": 7}}


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    emulator = SlackEmulator(signing_secret="s", bot_token=TOKEN)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=emu.api_url, retry_handlers=[])


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("chat.getPermalink", {"channel": CHANNEL, "message_ts": "1.0"}),
        ("conversations.history", {"channel": CHANNEL}),
        ("conversations.replies", {"channel": CHANNEL, "ts": "1.0"}),
        ("files.info", {"file": "F1"}),
        ("users.info", {"user": "U0ALICE"}),
        ("files.getUploadURLExternal", {"filename": "a.png", "length": 3}),
    ],
)
async def test_read_methods_refuse_a_json_body(
    client: AsyncWebClient, method: str, args: dict[str, object]
) -> None:
    with pytest.raises(SlackApiError) as raised:
        await client.api_call(method, json=args)
    assert raised.value.response["error"] == "invalid_arguments"


async def test_typed_methods_and_metadata_round_trip(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    root = await client.chat_postMessage(channel=CHANNEL, text="root", metadata=META)
    link = await client.chat_getPermalink(channel=CHANNEL, message_ts=root["ts"])
    assert link["permalink"].endswith(f"/archives/{CHANNEL}/p{root['ts'].replace('.', '')}")
    plain = await client.conversations_history(channel=CHANNEL)
    assert "metadata" not in plain["messages"][0]  # only with include_all_metadata
    full = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert full["messages"][0]["metadata"] == META
    later = await client.conversations_history(
        channel=CHANNEL, oldest=root["ts"], include_all_metadata=True
    )
    assert later["messages"] == []  # `oldest` is exclusive
    status = {"event_type": "imagine_status", "event_payload": {"generation_id": 7}}
    reply = await client.chat_postMessage(
        channel=CHANNEL, thread_ts=root["ts"], text="queued", metadata=status
    )
    done = {**status, "event_payload": {"generation_id": 7, "version": 1}}
    await client.chat_update(channel=CHANNEL, ts=reply["ts"], text="done", metadata=done)
    thread = await client.conversations_replies(
        channel=CHANNEL, ts=root["ts"], include_all_metadata=True, limit=1
    )
    assert [m["metadata"] for m in thread["messages"]] == [META, done]


async def test_history_pages_with_cursors(client: AsyncWebClient) -> None:
    sent = [(await client.chat_postMessage(channel=CHANNEL, text=str(i)))["ts"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
        seen += [m["ts"] for m in page["messages"]]
        cursor = page["response_metadata"]["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == list(reversed(sent))


@pytest.mark.parametrize("lose", ["drop", "500"])
async def test_fail_after_processes_the_call_and_loses_the_answer(
    emu: SlackEmulator, client: AsyncWebClient, lose: str
) -> None:
    emu.fail_after("chat.postMessage", lose=lose)
    with pytest.raises((aiohttp.ClientError, SlackApiError)):
        await client.chat_postMessage(channel=CHANNEL, text="accepted")
    assert [m.text for m in emu.messages(CHANNEL)] == ["accepted"]
    await client.chat_postMessage(channel=CHANNEL, text="answered")  # only once
    assert len(emu.messages(CHANNEL)) == 2


async def test_the_publisher_gets_permalinks_from_strict_slack(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, provider=LocalProvider(render_seconds=0.1)).start()
    try:
        await harness.imagine("a paper boat")
        [generation] = await harness.wait_generations(1)
        await harness.wait_state(generation.id, "posted")
        thread_ts = await harness.thread_of(generation.id)
        assert harness.runtime is not None
        link = await harness.runtime.publisher.permalink(CHANNEL, thread_ts)
        assert link and link.endswith(thread_ts.replace(".", ""))
        [call] = harness.emulator.calls_to("chat.getPermalink")
        assert call.ok
    finally:
        await harness.close()
