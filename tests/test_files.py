"""bot.files against the Slack stand-in on loopback: url_private needs the bot token."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from PIL import Image

from bot.emulator import SlackEmulator
from bot.files import download_slack_file, file_is_too_large
from core.images import ImageRejected, check_reference, limits_for

SECRET = "test-signing-secret"
TOKEN = "xoxb-files-test-token"


def png(width: int = 8, height: int = 6, padding: int = 0) -> bytes:
    """A PNG; ``padding`` extra bytes after IEND make it large without slow encoding."""
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 128, 255, 255)).save(buf, format="PNG")
    return buf.getvalue() + bytes(padding)


class Side:
    """A tiny aiohttp app: receives the emulator's event deliveries; a slow and a redirect URL."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.redirect_to = ""
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self._events)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/redirect", self._redirect)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _events(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response()

    async def _slow(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(body=png(), content_type="image/png")

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(self.redirect_to)


class CountingTransport(httpx.AsyncBaseTransport):
    """Real HTTP, counting the body bytes the client actually reads (optionally hiding
    Content-Length, as a chunked response would)."""

    def __init__(self, *, hide_length: bool = False) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.hide_length = hide_length
        self.read = 0
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        headers = [
            (k, v)
            for k, v in response.headers.raw
            if not (self.hide_length and k.lower() == b"content-length")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            stream=_Counted(response, self),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Counted(httpx.AsyncByteStream):
    def __init__(self, response: httpx.Response, owner: CountingTransport) -> None:
        self.response, self.owner = response, owner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.response.aiter_raw():
            self.owner.read += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self.response.aclose()


@pytest.fixture
async def side() -> AsyncIterator[Side]:
    s = Side()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def emu(side: Side) -> AsyncIterator[SlackEmulator]:
    emulator = SlackEmulator(SECRET, TOKEN, request_url=f"{side.url}/slack/events")
    await emulator.start()
    yield emulator
    await emulator.stop()


async def post_file(emu: SlackEmulator, name: str, data: bytes, mime: str) -> dict:
    """Alice posts a file in #design; return its Slack file object."""
    ts, delivery = await emu.post_user_message(
        "U0ALICE", "C0DESIGN", "here", files=[(name, data, mime)]
    )
    assert delivery is not None and delivery.status == 200
    message = emu.message("C0DESIGN", ts)
    assert message is not None
    return message.file_dicts[0]


async def refused(caplog: pytest.LogCaptureFixture, *args: object, **kwargs: object) -> str:
    """Run download_slack_file expecting ImageRejected; check the token leaks nowhere."""
    with caplog.at_level(logging.DEBUG, logger="bot.files"), pytest.raises(ImageRejected) as info:
        await download_slack_file(*args, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert TOKEN not in message and TOKEN not in caplog.text
    assert "\n" not in message
    return message


async def test_download_with_token_returns_the_bytes(emu: SlackEmulator) -> None:
    data = png(32, 24)
    file = await post_file(emu, "ref.png", data, "image/png")
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        got = await download_slack_file(
            file["url_private"], TOKEN, max_bytes=1_000_000, name="ref.png", client=client
        )
    assert got == data
    assert transport.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    checked = check_reference(got, "ref.png", limits_for("openai"))
    assert (checked.width, checked.height, checked.mime) == (32, 24, "image/png")
    # Without a client of its own, one is made and closed.
    got2 = await download_slack_file(
        file["url_private_download"], TOKEN, max_bytes=1_000_000, name="ref.png"
    )
    assert got2 == data


async def test_wrong_token_login_page_refused(
    emu: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    file = await post_file(emu, "ref.png", png(), "image/png")
    message = await refused(
        caplog, file["url_private"], "xoxb-wrong", max_bytes=1_000_000, name="ref.png"
    )
    assert message.startswith("I couldn't download `ref.png`: Slack sent a login page")
    assert "files:read" in message and "member of this channel" in message
    assert "xoxb-wrong" not in message and "xoxb-wrong" not in caplog.text


async def test_token_not_sent_to_another_host_on_redirect(
    emu: SlackEmulator, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    # httpx drops Authorization when a redirect leaves the origin: the stand-in then
    # answers with its login page, exactly as Slack would.
    file = await post_file(emu, "ref.png", png(), "image/png")
    side.redirect_to = file["url_private"]
    message = await refused(caplog, f"{side.url}/redirect", TOKEN, max_bytes=10_000, name="r.png")
    assert "login page" in message


async def test_oversized_refused_from_file_object_size(emu: SlackEmulator) -> None:
    file = await post_file(emu, "big.png", png(padding=300_000), "image/png")
    assert file_is_too_large(file, 100_000)
    assert not file_is_too_large(file, 10_000_000)
    assert not file_is_too_large({"id": "F1"}, 10)  # size unknown: the download caps it
    assert not file_is_too_large({"size": "huge"}, 10)


async def test_oversized_refused_by_content_length_without_reading(
    emu: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    data = png(padding=2_000_000)
    file = await post_file(emu, "big.png", data, "image/png")
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        message = await refused(
            caplog, file["url_private"], TOKEN, max_bytes=64_000, name="big.png", client=client
        )
    assert "`big.png` is 1.9 MB" in message and "limit" in message and "smaller" in message
    assert transport.read == 0


async def test_oversized_stream_stops_early(
    emu: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    data = png(padding=2_000_000)
    file = await post_file(emu, "big.png", data, "image/png")
    transport = CountingTransport(hide_length=True)  # like a chunked response
    async with httpx.AsyncClient(transport=transport) as client:
        message = await refused(
            caplog, file["url_private"], TOKEN, max_bytes=64_000, name="big.png", client=client
        )
    assert "`big.png` is larger than" in message and "limit" in message
    assert 64_000 < transport.read < len(data) // 2


async def test_missing_file_404(emu: SlackEmulator, caplog: pytest.LogCaptureFixture) -> None:
    url = f"{emu.base_url}files-pri/T0TEAM-F0MISSING/gone.png"
    message = await refused(caplog, url, TOKEN, max_bytes=10_000, name="gone.png")
    assert "`gone.png`" in message and "HTTP 404" in message
    assert "no longer exists" in message and "Post the image again" in message


async def test_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/files-pri/T0TEAM-F1/x.png"
    message = await refused(caplog, url, TOKEN, max_bytes=10_000, name="x.png")
    assert "couldn't download `x.png`" in message and "try posting it again" in message.lower()


async def test_timeout(side: Side, caplog: pytest.LogCaptureFixture) -> None:
    message = await refused(
        caplog, f"{side.url}/slow", TOKEN, max_bytes=10_000, name="slow.png", timeout=0.2
    )
    assert "took too long" in message and "`slow.png`" in message
