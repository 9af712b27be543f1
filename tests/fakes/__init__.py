"""Local stand-ins for the image providers' HTTP APIs (aiohttp on 127.0.0.1, port 0).

Each fake records every request it receives (`fake.requests`, a list of `RecordedRequest`)
and answers with the shapes the provider documents. Tests script it with `fake.enqueue(route,
FakeResponse(...))`: scripted responses for a route are used first, in order, one per request;
when the queue is empty the fake answers normally. Common scripted answers:

    FakeResponse.error(429, "rate_limit_exceeded", "Slow down", headers={"Retry-After": "3"})
    FakeResponse.html(504)              # a gateway's HTML error page
    FakeResponse.slow(1.0)              # the normal answer, after a delay (seconds)
    FakeResponse.echo_gateway()         # 200 text/html echoing the request headers (a proxy
                                        # debug page), Authorization included
    FakeResponse(status=200, body=b"not json")

Usage:

    fake = FakeOpenAI(api_key="sk-test")
    base_url = await fake.start()       # e.g. "http://127.0.0.1:53121/v1"
    ...
    await fake.stop()

See `openai_server.FakeOpenAI` and `toapis_server.FakeToAPIs` for their routes.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy


def png_bytes(
    width: int = 8, height: int = 8, color: tuple[int, int, int, int] = (200, 80, 40, 255)
) -> bytes:
    """A small RGBA PNG (Pillow), used as the fakes' generated image and as test input."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def png_bomb(width: int, height: int, *, pixels: bool = True) -> bytes:
    """A small PNG that claims `width` x `height` pixels (1-bit grey, all black).

    With `pixels` the image data is complete and valid (decoding it needs width x height
    bytes of memory: 13,000 x 13,000 is about 20 KB on disk, 169 MB decoded); without, only
    the header is right (enough for anything that reads the size and decodes nothing).
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then the packed pixels
    data = b"".join(packer.compress(row) for _ in range(height if pixels else 1))
    data += packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


@dataclass
class Part:
    """One multipart/form-data part: field `name`, `filename` (None for plain fields),
    `content_type` and the raw `data` bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        """The part's bytes as UTF-8 text (for plain form fields)."""
        return self.data.decode("utf-8")


@dataclass
class RecordedRequest:
    """A request as the fake received it.

    Attributes:
        route: the fake's route name ("generations", "edits", "submit", "poll", "upload",
            "file", …).
        method, path: e.g. "POST", "/v1/images/generations".
        headers: case-insensitive request headers.
        body: the raw body bytes.
        json: the parsed JSON body, or None.
        parts: multipart parts in order (empty unless multipart/form-data).
    """

    route: str
    method: str
    path: str
    headers: CIMultiDictProxy[str]
    body: bytes
    json: Any = None
    parts: list[Part] = field(default_factory=list)

    def parts_named(self, name: str) -> list[Part]:
        """All multipart parts called `name` (e.g. "image[]"), in order."""
        return [part for part in self.parts if part.name == name]

    def form(self) -> dict[str, str]:
        """The plain (non-file) multipart fields as {name: text}."""
        return {part.name: part.text for part in self.parts if part.filename is None}


@dataclass
class FakeResponse:
    """A scripted answer: `status`, `json` (sent as JSON) or raw `body`, extra `headers`,
    and `delay` seconds before answering. With `passthrough=True` the fake's normal answer is
    sent after `delay` (see `slow`)."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str | None = None
    passthrough: bool = False
    echo: bool = False

    @classmethod
    def error(
        cls,
        status: int,
        code: str | int | None,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> FakeResponse:
        """The documented error body `{"error": {"message", "type", "param", "code"}}`."""
        payload: dict[str, Any] = {"message": message, "code": code}
        if type is not None:
            payload["type"] = type
        if param is not None:
            payload["param"] = param
        return cls(status=status, json={"error": payload}, headers=dict(headers or {}))

    @classmethod
    def html(cls, status: int = 504) -> FakeResponse:
        """A gateway's HTML error page (as nginx / Cloudflare send for 502 and 504)."""
        page = (
            f"<html><head><title>{status} Gateway Time-out</title></head><body>"
            f"<center><h1>{status} Gateway Time-out</h1></center><hr><center>nginx</center>"
            "</body></html>"
        )
        return cls(status=status, body=page.encode(), content_type="text/html")

    @classmethod
    def echo_gateway(cls, status: int = 200) -> FakeResponse:
        """A misconfigured gateway's debug page: `status` (200 by default) and text/html that
        echoes every request header, Authorization included (see `to_web`)."""
        return cls(status=status, content_type="text/html", echo=True)

    @classmethod
    def slow(cls, seconds: float) -> FakeResponse:
        """The fake's normal answer, after `seconds`."""
        return cls(delay=seconds, passthrough=True)

    def to_web(self, request: RecordedRequest | None = None) -> web.Response:
        """This scripted answer as an aiohttp response (an `echo` answer lists the headers
        of `request`)."""
        if self.echo and request is not None:
            lines = "".join(
                f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                for k, v in request.headers.items()
            )
            page = f"<html><body><h1>Request headers</h1><table>{lines}</table></body></html>"
            return web.Response(status=self.status, text=page, content_type="text/html")
        if self.json is not None:
            return web.json_response(self.json, status=self.status, headers=self.headers)
        return web.Response(
            status=self.status,
            body=self.body if self.body is not None else b"",
            headers=self.headers,
            content_type=self.content_type,
        )


class FakeServer:
    """Base of the fakes: an aiohttp app on 127.0.0.1:0 with recording and scripting.

    Subclasses add routes with `self._route(method, path, name, handler)`; the handler gets
    the `RecordedRequest` and returns the normal answer.
    """

    prefix = ""  # appended to the root URL by start() (e.g. "/v1" for OpenAI)

    def __init__(self, api_key: str | None = "test-key") -> None:
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.root_url = ""
        self._queues: dict[str, list[FakeResponse]] = {}
        self._app = web.Application(client_max_size=64 * 1024 * 1024)
        self._runner: web.AppRunner | None = None

    # -- test API --------------------------------------------------------------------------

    async def start(self) -> str:
        """Start serving; returns the base URL to configure the provider with."""
        self._runner = web.AppRunner(self._app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.root_url = f"http://127.0.0.1:{port}"
        return self.root_url + self.prefix

    async def stop(self) -> None:
        """Stop serving and close connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def enqueue(self, route: str, *responses: FakeResponse) -> None:
        """Answer the next requests on `route` with `responses`, in order."""
        self._queues.setdefault(route, []).extend(responses)

    def calls(self, route: str) -> list[RecordedRequest]:
        """The recorded requests on `route`, in order."""
        return [request for request in self.requests if request.route == route]

    # -- for subclasses --------------------------------------------------------------------

    def _route(self, method: str, path: str, name: str, handler: Any, *, auth: bool = True) -> None:
        async def serve(request: web.Request) -> web.StreamResponse:
            recorded = await _record(name, request)
            self.requests.append(recorded)
            queue = self._queues.get(name)
            scripted = queue.pop(0) if queue else None
            if scripted is not None and scripted.delay:
                await asyncio.sleep(scripted.delay)
            if scripted is not None and not scripted.passthrough:
                return scripted.to_web(recorded)
            if auth and not self._authorized(recorded):
                return self._unauthorized(recorded)
            return await handler(recorded, request)

        self._app.router.add_route(method, path, serve)

    def _authorized(self, request: RecordedRequest) -> bool:
        return self.api_key is None or request.headers.get("Authorization") == (
            f"Bearer {self.api_key}"
        )

    def _unauthorized(self, request: RecordedRequest) -> web.Response:
        return web.json_response(
            {"error": {"message": "Invalid API key", "code": "unauthorized"}}, status=401
        )


async def _record(name: str, request: web.Request) -> RecordedRequest:
    headers = CIMultiDictProxy(CIMultiDict(request.headers))
    if request.content_type == "multipart/form-data":
        parts: list[Part] = []
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            data = await part.read()  # type: ignore[union-attr]
            parts.append(
                Part(
                    name=part.name or "",
                    filename=part.filename,
                    content_type=part.headers.get("Content-Type"),
                    data=bytes(data),
                )
            )
        return RecordedRequest(name, request.method, request.path, headers, b"", None, parts)
    body = await request.read()
    parsed: Any = None
    if body and request.content_type == "application/json":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    return RecordedRequest(name, request.method, request.path, headers, body, parsed)
