"""Issue 8, items 1 and 2, over loopback like Slack: the bot token goes only to Slack's file
hosts, and an image's pixel count is checked from its header before anything decodes it."""

from __future__ import annotations

import itertools
import json
import resource
import struct
import zlib
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot.emulator import delivery as dl
from core.models import AttachmentRow, GenerationState
from tests.harness import BOB, CHANNEL, Harness

_event_ids = itertools.count(1)


class Recorder:
    """An HTTP server on its own port (a foreign origin): records every request's headers;
    at ``/files-pri/redirect`` it redirects to ``redirect_to``, elsewhere it serves a PNG."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.redirect_to = ""
        self.url = ""
        self._runner: web.AppRunner | None = None

    def got(self, secret: str) -> bool:
        """True when any request received here carried ``secret`` anywhere in its headers."""
        return any(secret in value for _p, headers in self.seen for value in headers.values())

    async def start(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers)))
        if request.path == "/files-pri/redirect" and self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(body=_small_png(), content_type="image/png")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def _small_png() -> bytes:
    row = b"\x00" + b"\x80" * 4
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)
    idat = zlib.compress(row * 4)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)


@cache
def bomb_png(side: int = 13_000) -> bytes:
    """A valid grey PNG of ``side`` x ``side`` pixels, all zero: a few hundred KB on disk,
    169 MB (13,000²) once decoded. Built with zlib row by row, never held decoded."""
    z = zlib.compressobj(9)
    row = bytes(side + 1)  # filter byte 0 + one byte per pixel
    parts = [z.compress(row) for _ in range(side)]
    idat = b"".join(parts) + z.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    rec = await Recorder().start()
    yield rec
    await rec.stop()


async def _thread(harness: Harness) -> str:
    await harness.imagine("a lighthouse at dusk")
    [v1] = await harness.wait_generations(1)
    await harness.wait_state(v1.id, GenerationState.POSTED)
    return await harness.thread_of(v1.id)


async def _deliver_files(
    harness: Harness, thread_ts: str, text: str, files: list[dict[str, Any]]
) -> None:
    """Deliver a signed ``message`` event (subtype file_share) in the thread whose
    ``files`` are exactly ``files``: what a forged or unusual event carries."""
    emu = harness.emulator
    ts = emu.ws.clock.next()
    event = {
        "type": "message",
        "subtype": "file_share",
        "text": text,
        "user": BOB,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel": CHANNEL,
        "event_ts": ts,
        "channel_type": "channel",
        "files": files,
    }
    event_id = f"Ev0SAFE{next(_event_ids):06d}"
    body = json.dumps(dl.event_callback(emu.ws, event, event_id)).encode()
    answer = await emu.send_raw(body, "application/json", kind="event")
    assert answer.status == 200


def _file(name: str, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "F0CRAFTED",
        "name": name,
        "title": name,
        "mimetype": "image/png",
        "filetype": "png",
        "size": 1000,
        "mode": "hosted",
        "is_external": False,
        "url_private": url,
        "url_private_download": url,
        **extra,
    }


async def _bot_reply(harness: Harness, thread_ts: str, *words: str) -> str:
    got = await harness.emulator.wait_for(
        lambda: [
            m for m in harness.thread(thread_ts) if m.bot_id and all(w in m.text for w in words)
        ],
        within=10,
    )
    return got[0].text


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    yield harness
    await harness.close()


async def test_foreign_origin_url_private_gets_no_token(bot: Harness, recorder: Recorder) -> None:
    thread_ts = await _thread(bot)
    # Same host as the stand-in, another port: another origin.
    await _deliver_files(
        bot, thread_ts, "", [_file("ref.png", f"{recorder.url}/files-pri/T0-F1/ref.png")]
    )
    reply = await _bot_reply(bot, thread_ts, "`ref.png`", "Slack's file storage")
    assert "Upload the image itself" in reply
    assert recorder.seen == [] and not recorder.got(bot.bot_token)
    assert await bot.count(AttachmentRow) == 0


async def test_web_api_url_private_is_not_fetched(bot: Harness) -> None:
    thread_ts = await _thread(bot)
    url = f"{bot.emulator.api_url}chat.postMessage?channel={CHANNEL}&text=pwned+by+a+file"
    before = len(bot.emulator.calls)
    await _deliver_files(bot, thread_ts, "", [_file("x.png", url)])
    await _bot_reply(bot, thread_ts, "`x.png`", "Slack's file storage")
    posted = [c for c in bot.emulator.calls[before:] if "pwned" in json.dumps(c.params)]
    assert posted == []
    assert not [m for m in bot.emulator.messages(CHANNEL) if "pwned" in m.text]


async def test_external_file_is_never_fetched(bot: Harness, recorder: Recorder) -> None:
    thread_ts = await _thread(bot)
    external = _file(
        "Mood board.png",
        f"{recorder.url}/files-pri/T0-F2/board.png",
        mode="external",
        is_external=True,
        external_type="gdrive",
    )
    await _deliver_files(bot, thread_ts, "use this", [external])
    reply = await _bot_reply(bot, thread_ts, "`Mood board.png`", "outside Slack")
    assert "gdrive" in reply and "upload the image itself" in reply.lower()
    assert recorder.seen == []
    # mode alone is enough
    await _deliver_files(bot, thread_ts, "", [{**external, "is_external": None, "name": "b.png"}])
    await _bot_reply(bot, thread_ts, "`b.png`", "outside Slack")
    assert recorder.seen == []


async def test_redirect_to_a_foreign_origin_is_not_followed(
    tmp_path: Path, recorder: Recorder
) -> None:
    redirector = await Recorder().start()
    harness = await Harness(
        tmp_path, local_render_seconds=0.1, slack_file_origins=redirector.url
    ).start()
    try:
        thread_ts = await _thread(harness)
        redirector.redirect_to = f"{recorder.url}/files-pri/T0-F3/away.png"
        await _deliver_files(
            harness, thread_ts, "", [_file("r.png", f"{redirector.url}/files-pri/redirect")]
        )
        await _bot_reply(harness, thread_ts, "`r.png`", "redirected away")
        assert redirector.got(harness.bot_token)  # the allowed origin did get the token
        assert recorder.seen == [] and not recorder.got(harness.bot_token)
        assert await harness.count(AttachmentRow) == 0
    finally:
        await harness.close()
        await redirector.stop()


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# The stand-in reads the header for original_w/original_h, which makes Pillow warn.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("as_mask", [False, True], ids=["reference", "mask"])
async def test_pixel_bomb_is_refused_from_its_header(bot: Harness, as_mask: bool) -> None:
    data = bomb_png()
    assert len(data) < 400_000
    thread_ts = await _thread(bot)
    before = _peak_rss_mb()
    name = "mask.png" if as_mask else "huge.png"
    _ts, delivery = await bot.emulator.post_user_message(
        BOB,
        CHANNEL,
        "mask" if as_mask else "",
        thread_ts=thread_ts,
        files=[(name, data, "image/png")],
    )
    assert delivery is not None and delivery.status == 200
    reply = await _bot_reply(bot, thread_ts, f"`{name}`", "13,000 × 13,000")
    assert "40 megapixels" in reply and "169 megapixels" in reply
    assert _peak_rss_mb() - before < 100
    assert await bot.count(AttachmentRow) == 0
