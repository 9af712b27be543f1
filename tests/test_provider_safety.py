"""Provider results that could hurt the bot: pixel bombs and gateways that echo our key.

Over loopback against the provider fakes (tests/fakes/): a result image's pixel count is
checked from its header before anything decodes it, and no error text or log record ever
carries the API key, whatever a response body says.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from core.models import GenerationState
from core.providers.base import (
    DEFAULT_MAX_IMAGE_PIXELS,
    ErrorKind,
    GenerationRequest,
    ProviderError,
)
from core.providers.openai import OpenAIProvider
from core.providers.results import check_pixels
from core.providers.toapis import ToAPIsProvider
from tests.conftest import OPENAI_KEY, TOAPIS_KEY
from tests.fakes import FakeResponse, png_bomb, png_bytes
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.toapis_server import FakeToAPIs, TaskStep
from tests.harness import Harness, block_text

# Pillow warns inside Image.open for images over its own guard (about 89 M pixels); the
# provider refuses them right after, which is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

BOMB = png_bomb(13_000, 13_000)  # about 20 KB; 169 M pixels once decoded


def req() -> GenerationRequest:
    return GenerationRequest(prompt="a lighthouse", width=1024, height=1024, aspect_ratio="1:1")


@pytest.fixture
async def openai(openai_fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider(OPENAI_KEY, openai_fake.root_url + "/v1", timeout=5)
    yield provider
    await provider.aclose()


@pytest.fixture
async def toapis(toapis_fake: FakeToAPIs) -> AsyncIterator[ToAPIsProvider]:
    provider = ToAPIsProvider(TOAPIS_KEY, toapis_fake.root_url, timeout=5)
    yield provider
    await provider.aclose()


async def _toapis_result(provider: ToAPIsProvider) -> object:
    submission = await provider.submit(req())
    return await provider.poll(submission.task_id, req())


# -- pixel caps ------------------------------------------------------------------------------


def _assert_refused_bomb(err: ProviderError) -> None:
    assert err.kind is ErrorKind.INVALID_REQUEST and not err.kind.retryable
    assert "13000 × 13000 pixels (169 megapixels)" in err.message
    assert "over 40 megapixels" in err.message and "MAX_IMAGE_PIXELS" in err.message


async def test_openai_b64_bomb_is_refused_before_decoding(
    openai_fake: FakeOpenAI, openai: OpenAIProvider
) -> None:
    openai_fake.image = BOMB
    with pytest.raises(ProviderError) as info:
        await openai.submit(req())
    _assert_refused_bomb(info.value)
    assert openai.max_image_pixels == DEFAULT_MAX_IMAGE_PIXELS == 40_000_000


async def test_openai_url_bomb_is_refused(openai_fake: FakeOpenAI, openai: OpenAIProvider) -> None:
    openai_fake.result_mode = "url"
    openai_fake.image = BOMB
    with pytest.raises(ProviderError) as info:
        await openai.submit(req())
    _assert_refused_bomb(info.value)
    assert len(openai_fake.calls("file")) == 1


async def test_toapis_downloaded_bomb_is_refused(
    toapis_fake: FakeToAPIs, toapis: ToAPIsProvider
) -> None:
    toapis_fake.task_script = (TaskStep("completed", 100),)
    toapis_fake.image = BOMB
    with pytest.raises(ProviderError) as info:
        await _toapis_result(toapis)
    _assert_refused_bomb(info.value)


async def test_the_cap_is_the_configured_one(
    openai_fake: FakeOpenAI, toapis_fake: FakeToAPIs
) -> None:
    openai_fake.image = png_bytes(16, 16)
    toapis_fake.image = png_bytes(16, 16)
    toapis_fake.task_script = (TaskStep("completed", 100),)
    base = openai_fake.root_url + "/v1"
    exact = OpenAIProvider(OPENAI_KEY, base, timeout=5, max_image_pixels=256)
    under = OpenAIProvider(OPENAI_KEY, base, timeout=5, max_image_pixels=255)
    small = ToAPIsProvider(TOAPIS_KEY, toapis_fake.root_url, timeout=5, max_image_pixels=255)
    try:
        status = (await exact.submit(req())).status
        assert status is not None and [i.data for i in status.images] == [openai_fake.image]
        with pytest.raises(ProviderError) as info:
            await under.submit(req())
        assert "16 × 16 pixels" in info.value.message
        with pytest.raises(ProviderError) as info:
            await _toapis_result(small)
        assert info.value.kind is ErrorKind.INVALID_REQUEST
        assert "16 × 16 pixels" in info.value.message
    finally:
        for provider in (exact, under, small):
            await provider.aclose()


async def test_over_pillows_own_guard_is_refused_too(openai_fake: FakeOpenAI) -> None:
    # 400 M pixels is over twice Pillow's Image.MAX_IMAGE_PIXELS: Image.open itself raises
    # DecompressionBombError, which becomes the same refusal even with a huge configured cap.
    openai_fake.image = png_bomb(20_000, 20_000, pixels=False)
    provider = OpenAIProvider(
        OPENAI_KEY, openai_fake.root_url + "/v1", timeout=5, max_image_pixels=10**12
    )
    try:
        with pytest.raises(ProviderError) as info:
            await provider.submit(req())
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    guard = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1_000_000  # Pillow raises over twice it
    assert f"more than {guard:.1f}".removesuffix(".0") + " megapixels" in info.value.message
    assert "MAX_IMAGE_PIXELS" in info.value.message
    assert "Pillow" in info.value.detail and "decompression bomb" in info.value.detail


async def test_b64_that_is_not_an_image_is_a_task_failure(
    openai_fake: FakeOpenAI, openai: OpenAIProvider
) -> None:
    openai_fake.image = b"<html>not an image</html>"
    with pytest.raises(ProviderError) as info:
        await openai.submit(req())
    assert info.value.kind is ErrorKind.TASK_FAILED
    assert "not an image" in info.value.message


def test_bomb_check_keeps_peak_memory_flat(tmp_path: Path) -> None:
    # In a fresh process, so the peak (ru_maxrss) belongs to this check alone.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(BOMB)
    script = (
        "import resource, sys\n"
        "from core.providers.base import ProviderError\n"
        "from core.providers.results import check_pixels\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    check_pixels(data, 'OpenAI', 40_000_000)\n"
        "    print('accepted')\n"
        "except ProviderError as err:\n"
        "    print(err.kind.value)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, str(bomb)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    verdict, grown_kb = done.stdout.split()
    assert verdict == "invalid_request"
    assert int(grown_kb) < 100 * 1024  # kilobytes on Linux: under +100 MB


def test_check_pixels_returns_the_header_size() -> None:
    assert check_pixels(png_bomb(300, 200), "OpenAI", 60_000) == (300, 200)
    with pytest.raises(ProviderError):
        check_pixels(png_bomb(300, 201), "OpenAI", 60_000)


# -- secrets never leave through errors or logs ----------------------------------------------


def _leaks(secret: str, records: list[logging.LogRecord], *texts: str) -> list[str]:
    """Every log record and text in which `secret` appears (formatted, args, exc text)."""
    found = [t for t in texts if secret in t]
    for record in records:
        blob = " ".join(
            [record.getMessage(), repr(record.args), record.exc_text or "", str(record.msg)]
        )
        if secret in blob:
            found.append(blob)
    return found


def _error_texts(err: ProviderError) -> tuple[str, str, str]:
    return err.message, err.detail, str(err)


async def test_openai_gateway_echoing_the_key_with_200_is_redacted(
    openai_fake: FakeOpenAI, openai: OpenAIProvider, caplog: pytest.LogCaptureFixture
) -> None:
    openai_fake.enqueue("generations", FakeResponse.echo_gateway())
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        await openai.submit(req())
    [call] = openai_fake.calls("generations")
    assert call.headers["Authorization"] == f"Bearer {OPENAI_KEY}"  # the page did echo it
    err = info.value
    assert err.kind is ErrorKind.UNAVAILABLE
    assert "Request headers" in err.detail and "Authorization" in err.detail
    assert _leaks(OPENAI_KEY, caplog.records, *_error_texts(err)) == []


@pytest.mark.parametrize("status", [200, 401, 429, 502])
async def test_toapis_gateway_echoing_the_key_is_redacted(
    toapis_fake: FakeToAPIs,
    toapis: ToAPIsProvider,
    caplog: pytest.LogCaptureFixture,
    status: int,
) -> None:
    toapis_fake.enqueue("submit", FakeResponse.echo_gateway(status))
    with caplog.at_level(logging.DEBUG), pytest.raises(ProviderError) as info:
        await toapis.submit(req())
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "Authorization" in info.value.detail
    assert _leaks(TOAPIS_KEY, caplog.records, *_error_texts(info.value)) == []


async def test_toapis_task_error_quoting_the_key_is_redacted(
    toapis_fake: FakeToAPIs, toapis: ToAPIsProvider
) -> None:
    # A provider that quotes what it got in its own error fields, JSON and 2xx alike.
    quoted = f"bad header Authorization: {TOAPIS_KEY}"
    toapis_fake.task_script = (TaskStep("failed", 0, "server_error", quoted),)
    submission = await toapis.submit(req())
    status = await toapis.poll(submission.task_id, req())
    assert status.state == "failed" and status.error is not None
    assert "bad header" in status.error.message
    assert _leaks(TOAPIS_KEY, [], *_error_texts(status.error)) == []

    toapis_fake.enqueue("submit", FakeResponse(json={"object": "task", "note": quoted}))
    with pytest.raises(ProviderError) as info:
        await toapis.submit(req())
    assert "no id" in info.value.detail
    assert _leaks(TOAPIS_KEY, [], *_error_texts(info.value)) == []


async def test_echoing_gateway_end_to_end_puts_the_key_nowhere(
    tmp_path: Path, openai_fake: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    openai_fake.enqueue("generations", FakeResponse.echo_gateway())
    harness = await Harness(
        tmp_path,
        image_provider="openai",
        openai_api_key=OPENAI_KEY,
        openai_base_url=openai_fake.root_url + "/v1",
        job_max_attempts=1,
    ).start()
    try:
        with caplog.at_level(logging.DEBUG):
            await harness.imagine("a lighthouse")
            [generation] = await harness.generations()
            failed = await harness.wait_state(generation.id, GenerationState.FAILED)
            thread = harness.thread(await harness.thread_of(generation.id))
        assert failed.error_kind == "unavailable"
        assert any("could not be read" in block_text(m) for m in thread)
        sent_to_slack = json.dumps([call.params for call in harness.emulator.calls])
        stored = json.dumps([failed.error, failed.error_kind], default=str)
        # The engine logs the provider's error detail (the body snippet), redacted.
        assert any("Request headers" in r.getMessage() for r in caplog.records)
        assert _leaks(OPENAI_KEY, caplog.records, sent_to_slack, stored) == []
    finally:
        await harness.close()


async def test_a_key_cut_short_by_truncation_is_still_redacted(
    toapis_fake: FakeToAPIs, toapis: ToAPIsProvider
) -> None:
    # Messages are cut to 200 characters for the user: the cut must not leave half a key.
    said = "x" * 190 + " " + TOAPIS_KEY + " was rejected"
    toapis_fake.enqueue("submit", FakeResponse.error(400, "invalid_request", said))
    with pytest.raises(ProviderError) as info:
        await toapis.submit(req())
    assert info.value.kind is ErrorKind.INVALID_REQUEST and "xxx" in info.value.message
    toapis_fake.task_script = (TaskStep("failed", 0, "server_error", said),)
    submission = await toapis.submit(req())
    status = await toapis.poll(submission.task_id, req())
    assert status.error is not None and "xxx" in status.error.message
    for err in (info.value, status.error):
        assert [t for t in _error_texts(err) if TOAPIS_KEY[:6] in t] == []
