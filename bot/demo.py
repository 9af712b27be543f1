"""`imagine-bot demo "<prompt>"`: the whole main job offline.

Starts the local Slack stand-in and the bot on loopback, sends a signed
`/imagine` exactly as Slack would, waits for the thread to finish, prints it
as a transcript and writes the images Slack received to a folder.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import bound_port, build_runtime, start_server
from bot.emulator import SlackEmulator
from core import db
from core.config import load_settings
from core.models import GenerationRow, GenerationState, ImageRow, SessionRow

DEMO_USER = "U0ALICE"
DEMO_CHANNEL = "C0DESIGN"


async def run_demo(text: str, out_dir: Path, wait_seconds: float = 300.0) -> int:
    """Run one `/imagine <text>` through the stand-in; return the process exit code."""
    signing_secret = secrets.token_hex(16)
    bot_token = f"xoxb-demo-{secrets.token_hex(8)}"
    emulator = SlackEmulator(signing_secret, bot_token)
    await emulator.start()
    with tempfile.TemporaryDirectory(prefix="imagine-demo-") as work:
        settings = load_settings(
            slack_bot_token=bot_token,
            slack_signing_secret=signing_secret,
            slack_api_url=emulator.api_url,
            database_url=f"sqlite+aiosqlite:///{work}/imagine.db",
            image_store_dir=Path(work) / "images",
        )
        await db.upgrade_to_head(settings.database_url)
        runtime = build_runtime(settings)
        runner = await start_server(runtime, "127.0.0.1", 0)
        emulator.request_url = f"http://127.0.0.1:{bound_port(runner)}/slack/events"
        try:
            return await _converse(emulator, runtime.sessionmaker, text, out_dir, wait_seconds)
        finally:
            await runner.cleanup()
            await emulator.stop()


async def _converse(
    emulator: SlackEmulator,
    sm: async_sessionmaker[AsyncSession],
    text: str,
    out_dir: Path,
    wait_seconds: float,
) -> int:
    print(f"@alice in #design: /imagine {text}")
    delivery = await emulator.send_slash_command(DEMO_USER, DEMO_CHANNEL, text)
    if delivery.status != 200:
        print(f"The bot answered HTTP {delivery.status}: {delivery.text}")
        return 1
    if delivery.text.strip():
        reply = delivery.json().get("text", delivery.text)
        print(f"\n(only visible to you) {reply}")
        return 1
    print(f"(signed request acknowledged: HTTP {delivery.status})\n")

    deadline = time.monotonic() + wait_seconds
    shown = ""
    while True:
        async with sm() as s:
            generation = await s.scalar(select(GenerationRow).order_by(GenerationRow.id))
            session = await s.get(SessionRow, generation.session_id) if generation else None
        if generation is None:
            print("\n".join(e["text"] for e in emulator.ephemerals_for(DEMO_USER)))
            return 1
        if session and session.thread_ts:
            thread = emulator.replies(DEMO_CHANNEL, session.thread_ts)
            status = thread[1].text if len(thread) > 1 else ""
            if status and status != shown:
                print(f"  status: {status}")
                shown = status
        if generation.state in GenerationState.TERMINAL:
            break
        if time.monotonic() > deadline:
            print(f"Gave up waiting after {wait_seconds:.0f} s (state: {generation.state}).")
            return 1
        await asyncio.sleep(0.2)

    await emulator.wait_idle()
    print("\n──── #design, thread ────")
    print(emulator.transcript(DEMO_CHANNEL, session.thread_ts))
    if generation.state != GenerationState.POSTED:
        return 1
    async with sm() as s:
        images = (
            await s.scalars(select(ImageRow).where(ImageRow.generation_id == generation.id))
        ).all()
    written = []
    for image in images:
        data = emulator.file_bytes(image.slack_file_id) if image.slack_file_id else b""
        path = out_dir / f"v{generation.version}-image{image.index + 1}{Path(image.path).suffix}"
        await asyncio.to_thread(_write, path, data)
        written.append(f"{path} ({image.width}×{image.height} px, {len(data)} bytes)")
    print("\nImages as Slack received them:")
    print("\n".join(f"  {line}" for line in written))
    return 0


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
