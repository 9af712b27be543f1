"""Socket Mode end to end: the stand-in's WebSocket and Web API, Bolt's real handler.

The bot opens its connection with `apps.connections.open` (app-level token), gets
`hello`, and every delivery arrives as an envelope that Bolt acknowledges on the socket.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from PIL import Image
from sqlalchemy import select

from bot.app import build_runtime, start_socket_mode
from bot.emulator import SlackEmulator
from core import db
from core.config import SettingsError, load_settings
from core.models import ApprovalRow, GenerationRow, GenerationState, SessionRow
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text, buttons

S = GenerationState
APP_TOKEN = "xapp-1-A0IMAGINE-1234-abcdef"
BOT_TOKEN = "xoxb-test-socket"
REPO = Path(__file__).resolve().parents[1]


async def test_imagine_approve_and_refine_over_socket_mode(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, socket_mode=True).start()
    emu = harness.emulator
    try:
        # The bot connected the documented way: apps.connections.open, then the WebSocket.
        [opened] = emu.calls_to("apps.connections.open")
        assert opened.response and opened.response["url"].startswith(emu.ws_url + "socket-mode/")
        assert emu.socket.num_connections == 1
        assert harness.settings and harness.settings.slack_signing_secret is None

        answer = await harness.imagine("a lighthouse --ar 3:2")
        assert (answer.status, answer.text, answer.error) == (200, "", "")
        envelope = emu.socket.envelopes[-1]
        assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"]
        assert envelope["payload"]["command"] == "/imagine"
        assert envelope["payload"]["text"] == "a lighthouse --ar 3:2"
        assert {"envelope_id": envelope["envelope_id"]} in emu.socket.received

        [generation] = await harness.generations()
        generation = await harness.wait_state(generation.id, S.POSTED)
        thread_ts = await harness.thread_of(generation.id)
        root = emu.message(CHANNEL, thread_ts)
        assert root is not None and root.thread_ts is None and root.bot_id
        assert f"<@{ALICE}>" in block_text(root) and "a lighthouse" in block_text(root)

        status, upload, result = harness.thread(thread_ts)[1:]
        assert "done" in status.text
        [file] = upload.files
        png = Image.open(io.BytesIO(emu.file_bytes(file.id)))
        assert png.format == "PNG" and png.size[0] * 2 == png.size[1] * 3
        g = generation.id
        assert buttons(result) == [
            ("approve", f"{g}:0"),
            ("request_changes", f"{g}:0"),
            ("refine_this", f"{g}:0"),
            ("regenerate", str(g)),
            ("history", str(g)),
        ]

        # Bob approves over the socket: an `interactive` envelope, acked, message updated.
        click = await emu.click_button(BOB, CHANNEL, result.ts, "approve")
        assert click.status == 200 and emu.socket.envelopes[-1]["type"] == "interactive"
        assert not emu.socket.envelopes[-1]["accepts_response_payload"]
        await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
        assert ("approve", f"{g}:0") not in buttons(emu.message(CHANNEL, result.ts))
        async with harness.sm() as s:
            [approval] = (await s.scalars(select(ApprovalRow))).all()
        assert approval.user_id == BOB

        # A thread reply is an `events_api` envelope; Slack's retry of it changes nothing.
        _, reply = await emu.post_user_message(ALICE, CHANNEL, "make it stormy", thread_ts)
        assert reply is not None and reply.status == 200
        envelope = emu.socket.envelopes[-1]
        assert envelope["type"] == "events_api"
        assert (envelope["retry_attempt"], envelope["retry_reason"]) == (0, "")
        first, second = await harness.wait_generations(2)
        retry = await emu.redeliver(emu.last_event_id(), retry_num=1, reason="timeout")
        assert retry.status == 200
        assert (emu.socket.envelopes[-1]["retry_attempt"], retry.kind) == (1, "retry")
        await harness.wait_state(second.id, S.POSTED)
        assert second.session_id == first.session_id and second.kind == "refine"
        assert await harness.count(GenerationRow) == 2 and await harness.count(SessionRow) == 1
    finally:
        await harness.close()


async def test_bad_flag_is_answered_in_the_ack_payload_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    harness = await Harness(tmp_path, socket_mode=True).start()
    try:
        answer = await harness.imagine("a cat --n 9")
        assert answer.status == 200
        reply = answer.json()
        assert reply["response_type"] == "ephemeral"
        assert (
            "Use `--n` with 1, 2, 3 or 4" in reply["text"] and "Nothing was queued" in reply["text"]
        )
        ack = harness.emulator.socket.received[-1]
        assert ack["envelope_id"] == harness.emulator.socket.envelopes[-1]["envelope_id"]
        assert ack["payload"] == reply
        await harness.until_nothing_stored(within=0.5)
        assert harness.emulator.calls_to("chat.postMessage") == []
    finally:
        await harness.close()


async def test_reconnects_after_slacks_disconnect_and_serves_healthz(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, socket_mode=True).start()
    emu = harness.emulator
    try:
        assert harness.runner
        port = int(harness.runner.addresses[0][1])
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as res:
                assert res.status == 200 and (await res.json())["socket_mode"] is True
            # No unsigned back door: Socket Mode serves no /slack/events.
            async with http.post(f"http://127.0.0.1:{port}/slack/events", data=b"{}") as res:
                assert res.status in (404, 405)

        # Slack refreshes connections: `disconnect`, then the old socket closes.
        await emu.disconnect_socket("refresh_requested", close_after=0.5)
        await emu.wait_for(lambda: emu.socket.connections_opened >= 2, within=5)
        await emu.wait_for(lambda: emu.socket.num_connections == 1, within=5)
        assert len(emu.calls_to("apps.connections.open")) >= 2
        answer = await harness.imagine("help")
        assert answer.status == 200 and "Usage" in answer.json()["text"]
    finally:
        await harness.close()


async def test_emulator_speaks_the_socket_mode_protocol() -> None:
    async with SlackEmulator("secret", BOT_TOKEN, app_token=APP_TOKEN, ack_timeout=0.3) as emu:
        emu.transport = "socket"
        async with aiohttp.ClientSession() as http:

            async def call(method: str, token: str | None) -> dict[str, object]:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.post(emu.api_url + method, headers=headers) as res:
                    return dict(await res.json())

            assert await call("apps.connections.open", BOT_TOKEN) == {
                "ok": False,
                "error": "not_allowed_token_type",
            }
            wrong = await call("apps.connections.open", "xapp-1-wrong")
            assert wrong["error"] == "invalid_auth"
            assert (await call("apps.connections.open", None))["error"] == "not_authed"
            assert (await call("chat.postMessage", APP_TOKEN))["error"] == "not_allowed_token_type"

            # No connection yet: the delivery fails clearly instead of hanging.
            nobody = await emu.send_slash_command(ALICE, CHANNEL, "hi")
            assert nobody.status == 0 and "no Socket Mode connection" in nobody.error

            opened = await call("apps.connections.open", APP_TOKEN)
            assert opened["ok"] is True
            url = str(opened["url"])
            async with http.ws_connect(url, autoping=False) as ws:
                hello = await ws.receive_json(timeout=2)
                assert hello["type"] == "hello" and hello["num_connections"] == 1
                assert hello["connection_info"] == {"app_id": "A0IMAGINE"}
                pong = await _ping(ws, b"sdk-ping-pong:1")
                assert pong == b"sdk-ping-pong:1"

                # Not acknowledged in time → status 0 and the reason.
                silent = await emu.send_slash_command(ALICE, CHANNEL, "hi")
                assert silent.status == 0 and "no acknowledgement" in silent.error
                envelope = await ws.receive_json(timeout=1)
                assert envelope["type"] == "slash_commands" and envelope["payload"]["text"] == "hi"

                # Acknowledged with a payload → 200 and the payload as the answer.
                async def ack() -> None:
                    env = await ws.receive_json(timeout=2)
                    reply = {"envelope_id": env["envelope_id"], "payload": {"text": "ok"}}
                    await ws.send_str(json.dumps(reply))

                acker = asyncio.create_task(ack())
                answered = await emu.send_slash_command(ALICE, CHANNEL, "hello")
                await acker
                assert answered.status == 200 and answered.json() == {"text": "ok"}

            # A ticket opens one connection only.
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await http.ws_connect(url)


async def _ping(ws: aiohttp.ClientWebSocketResponse, data: bytes) -> bytes:
    await ws.ping(data)
    msg = await ws.receive(timeout=2)
    assert msg.type == aiohttp.WSMsgType.PONG
    return bytes(msg.data)


async def test_a_rejected_app_token_stops_the_start_with_one_line(tmp_path: Path) -> None:
    async with SlackEmulator("secret", BOT_TOKEN, app_token=APP_TOKEN) as emu:
        settings = load_settings(
            slack_bot_token=BOT_TOKEN,
            slack_app_token="xapp-1-revoked",
            slack_api_url=emu.api_url,
            database_url=f"sqlite+aiosqlite:///{tmp_path}/imagine.db",
            image_store_dir=tmp_path / "images",
        )
        await db.upgrade_to_head(settings.database_url)
        runtime = build_runtime(settings, socket_mode=True)
        try:
            with pytest.raises(SettingsError, match=r"SLACK_APP_TOKEN.*invalid_auth") as err:
                await start_socket_mode(runtime, "127.0.0.1", 0)
            assert "xapp-1-revoked" not in str(err.value)
        finally:
            await runtime.aclose()


def test_http_mode_still_requires_the_signing_secret(tmp_path: Path) -> None:
    settings = load_settings(slack_bot_token=BOT_TOKEN, slack_app_token=APP_TOKEN)
    with pytest.raises(SettingsError, match="SLACK_SIGNING_SECRET"):
        build_runtime(settings)


def test_cli_refuses_socket_mode_without_an_app_token(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SLACK_BOT_TOKEN": BOT_TOKEN}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--socket-mode"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "SLACK_APP_TOKEN is required" in lines[0]
    assert "Traceback" not in result.stderr and BOT_TOKEN not in result.stderr


async def test_cli_serves_over_socket_mode_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with SlackEmulator("unused", BOT_TOKEN, app_token=APP_TOKEN, transport="socket") as emu:
        port = _free_port()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "PYTHONPATH": str(REPO),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_URL": emu.api_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/imagine.db",
            "IMAGE_STORE_DIR": str(tmp_path / "images"),
            "PORT": str(port),
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "serve",
            "--socket-mode",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await emu.wait_for_socket(within=20)
            answer = await emu.send_slash_command(ALICE, CHANNEL, "help")
            assert answer.status == 200 and "Usage" in answer.json()["text"]
            health: dict[str, object] = {}
            deadline = time.monotonic() + 30  # a busy machine starts a process slowly
            async with aiohttp.ClientSession() as http:
                while not health and time.monotonic() < deadline:
                    try:
                        async with http.get(f"http://127.0.0.1:{port}/healthz") as res:
                            health = await res.json()
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
                assert health["ok"] is True and health["socket_mode"] is True
            proc.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
            assert proc.returncode == 0, stderr.decode()[-2000:]
            await emu.wait_for(lambda: emu.socket.num_connections == 0, within=2)
            assert APP_TOKEN not in stderr.decode() and BOT_TOKEN not in stderr.decode()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
