"""The Slack emulator, exercised over real HTTP with the real slack_sdk client."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web
from PIL import Image
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.emulator import SlackEmulator

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"


def png(width: int = 8, height: int = 6) -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), (255, 0, 0, 255)).save(buf, format="PNG")
    return buf.getvalue()


async def post_json(url: str, body: dict[str, Any]) -> int:
    """POST JSON the way Bolt's ``respond()`` does; return the HTTP status."""
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as res:
        return res.status


class Receiver:
    """A tiny app standing in for the bot: records what Slack delivers."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/slack/events"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.read(), dict(request.headers)))
        return web.json_response({"received": True})

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(body)["event"]
            for body, headers in self.requests
            if headers["Content-Type"].startswith("application/json")
        ]


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    emulator = SlackEmulator(signing_secret=SECRET, bot_token=TOKEN)
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def receiver(emu: SlackEmulator) -> AsyncIterator[Receiver]:
    rec = Receiver()
    await rec.start()
    emu.request_url = rec.url
    yield rec
    await rec.stop()


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=TOKEN, base_url=emu.api_url)


async def test_post_update_and_ephemeral(emu: SlackEmulator, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("U0BOT", "B0BOT", "T0TEAM")

    root = await client.chat_postMessage(channel="C0DESIGN", text="a red fox")
    assert root["channel"] == "C0DESIGN" and root["message"]["text"] == "a red fox"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "queued"}}]
    reply = await client.chat_postMessage(
        channel="C0DESIGN", thread_ts=root["ts"], text="status", blocks=blocks
    )
    assert float(reply["ts"]) > float(root["ts"])
    for pct in (10, 50):
        await client.chat_update(channel="C0DESIGN", ts=reply["ts"], text=f"{pct}%")
    # form-encoded body with blocks as a JSON string, as older callers send it
    await client.api_call(
        "chat.update",
        data={
            "channel": "C0DESIGN",
            "ts": reply["ts"],
            "text": "done",
            "blocks": json.dumps([{"type": "context", "elements": [{"type": "mrkdwn"}]}]),
        },
    )
    msg = emu.message("C0DESIGN", reply["ts"])
    assert msg is not None and msg.edits == 3 and msg.text == "done"
    assert msg.thread_ts == root["ts"] and msg.bot_id == "B0BOT"
    assert msg.blocks[0]["type"] == "context" and msg.blocks[0]["block_id"]
    assert [m.ts for m in emu.replies("C0DESIGN", root["ts"])] == [root["ts"], reply["ts"]]
    assert isinstance(emu.calls_to("chat.update")[-1].params["blocks"], list)
    assert len(emu.calls_to("chat.update")) == 3

    eph = await client.chat_postEphemeral(channel="C0DESIGN", user="U0ALICE", text="only you")
    assert eph["message_ts"]
    assert [(e.user, e.text) for e in emu.ephemerals_for("U0ALICE")] == [("U0ALICE", "only you")]
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C0DESIGN", ts="1.000000", text="x")
    assert err.value.response["error"] == "message_not_found"

    replies = await client.conversations_replies(channel="C0DESIGN", ts=root["ts"])
    assert replies["messages"][0]["reply_count"] == 1


async def test_files_upload_v2_into_thread(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel="C0DESIGN", text="prompt")
    data = png(8, 6)
    up = await client.files_upload_v2(
        channel="C0DESIGN", thread_ts=root["ts"], file=data, filename="a.png", title="Fox"
    )
    file_id = up["file"]["id"]
    assert emu.file_bytes(file_id) == data
    assert up["file"]["shares"] == {}  # Slack shares the file after it answers

    await emu.wait_for(lambda: len(emu.replies("C0DESIGN", root["ts"])) == 2)
    thread = emu.replies("C0DESIGN", root["ts"])
    shared = thread[1]
    assert shared.subtype == "file_share" and shared.bot_id == "B0BOT"
    assert [f.id for f in shared.files] == [file_id] and shared.files[0]["name"] == "a.png"

    info = (await client.files_info(file=file_id))["file"]
    assert (info["name"], info["title"], info["mimetype"]) == ("a.png", "Fox", "image/png")
    assert (info["original_w"], info["original_h"], info["size"]) == (8, 6, len(data))
    assert "C0DESIGN" in info["shares"]["public"]

    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(info["url_private"], headers=headers) as res:
            assert res.status == 200 and await res.read() == data
        async with http.get(info["url_private_download"], headers=headers) as res:
            assert await res.read() == data
        async with http.get(info["url_private"]) as res:
            assert res.status == 200 and res.content_type == "text/html"
            assert (await res.text()).startswith("<!DOCTYPE html>")


async def test_errors_surface_as_slack_api_errors(
    emu: SlackEmulator, client: AsyncWebClient
) -> None:
    cases = [
        (client.chat_postMessage(channel="C0PRIVATE", text="hi"), "not_in_channel"),
        (client.chat_postMessage(channel="C0NOPE", text="hi"), "channel_not_found"),
        (client.api_call("chat.postMessage", json={"channel": "C0DESIGN"}), "no_text"),
        (client.files_info(file="F0MISSING"), "file_not_found"),
        (
            AsyncWebClient(token="xoxb-wrong", base_url=emu.api_url).auth_test(),
            "invalid_auth",
        ),
    ]
    for call, code in cases:
        with pytest.raises(SlackApiError) as err:
            await call
        assert err.value.response["error"] == code
    assert not emu.messages("C0PRIVATE")

    emu.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C0DESIGN", text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{emu.api_url}nope.nope", data={"token": TOKEN}) as res:
            assert res.status == 404
            assert await res.json() == {"ok": False, "error": "unknown_method"}
        async with http.post(f"{emu.api_url}auth.test") as res:
            assert (await res.json())["error"] == "not_authed"


async def test_signed_deliveries(
    emu: SlackEmulator, client: AsyncWebClient, receiver: Receiver
) -> None:
    verifier = SignatureVerifier(SECRET)

    res = await emu.send_slash_command("U0ALICE", "C0DESIGN", "a red fox --ar 16:9")
    assert res.status == 200 and res.json() == {"received": True}
    body, headers = receiver.requests[-1]
    assert verifier.is_valid_request(body, headers)
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    assert form["command"] == "/imagine" and form["text"] == "a red fox --ar 16:9"
    assert form["user_id"] == "U0ALICE" and form["channel_id"] == "C0DESIGN"
    assert form["team_id"] == "T0TEAM" and form["response_url"].startswith(emu.base_url)

    assert await post_json(form["response_url"], {"text": "queued"}) == 200
    assert emu.ephemerals_for("U0ALICE")[-1].text == "queued"
    emu.age_response_urls(30 * 60 + 1)  # Slack: 5 uses within 30 minutes, then 404
    assert await post_json(form["response_url"], {"text": "too late"}) == 404
    assert emu.ephemerals_for("U0ALICE")[-1].text == "queued"
    assert emu.calls_to("response_url")[-1].response == {"ok": False, "error": "expired_url"}
    res = await emu.send_slash_command("U0ALICE", "C0DESIGN", "a blue fox")
    fresh = {k: v[0] for k, v in parse_qs(receiver.requests[-1][0].decode()).items()}
    uses = [await post_json(fresh["response_url"], {"text": f"{i}"}) for i in range(6)]
    assert uses == [200] * 5 + [404]
    assert emu.calls_to("response_url")[-1].response["error"] == "used_url"

    buttons = {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "approve", "value": "gen-1:0",
             "text": {"type": "plain_text", "text": "Approve"}},
            {"type": "button", "action_id": "regenerate", "value": "gen-1",
             "text": {"type": "plain_text", "text": "Regenerate"}},
        ],
    }  # fmt: skip
    posted = await client.chat_postMessage(channel="C0DESIGN", text="result", blocks=[buttons])
    await emu.click_button("U0BOB", "C0DESIGN", posted["ts"], "approve")
    body, headers = receiver.requests[-1]
    assert verifier.is_valid_request(body, headers)
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0BOB"
    assert payload["actions"][0]["value"] == "gen-1:0"
    assert payload["container"]["message_ts"] == posted["ts"]
    assert payload["message"]["blocks"][0]["elements"][1]["action_id"] == "regenerate"
    with pytest.raises(LookupError):
        await emu.click_button("U0BOB", "C0DESIGN", posted["ts"], "approve", value="other")

    replace = {"replace_original": True, "text": "approved"}
    assert await post_json(payload["response_url"], replace) == 200
    assert emu.message("C0DESIGN", posted["ts"]).text == "approved"  # type: ignore[union-attr]

    ts, delivery = await emu.post_user_message(
        "U0ALICE", "C0DESIGN", "use this", thread_ts=posted["ts"],
        files=[("ref.png", png(4, 4), "image/png")],
    )  # fmt: skip
    assert delivery is not None and delivery.status == 200
    envelope = json.loads(receiver.requests[-1][0])
    event = envelope["event"]
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["user_id"] == "U0BOT"
    assert (event["ts"], event["thread_ts"], event["subtype"]) == (ts, posted["ts"], "file_share")
    assert event["files"][0]["original_w"] == 4

    await emu.redeliver(envelope["event_id"], retry_num=2)
    body2, headers2 = receiver.requests[-1]
    assert body2 == receiver.requests[-2][0] and verifier.is_valid_request(body2, headers2)
    assert headers2["X-Slack-Retry-Num"] == "2"
    assert headers2["X-Slack-Retry-Reason"] == "http_timeout"

    await emu.send_raw(b"{}", "application/json", signature="v0=bad")
    assert not verifier.is_valid_request(*receiver.requests[-1])
    await emu.send_raw(b"{}", "application/json", timestamp=1_000_000)
    assert not verifier.is_valid_request(*receiver.requests[-1])  # stale

    _, none = await emu.post_user_message("U0ALICE", "C0PRIVATE", "bot cannot see this")
    assert none is None


async def test_echo_of_bot_messages(
    emu: SlackEmulator, client: AsyncWebClient, receiver: Receiver
) -> None:
    emu.echo_bot_messages = True
    posted = await client.chat_postMessage(channel="C0DESIGN", text="hello")
    await client.chat_update(channel="C0DESIGN", ts=posted["ts"], text="hello again")
    await emu.wait_idle()
    first, second = receiver.events()
    assert first["bot_id"] == "B0BOT" and first["app_id"] and "subtype" not in first
    assert second["subtype"] == "message_changed"
    assert second["message"]["text"] == "hello again"
    assert second["previous_message"]["text"] == "hello"


async def test_transcript(emu: SlackEmulator, client: AsyncWebClient) -> None:
    root = await client.chat_postMessage(channel="C0DESIGN", text="*Prompt:* a red fox")
    status = await client.chat_postMessage(channel="C0DESIGN", thread_ts=root["ts"], text="queued")
    for text in ("10%", "60%", "done"):
        await client.chat_update(channel="C0DESIGN", ts=status["ts"], text=text)
    await client.files_upload_v2(
        channel="C0DESIGN", thread_ts=root["ts"], file=png(16, 9), filename="fox.png"
    )
    await emu.wait_for(lambda: len(emu.replies("C0DESIGN", root["ts"])) == 3)
    await client.chat_postMessage(
        channel="C0DESIGN",
        thread_ts=root["ts"],
        text="result",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "Here it is"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "seed 42"}]},
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": t}}
                    for t in ("Approve", "Regenerate")
                ],
            },
        ],
    )
    await client.chat_postEphemeral(channel="C0DESIGN", user="U0BOB", text="psst")
    text = emu.transcript("C0DESIGN", root["ts"])
    assert "#design" in text and "(edited 3×)" in text and "done" in text
    assert "[ Approve ]  [ Regenerate ]" in text and "Here it is" in text and "seed 42" in text
    assert "📎 fox.png (16×9, " in text
    assert "psst" in emu.ephemeral_transcript("U0BOB")


async def test_bolt_app_accepts_deliveries(emu: SlackEmulator) -> None:
    """A real Bolt app verifies our signatures, acks, responds and ignores its own echoes."""
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(signing_secret=SECRET, client=AsyncWebClient(token=TOKEN, base_url=emu.api_url))
    clicked: list[str] = []
    messages: list[dict[str, Any]] = []

    @app.command("/imagine")
    async def imagine(ack: Any, respond: Any, command: dict[str, Any], client: Any) -> None:
        await ack()
        await respond("queued")
        button = {"type": "button", "action_id": "approve", "value": "g1",
                  "text": {"type": "plain_text", "text": "Approve"}}  # fmt: skip
        await client.chat_postMessage(
            channel=command["channel_id"],
            text=command["text"],
            blocks=[{"type": "actions", "elements": [button]}],
        )

    @app.action("approve")
    async def approve(ack: Any, body: dict[str, Any]) -> None:
        await ack()
        clicked.append(body["actions"][0]["value"])

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        messages.append(event)

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    emu.request_url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    emu.echo_bot_messages = True
    try:
        assert (await emu.send_slash_command("U0ALICE", "C0DESIGN", "a fox")).status == 200
        posted = await emu.wait_for(lambda: emu.messages("C0DESIGN"))
        assert emu.ephemerals_for("U0ALICE")[0].text == "queued"
        assert (await emu.click_button("U0BOB", "C0DESIGN", posted[0].ts, "approve")).status == 200
        assert await emu.wait_for(lambda: clicked) == ["g1"]
        _, delivery = await emu.post_user_message("U0ALICE", "C0DESIGN", "hi", posted[0].ts)
        assert delivery is not None and delivery.status == 200
        await emu.wait_idle()
        await emu.wait_for(lambda: messages)
        assert [m["text"] for m in messages] == ["hi"]  # the bot's own post was ignored
        bad = await emu.send_raw(b"{}", "application/json", signature="v0=bad")
        assert bad.status == 401
    finally:
        await runner.cleanup()
