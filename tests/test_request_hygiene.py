"""Garbage at `POST /slack/events` gets a 4xx, never a 500, a traceback, or its body in
the log; a slow sender is cut off."""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import pytest

from bot import http_guard
from bot.app import bound_port
from tests.harness import Harness

FORM = "application/x-www-form-urlencoded"
FORGED = "INFO core.engine: job 1 approved by admin"


def _url(harness: Harness) -> str:
    assert harness.runner
    return f"http://127.0.0.1:{bound_port(harness.runner)}/slack/events"


def _assert_clean_log(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for record in caplog.records:
        assert record.exc_info is None, record.getMessage()
        message = record.getMessage()
        assert "Traceback" not in message
        for secret in secrets:
            assert secret not in message
    assert sum(len(r.getMessage()) for r in caplog.records) < 200 * max(len(caplog.records), 1)


SIGNED_GARBAGE = [
    (b"payload=%7Bx", FORM, 400),
    (b"payload=null", FORM, 400),
    (b"null", "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b"{not json", "application/json", 400),
    (b"\xff\xfe\xfa text=hi", FORM, 400),
]


@pytest.mark.parametrize(("body", "content_type", "status"), SIGNED_GARBAGE)
async def test_signed_garbage_gets_400_and_no_traceback(
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    delivery = await harness.emulator.send_raw(body, content_type)
    assert delivery.status == status
    _assert_clean_log(caplog)


async def test_unsigned_bodies_get_401_and_are_never_logged(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _url(harness)
    marker = "UNSIGNED-BODY-MARKER"
    body = f"payload=%7Bx&{marker}=1\n{FORGED}\n" + "x" * 500_000
    async with aiohttp.ClientSession() as http:
        cases: list[dict[str, str]] = [
            {},  # no signature headers at all
            {"X-Slack-Request-Timestamp": "not-a-number", "X-Slack-Signature": "v0=00"},
            {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=00"},
            {"X-Slack-Request-Timestamp": "1" * 40, "X-Slack-Signature": "v0=00"},
        ]
        for headers in cases:
            async with http.post(
                url, data=body.encode(), headers={"Content-Type": FORM, **headers}
            ) as res:
                assert res.status == 401, headers
    _assert_clean_log(caplog, marker, FORGED)
    assert not any(FORGED in r.getMessage() for r in caplog.records)


async def test_a_non_numeric_timestamp_is_401_even_when_signed(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    delivery = await harness.emulator.send_raw(b"text=hi", FORM, timestamp="12ab")
    assert delivery.status == 401
    _assert_clean_log(caplog)


async def test_a_huge_body_is_refused(harness: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    huge = b"text=" + b"x" * (http_guard.MAX_BODY_BYTES + 1)
    delivery = await harness.emulator.send_raw(huge, FORM)
    assert delivery.status == 413
    _assert_clean_log(caplog, "xxxxxxxxxx")


async def test_good_requests_still_work(harness: Harness) -> None:
    delivery = await harness.imagine("a red kite")
    assert delivery.status == 200
    await harness.wait_generations(1)


async def test_a_slow_sender_is_cut_off(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(http_guard, "READ_TIMEOUT_SECONDS", 0.5)
    assert harness.runner
    port = bound_port(harness.runner)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"X-Slack-Request-Timestamp: 1\r\nX-Slack-Signature: v0=00\r\n"
            b"Content-Length: 1000\r\n\r\ntext=slo"
        )
        await writer.drain()
        started = time.monotonic()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        assert time.monotonic() - started < 5
    finally:
        writer.close()
    _assert_clean_log(caplog)
