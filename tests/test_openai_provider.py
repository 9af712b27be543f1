"""OpenAIProvider against the local fake OpenAI Images API (tests/fakes/openai_server.py)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from core.providers.base import ErrorKind, GenerationRequest, ImageInput, ProviderError
from core.providers.http import redact
from core.providers.openai import OpenAIProvider, build_prompt
from tests.fakes import FakeResponse, png_bytes
from tests.fakes.openai_server import FakeOpenAI

KEY = "sk-test-key"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    server = FakeOpenAI(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    instance = OpenAIProvider(api_key=KEY, base_url=fake.root_url + "/v1", model=None, timeout=5)
    yield instance
    await instance.aclose()


def req(**overrides: object) -> GenerationRequest:
    values: dict[str, object] = {
        "prompt": "a red fox in the snow",
        "width": 1024,
        "height": 1024,
        "aspect_ratio": "1:1",
    }
    values.update(overrides)
    return GenerationRequest(**values)  # type: ignore[arg-type]


async def test_generation_sends_documented_json_and_decodes_b64(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    request = req(
        width=1600, height=900, aspect_ratio="16:9", n=2, quality="high", negative_prompt="text"
    )
    submission = await provider.submit(request)

    [call] = fake.requests
    assert (call.method, call.path) == ("POST", "/v1/images/generations")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.json == {
        "model": "gpt-image-1",
        "prompt": "a red fox in the snow\n\nDo not include: text.",
        "n": 2,
        "size": "1536x1024",
        "quality": "high",
    }
    assert submission.task_id.startswith("openai-") and len(submission.task_id) == 39
    status = submission.status
    assert status is not None and status.state == "completed"
    assert [image.data for image in status.images] == [fake.image, fake.image]
    assert status.images[0].mime == "image/png"
    assert status.usage["total_tokens"] == 100
    assert status.note == "Asked for 16:9; OpenAI makes 1536x1024 (3:2), the closest size."
    assert provider.label == "OpenAI gpt-image-1" and provider.name == "openai"
    assert await provider.cancel(submission.task_id) is False


async def test_exact_ratio_has_no_note_and_no_quality_field(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    status = (await provider.submit(req(width=832, height=1248, aspect_ratio="2:3"))).status
    assert status is not None and status.note is None
    assert fake.requests[0].json["size"] == "1024x1536"
    assert "quality" not in fake.requests[0].json


async def test_configured_and_requested_model_are_sent_as_is(fake: FakeOpenAI) -> None:
    provider = OpenAIProvider(KEY, fake.root_url + "/v1", model="gpt-image-9-preview", timeout=5)
    try:
        await provider.submit(req())
        await provider.submit(req(model="dall-e-3"))
    finally:
        await provider.aclose()
    assert provider.label == "OpenAI gpt-image-9-preview"
    assert [call.json["model"] for call in fake.requests] == ["gpt-image-9-preview", "dall-e-3"]


async def test_url_results_are_downloaded_without_our_key(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.result_mode = "url"
    fake.usage = None
    status = (await provider.submit(req())).status
    assert status is not None
    assert [image.data for image in status.images] == [fake.image]
    assert status.usage == {}
    [download] = fake.calls("file")
    assert download.method == "GET" and "Authorization" not in download.headers


async def test_expired_result_url_is_a_task_failure(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.result_mode = "url"
    fake.enqueue("file", FakeResponse(status=403, body=b"<Error>AuthenticationFailed</Error>"))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    assert info.value.kind is ErrorKind.TASK_FAILED
    assert "403" in info.value.message


async def test_references_and_mask_go_to_edits_as_multipart(
    fake: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    ref1 = tmp_path / "ref1.png"
    ref1.write_bytes(png_bytes(4, 4))
    ref2 = tmp_path / "ref2.jpg"
    ref2.write_bytes(b"\xff\xd8\xff\xe0fake-jpeg")
    mask = tmp_path / "mask.png"
    mask.write_bytes(png_bytes(4, 4, (0, 0, 0, 0)))
    request = req(
        references=(ImageInput(ref1, "image/png"), ImageInput(ref2, "image/jpeg")),
        mask=ImageInput(mask, "image/png"),
        quality="low",
    )
    status = (await provider.submit(request)).status
    assert status is not None and status.state == "completed"

    [call] = fake.requests
    assert (call.method, call.path) == ("POST", "/v1/images/edits")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.headers["Content-Type"].startswith("multipart/form-data")
    images = call.parts_named("image[]")
    assert [(p.filename, p.content_type, p.data) for p in images] == [
        ("ref1.png", "image/png", ref1.read_bytes()),
        ("ref2.jpg", "image/jpeg", ref2.read_bytes()),
    ]
    [mask_part] = call.parts_named("mask")
    assert (mask_part.content_type, mask_part.data) == ("image/png", mask.read_bytes())
    assert call.form() == {
        "model": "gpt-image-1",
        "prompt": "a red fox in the snow",
        "n": "1",
        "size": "1024x1024",
        "quality": "low",
    }


async def test_missing_reference_file_is_an_invalid_request(
    fake: FakeOpenAI, provider: OpenAIProvider, tmp_path: Path
) -> None:
    request = req(references=(ImageInput(tmp_path / "gone.png", "image/png"),))
    with pytest.raises(ProviderError) as info:
        await provider.submit(request)
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    assert fake.requests == []


async def test_poll_after_restart_reruns_the_request(fake: FakeOpenAI) -> None:
    """A new instance (after a restart) polling an old task id runs the request again."""
    fresh = OpenAIProvider(KEY, fake.root_url + "/v1", None, timeout=5)
    try:
        status = await fresh.poll("openai-0123456789abcdef0123456789abcdef", req(n=1))
    finally:
        await fresh.aclose()
    assert status.state == "completed" and [i.data for i in status.images] == [fake.image]
    assert [call.path for call in fake.requests] == ["/v1/images/generations"]


def _http_date(seconds_from_now: int) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds_from_now), usegmt=True)


@pytest.mark.parametrize(
    ("response", "kind", "in_message", "retry_after"),
    [
        (
            FakeOpenAI.invalid_request("Invalid value: '1792x1024'.", param="size"),
            ErrorKind.INVALID_REQUEST,
            ["`size`", "Invalid value: '1792x1024'."],
            None,
        ),
        (
            FakeOpenAI.moderation_blocked(),
            ErrorKind.CONTENT_POLICY,
            ["safety", "Rephrase"],
            None,
        ),
        (
            FakeResponse.error(
                400, "content_policy_violation", "Rejected", type="invalid_request_error"
            ),
            ErrorKind.CONTENT_POLICY,
            ["safety"],
            None,
        ),
        (FakeOpenAI.quota_error(), ErrorKind.QUOTA_EXHAUSTED, ["admin", "quota"], None),
        (
            FakeOpenAI.rate_limited({"retry-after-ms": "1500", "retry-after": "9"}),
            ErrorKind.RATE_LIMITED,
            ["rate limiting", "retried automatically"],
            1.5,
        ),
        (
            FakeOpenAI.rate_limited({"Retry-After": "7"}),
            ErrorKind.RATE_LIMITED,
            ["rate limiting"],
            7.0,
        ),
        (FakeOpenAI.rate_limited(), ErrorKind.RATE_LIMITED, ["rate limiting"], None),
        (
            FakeResponse.error(500, None, "The server had an error", type="server_error"),
            ErrorKind.UNAVAILABLE,
            ["HTTP 500", "retried automatically"],
            None,
        ),
        (
            FakeResponse.error(503, None, "Overloaded", headers={"Retry-After": "4"}),
            ErrorKind.UNAVAILABLE,
            ["HTTP 503"],
            4.0,
        ),
        (FakeResponse.html(504), ErrorKind.UNAVAILABLE, ["HTTP 504"], None),
        (FakeResponse.html(502), ErrorKind.UNAVAILABLE, ["HTTP 502"], None),
        (
            FakeResponse.error(
                404,
                "model_not_found",
                "The model `gpt-image-0` does not exist.",
                type="invalid_request_error",
            ),
            ErrorKind.INVALID_REQUEST,
            ["gpt-image-1", "--model", "IMAGE_MODEL"],
            None,
        ),
        (
            FakeResponse.error(403, None, "Your organization must be verified"),
            ErrorKind.AUTHENTICATION,
            ["admin", "OPENAI_API_KEY"],
            None,
        ),
    ],
)
async def test_error_mapping(
    fake: FakeOpenAI,
    provider: OpenAIProvider,
    response: FakeResponse,
    kind: ErrorKind,
    in_message: list[str],
    retry_after: float | None,
) -> None:
    fake.enqueue("generations", response)
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    err = info.value
    assert err.kind is kind
    for text in in_message:
        assert text in err.message
    assert err.retry_after == retry_after
    assert f"HTTP {response.status}" in err.detail
    assert KEY not in err.message and KEY not in err.detail


async def test_retry_after_http_date(fake: FakeOpenAI, provider: OpenAIProvider) -> None:
    fake.enqueue("generations", FakeOpenAI.rate_limited({"Retry-After": _http_date(30)}))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    assert info.value.retry_after is not None and 27 <= info.value.retry_after <= 30


async def test_wrong_key_is_authentication_and_never_echoed(fake: FakeOpenAI) -> None:
    secret = "sk-proj-WRONGabcdefghijklmnop"
    provider = OpenAIProvider(secret, fake.root_url + "/v1", None, timeout=5)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.submit(req())
    finally:
        await provider.aclose()
    err = info.value
    assert err.kind is ErrorKind.AUTHENTICATION
    assert "admin" in err.message and "OPENAI_API_KEY" in err.message
    assert "code=invalid_api_key" in err.detail
    for text in (err.message, err.detail, str(err)):
        assert secret not in text and "sk-proj-" not in text and "mnop" not in text
    assert "***" in err.detail


def test_redact_removes_the_secret_and_key_like_text() -> None:
    text = "key opaque-secret-1 and sk-abc12****wxyz and Bearer abc.def"
    assert redact(text, "opaque-secret-1") == "key *** and *** and ***"


async def test_non_json_success_body_is_unavailable(
    fake: FakeOpenAI, provider: OpenAIProvider
) -> None:
    fake.enqueue("generations", FakeResponse(status=200, body=b"<html>oops</html>"))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    assert info.value.kind is ErrorKind.UNAVAILABLE


async def test_timeout_is_unavailable(fake: FakeOpenAI) -> None:
    provider = OpenAIProvider(KEY, fake.root_url + "/v1", None, timeout=0.05)
    fake.enqueue("generations", FakeResponse.slow(0.2))
    try:
        with pytest.raises(ProviderError) as info:
            await provider.submit(req())
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "did not answer within 0.05 s" in info.value.message


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAIProvider(KEY, f"http://127.0.0.1:{port}/v1", None, timeout=1)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.submit(req())
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "Could not reach OpenAI" in info.value.message


def test_build_prompt_without_negative() -> None:
    assert build_prompt(req(prompt="  a cat ")) == "a cat"
