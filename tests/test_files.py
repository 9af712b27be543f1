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
from bot.messages import image_rejected
from core.config import Origin, parse_origin
from core.images import ImageRejected, check_reference, limits_for

SECRET = "test-signing-secret"
TOKEN = "xoxb-files-test-token"


def png(width: int = 8, height: int = 6, padding: int = 0) -> bytes:
    """A PNG; ``padding`` extra bytes after IEND make it large without slow encoding."""
    buf = io.BytesIO()
    Image.new("RGBA", (width, height), (0, 128, 255, 255)).save(buf, format="PNG")
    return buf.getvalue() + bytes(padding)


class Side:
    """A tiny aiohttp app on its own port (another origin than the stand-in): receives the
    emulator's event deliveries, serves a slow and a redirecting file URL and a PNG at any
    other path, and records the headers of every GET it receives."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.redirect_to = ""
        self.url = ""
        self.seen: list[tuple[str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None

    def got_token(self, token: str = TOKEN) -> bool:
        """True when any request received here carried ``token`` in any header."""
        return any(token in value for _path, headers in self.seen for value in headers.values())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/events", self._events)
        app.router.add_get("/files-pri/T0-F0SLOW/slow.png", self._slow)
        app.router.add_get("/files-pri/T0-F0REDIR/r.png", self._redirect)
        app.router.add_get("/{tail:.*}", self._any)
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

    async def _any(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers)))
        return web.Response(body=png(), content_type="image/png")

    async def _slow(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers)))
        await self.release.wait()
        return web.Response(body=png(), content_type="image/png")

    async def _redirect(self, request: web.Request) -> web.Response:
        self.seen.append((request.path_qs, dict(request.headers)))
        raise web.HTTPFound(self.redirect_to)


def allowed(*urls: str) -> frozenset[Origin]:
    """The allowlist of origins for ``urls`` (as Settings.file_origins() gives it)."""
    return frozenset(parse_origin(u) for u in urls)


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
    message = image_rejected(info.value)
    assert TOKEN not in message and TOKEN not in caplog.text
    assert "\n" not in message
    return message


async def test_download_with_token_returns_the_bytes(emu: SlackEmulator) -> None:
    data = png(32, 24)
    file = await post_file(emu, "ref.png", data, "image/png")
    transport = CountingTransport()
    async with httpx.AsyncClient(transport=transport) as client:
        got = await download_slack_file(
            file["url_private"],
            TOKEN,
            origins=allowed(emu.base_url),
            max_bytes=1_000_000,
            name="ref.png",
            client=client,
        )
    assert got == data
    assert transport.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"
    checked = check_reference(got, "ref.png", limits_for("openai"))
    assert (checked.width, checked.height, checked.mime) == (32, 24, "image/png")
    # Without a client of its own, one is made and closed.
    got2 = await download_slack_file(
        file["url_private_download"],
        TOKEN,
        origins=allowed(emu.base_url),
        max_bytes=1_000_000,
        name="ref.png",
    )
    assert got2 == data


async def test_wrong_token_login_page_refused(
    emu: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    file = await post_file(emu, "ref.png", png(), "image/png")
    message = await refused(
        caplog,
        file["url_private"],
        "xoxb-wrong",
        origins=allowed(emu.base_url),
        max_bytes=1_000_000,
        name="ref.png",
    )
    assert message.startswith("I couldn't download `ref.png`: Slack sent a login page")
    assert "files:read" in message and "member of this channel" in message
    assert "xoxb-wrong" not in message and "xoxb-wrong" not in caplog.text


async def test_redirect_within_the_allowlist_is_followed_with_the_token(
    emu: SlackEmulator, side: Side
) -> None:
    data = png(20, 10)
    file = await post_file(emu, "ref.png", data, "image/png")
    side.redirect_to = file["url_private"]
    got = await download_slack_file(
        f"{side.url}/files-pri/T0-F0REDIR/r.png",
        TOKEN,
        origins=allowed(emu.base_url, side.url),
        max_bytes=1_000_000,
        name="r.png",
    )
    assert got == data


async def test_redirect_to_a_foreign_origin_is_not_followed(
    emu: SlackEmulator, side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    # The stand-in is allowed; the side server (same host, another port) is not. A file URL
    # on the stand-in that redirects there must stop at the redirect.
    foreign = Side()
    await foreign.start()
    try:
        side.redirect_to = f"{foreign.url}/files-pri/T0-F0X/x.png"
        message = await refused(
            caplog,
            f"{side.url}/files-pri/T0-F0REDIR/r.png",
            TOKEN,
            origins=allowed(side.url),
            max_bytes=10_000,
            name="r.png",
        )
        assert "redirected away from Slack's file storage" in message
        assert foreign.seen == [] and not foreign.got_token()
        assert side.got_token()  # the allowed hop did get it
        # A redirect to an allowed origin but a Web API path is refused the same way.
        side.redirect_to = f"{emu.api_url}chat.postMessage?channel=C0DESIGN&text=hi"
        await refused(
            caplog,
            f"{side.url}/files-pri/T0-F0REDIR/r.png",
            TOKEN,
            origins=allowed(side.url, emu.base_url),
            max_bytes=10_000,
            name="r.png",
        )
        assert not [c for c in emu.calls if c.method == "chat.postMessage"]
    finally:
        await foreign.stop()


@pytest.mark.parametrize(
    "make_url",
    [
        lambda emu, side: f"{side.url}/files-pri/T0-F0X/x.png",  # foreign port, same host
        lambda emu, side: f"{emu.api_url}chat.postMessage?channel=C0DESIGN&text=pwned",
        lambda emu, side: f"{emu.base_url}files-pri/../api/chat.postMessage?channel=C0DESIGN",
        lambda emu, side: f"{emu.base_url}files-pri/T0-F1/%2e%2e/%2e%2e/api/auth.test",
        lambda emu, side: emu.base_url.replace("http://", "http://user@") + "files-pri/T-F/x",
        lambda emu, side: emu.base_url.replace("http://", "https://") + "files-pri/T-F/x",
    ],
)
async def test_token_never_sent_outside_slack_file_urls(
    emu: SlackEmulator, side: Side, caplog: pytest.LogCaptureFixture, make_url
) -> None:  # type: ignore[no-untyped-def]
    url = make_url(emu, side)
    before = len(emu.calls)
    message = await refused(
        caplog, url, TOKEN, origins=allowed(emu.base_url), max_bytes=10_000, name="x.png"
    )
    assert "link doesn't point to Slack's file storage" in message
    assert side.seen == [] and len(emu.calls) == before


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
            caplog,
            file["url_private"],
            TOKEN,
            origins=allowed(emu.base_url),
            max_bytes=64_000,
            name="big.png",
            client=client,
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
            caplog,
            file["url_private"],
            TOKEN,
            origins=allowed(emu.base_url),
            max_bytes=64_000,
            name="big.png",
            client=client,
        )
    assert "`big.png` is larger than" in message and "limit" in message
    assert 64_000 < transport.read < len(data) // 2


async def test_missing_file_404(emu: SlackEmulator, caplog: pytest.LogCaptureFixture) -> None:
    url = f"{emu.base_url}files-pri/T0TEAM-F0MISSING/gone.png"
    message = await refused(
        caplog, url, TOKEN, origins=allowed(emu.base_url), max_bytes=10_000, name="gone.png"
    )
    assert "`gone.png`" in message and "HTTP 404" in message
    assert "no longer exists" in message and "Post the image again" in message


async def test_connection_refused(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/files-pri/T0TEAM-F1/x.png"
    message = await refused(
        caplog, url, TOKEN, origins=allowed(url), max_bytes=10_000, name="x.png"
    )
    assert "couldn't download `x.png`" in message and "try posting it again" in message.lower()


async def test_timeout(side: Side, caplog: pytest.LogCaptureFixture) -> None:
    message = await refused(
        caplog,
        f"{side.url}/files-pri/T0-F0SLOW/slow.png",
        TOKEN,
        origins=allowed(side.url),
        max_bytes=10_000,
        name="slow.png",
        timeout=0.2,
    )
    assert "took too long" in message and "`slow.png`" in message
