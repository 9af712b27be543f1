"""`imagine-bot demo "<prompt>" [--review]`: the whole main job offline.

Starts the local Slack stand-in and the bot on loopback, sends a signed
`/imagine` exactly as Slack would, waits for the thread to finish, prints it
as a transcript and writes the images Slack received to a folder. With `--review`
it shows team review first and last: an admin sets the channel's rules in the
settings modal (a reviewer, no self-approval, a gallery), the requester's own
Approve is refused, the reviewer approves from their App Home tab, and the image
lands in the gallery channel.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import messages
from bot.app import bound_port, build_runtime, start_server
from bot.emulator import SlackEmulator
from core import db
from core.config import load_settings
from core.models import GenerationRow, GenerationState, ImageRow, SessionRow

DEMO_USER = "U0ALICE"
DEMO_CHANNEL = "C0DESIGN"
DEMO_ADMIN = "U0OLIVE"  # --review: a workspace admin
DEMO_REVIEWER = "U0CAROL"  # --review: the channel's reviewer
DEMO_GALLERY = "C0GALLERY"  # --review: the gallery channel


async def run_demo(
    text: str,
    out_dir: Path,
    replies: list[str] | None = None,
    wait_seconds: float = 300.0,
    *,
    review: bool = False,
) -> int:
    """Run `/imagine <text>` (then each reply in the thread) through the stand-in, with
    the review flow around it when `review`; return the process exit code (0 when every
    version was posted, and with `review` the image reached the gallery)."""
    await asyncio.to_thread(clear_images, out_dir)  # no images of an earlier run stay
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
        demo = _Demo(emulator, runtime.sessionmaker, wait_seconds)
        try:
            if review:
                return await demo.review(text, out_dir)
            return await demo.converse(text, replies or [], out_dir)
        finally:
            await runner.cleanup()
            await emulator.stop()


class _Demo:
    """One scripted conversation: the command, then replies, each waited for."""

    def __init__(
        self,
        emulator: SlackEmulator,
        sm: async_sessionmaker[AsyncSession],
        wait_seconds: float,
    ) -> None:
        self.emulator = emulator
        self.sm = sm
        self.deadline = time.monotonic() + wait_seconds
        self.wait_seconds = wait_seconds

    async def _start(self, text: str) -> tuple[GenerationRow, SessionRow] | None:
        """Send `/imagine <text>` and wait for v1; None (after saying why) when it failed."""
        print(f"@alice in #design: /imagine {text}")
        delivery = await self.emulator.send_slash_command(DEMO_USER, DEMO_CHANNEL, text)
        if delivery.status != 200:
            print(f"The bot answered HTTP {delivery.status}: {delivery.text}")
            return None
        if delivery.text.strip():
            reply = delivery.json().get("text", delivery.text)
            print(f"\n(only visible to you) {reply}")
            return None
        print(f"(signed request acknowledged: HTTP {delivery.status})\n")
        generation = await self._wait_version(1)
        if generation is None:
            print("\n".join(e.text for e in self.emulator.ephemerals_for(DEMO_USER)))
            return None
        async with self.sm() as s:
            session = await s.get(SessionRow, generation.session_id)
        assert session is not None and session.thread_ts is not None
        return generation, session

    async def converse(self, text: str, replies: list[str], out_dir: Path) -> int:
        started = await self._start(text)
        if started is None:
            return 1
        generation, session = started
        assert session.thread_ts is not None
        for number, reply in enumerate(replies, start=2):
            if generation is None or generation.state != GenerationState.POSTED:
                break
            print(f"\n@alice in the thread: {reply}")
            await self.emulator.post_user_message(
                DEMO_USER, DEMO_CHANNEL, reply, thread_ts=session.thread_ts
            )
            generation = await self._wait_version(number)

        await self.emulator.wait_idle()
        print("\n──── #design, thread ────")
        print(self.emulator.transcript(DEMO_CHANNEL, session.thread_ts))
        if generation is None or generation.state != GenerationState.POSTED:
            return 1
        written = await self._write_images(session.id, out_dir)
        print("\nImages as Slack received them:")
        print("\n".join(f"  {line}" for line in written))
        return 0

    async def review(self, text: str, out_dir: Path) -> int:
        """The review flow around one image (see the module's docstring)."""
        emu = self.emulator
        await self._set_review_rules()
        started = await self._start(text)
        if started is None:
            return 1
        generation, session = started
        assert session.thread_ts is not None
        value = f"{generation.id}:0"
        result = generation.result_ts or ""
        print("\n@alice clicks Approve on her own image")
        await emu.click_button(DEMO_USER, DEMO_CHANNEL, result, "approve", value)
        [refused] = await emu.wait_for(lambda: emu.ephemerals_for(DEMO_USER), within=10)
        print(f"(only visible to @alice) {emu.readable(refused.text)}")
        print("\n@carol opens the app's Home tab")
        await emu.open_app_home(DEMO_REVIEWER)
        await emu.wait_for(lambda: emu.home(DEMO_REVIEWER), within=10)
        print(emu.home_transcript(DEMO_REVIEWER))
        print("@carol clicks Approve on her Home tab")
        await emu.click_home_button(DEMO_REVIEWER, "home_approve", f"{value}:{DEMO_CHANNEL}:home")
        posts = await emu.wait_for(lambda: emu.messages(DEMO_GALLERY), within=self.wait_seconds)
        # Her Home tab is republished once the gallery post is made (bot/home_refresh.py).
        await emu.wait_for(
            lambda: messages.HOME_IN_GALLERY in emu.home_transcript(DEMO_REVIEWER), within=15
        )
        await emu.wait_idle()
        print("\n──── #design, thread ────")
        print(emu.transcript(DEMO_CHANNEL, session.thread_ts))
        print("──── #design-gallery ────")
        print(emu.transcript(DEMO_GALLERY, posts[0].ts))
        print("──── @carol's Home tab, after ────")
        print(emu.home_transcript(DEMO_REVIEWER))
        written = await self._write_images(session.id, out_dir)
        print("Images as Slack received them:")
        print("\n".join(f"  {line}" for line in written))
        return 0

    async def _set_review_rules(self) -> None:
        """Olive (an admin) opens `/imagine settings` and saves: Carol reviews, one
        approval, no self-approval, #design-gallery as the gallery."""
        emu = self.emulator
        emu.add_user(DEMO_ADMIN, "olive").is_admin = True
        emu.add_user(DEMO_REVIEWER, "carol")
        emu.ws.channels[DEMO_CHANNEL].members.update({DEMO_ADMIN, DEMO_REVIEWER})
        emu.add_channel(DEMO_GALLERY, "design-gallery", members=[DEMO_USER, DEMO_REVIEWER])
        print("@olive in #design: /imagine settings")
        await emu.send_slash_command(DEMO_ADMIN, DEMO_CHANNEL, "settings")
        [modal] = await emu.wait_for(lambda: emu.open_views(DEMO_ADMIN), within=10)
        print(emu.view_transcript(modal.id))
        print("@olive picks @carol, unticks self-approval, picks #design-gallery and clicks Save")
        await emu.submit_view(DEMO_ADMIN, modal.id, _settings_values())
        answer = await emu.send_slash_command(DEMO_ADMIN, DEMO_CHANNEL, "review")
        rules = emu.readable(answer.json()["text"])
        print(f"@olive in #design: /imagine review\n(only visible to @olive) {rules}\n")

    async def _wait_version(self, version: int) -> GenerationRow | None:
        """Wait until version `version` of the (only) session finishes; print its status."""
        shown = ""
        while True:
            async with self.sm() as s:
                generation = await s.scalar(
                    select(GenerationRow).where(GenerationRow.version == version)
                )
                session = await s.get(SessionRow, generation.session_id) if generation else None
            if generation is None and version == 1 and self.emulator.ephemerals_for(DEMO_USER):
                return None  # the bot could not start (it said why, privately)
            if generation and session and session.thread_ts and generation.status_ts:
                status = self.emulator.message(DEMO_CHANNEL, generation.status_ts)
                if status and status.text != shown:
                    print(f"  status: {status.text}")
                    shown = status.text
            if generation and generation.state in GenerationState.TERMINAL:
                return generation
            if time.monotonic() > self.deadline:
                print(f"Gave up waiting after {self.wait_seconds:.0f} s.")
                return generation
            await asyncio.sleep(0.2)

    async def _write_images(self, session_id: int, out_dir: Path) -> list[str]:
        async with self.sm() as s:
            rows = (
                await s.execute(
                    select(GenerationRow.version, ImageRow)
                    .join(ImageRow, ImageRow.generation_id == GenerationRow.id)
                    .where(GenerationRow.session_id == session_id)
                    .order_by(GenerationRow.version, ImageRow.index)
                )
            ).all()
        written = []
        for _version, image in rows:
            if not image.slack_file_id:
                continue
            slack_file = self.emulator.file(image.slack_file_id)
            # The name Slack shows in the transcript (📎 v1-1.png) is the name on disk.
            path = out_dir / Path(slack_file.name).name
            data = self.emulator.file_bytes(image.slack_file_id)
            await asyncio.to_thread(_write, path, data)
            written.append(f"{path} ({image.width}×{image.height} px, {len(data)} bytes)")
        return written


def _settings_values() -> dict[str, dict[str, dict[str, Any]]]:
    """The settings modal's `state.values` as Olive fills it in (see
    `bot.review_views.settings_modal`)."""
    return {
        "reviewers": {
            "reviewers": {"type": "multi_users_select", "selected_users": [DEMO_REVIEWER]}
        },
        "approvals": {"approvals": {"type": "number_input", "value": "1"}},
        "self_approval": {"self_approval": {"type": "checkboxes", "selected_options": []}},
        "gallery": {"gallery": {"type": "channels_select", "selected_channel": DEMO_GALLERY}},
    }


DEMO_IMAGE = re.compile(r"v\d+-(?:image)?\d+\.(?:png|jpe?g|webp|gif)", re.IGNORECASE)
"""Names of the images a demo run writes (`v2-1.png`; `v2-image1.png` from older runs)."""


def clear_images(out_dir: Path) -> list[Path]:
    """Delete the images an earlier demo run wrote to `out_dir` (only those: other files
    stay); returns what was deleted."""
    if not out_dir.is_dir():
        return []
    removed = [p for p in out_dir.iterdir() if p.is_file() and DEMO_IMAGE.fullmatch(p.name)]
    for path in removed:
        path.unlink()
    return removed


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
