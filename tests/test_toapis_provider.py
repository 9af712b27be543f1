"""ToAPIsProvider against the local fake ToAPIs task API, plus the shared HTTP helpers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.providers.base import ErrorKind, GenerationRequest, ImageInput, ProviderError
from core.providers.http import parse_error_body, parse_retry_after
from core.providers.toapis import ToAPIsProvider
from tests.fakes import FakeResponse, png_bytes
from tests.fakes.toapis_server import FakeToAPIs, TaskStep

KEY = "toapis-test-key"
NOW = 1_750_000_000.0


@pytest.fixture
async def fake() -> AsyncIterator[FakeToAPIs]:
    server = FakeToAPIs(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


def make(fake: FakeToAPIs, key: str = KEY, timeout: float = 5) -> ToAPIsProvider:
    return ToAPIsProvider(key, fake.root_url, None, timeout=timeout, clock=lambda: NOW)


@pytest.fixture
async def provider(fake: FakeToAPIs) -> AsyncIterator[ToAPIsProvider]:
    instance = make(fake)
    yield instance
    await instance.aclose()


def req(**overrides: object) -> GenerationRequest:
    values: dict[str, object] = {
        "prompt": "a lighthouse at dusk",
        "width": 1024,
        "height": 1024,
        "aspect_ratio": "1:1",
    }
    values.update(overrides)
    return GenerationRequest(**values)  # type: ignore[arg-type]


async def test_submit_sends_documented_json_and_returns_task_id(
    fake: FakeToAPIs, provider: ToAPIsProvider
) -> None:
    submission = await provider.submit(
        req(width=1600, height=900, aspect_ratio="16:9", n=4, negative_prompt="boats")
    )
    [call] = fake.requests
    assert (call.method, call.path) == ("POST", "/v1/images/generations")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.json == {
        "model": "gpt-4o-image",
        "prompt": "a lighthouse at dusk\n\nDo not include: boats.",
        "size": "3:2",
        "n": 4,
    }
    assert submission.task_id == "task_0001abc" and submission.status is None
    assert provider.name == "toapis" and provider.label == "ToAPIs gpt-4o-image"
    assert await provider.cancel(submission.task_id) is False


async def test_references_and_mask_are_uploaded_first(
    fake: FakeToAPIs, provider: ToAPIsProvider, tmp_path: Path
) -> None:
    refs = []
    for index, mime in enumerate(("image/png", "image/webp")):
        path = tmp_path / f"ref{index}.{mime.split('/')[1]}"
        path.write_bytes(png_bytes(3 + index, 3))
        refs.append(ImageInput(path, mime))
    mask = tmp_path / "mask.png"
    mask.write_bytes(png_bytes(3, 3, (0, 0, 0, 0)))
    await provider.submit(req(references=tuple(refs), mask=ImageInput(mask, "image/png")))

    assert [call.route for call in fake.requests] == ["upload", "upload", "upload", "submit"]
    uploads = fake.calls("upload")
    for call, source in zip(uploads, [*refs, ImageInput(mask, "image/png")], strict=True):
        assert (call.method, call.path) == ("POST", "/v1/uploads/images")
        assert call.headers["Authorization"] == f"Bearer {KEY}"
        [part] = call.parts_named("file")
        assert (part.filename, part.content_type) == (source.path.name, source.mime)
        assert part.data == source.path.read_bytes()
    body = fake.calls("submit")[0].json
    assert body["image_urls"] == [
        f"{fake.root_url}/files/upload-1-ref0.png",
        f"{fake.root_url}/files/upload-2-ref1.webp",
    ]
    assert body["mask_url"] == f"{fake.root_url}/files/upload-3-mask.png"


async def test_oversized_mask_is_rejected_before_upload(
    fake: FakeToAPIs, provider: ToAPIsProvider, tmp_path: Path
) -> None:
    mask = tmp_path / "mask.png"
    mask.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (4 * 1024 * 1024 + 1))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req(mask=ImageInput(mask, "image/png")))
    assert info.value.kind is ErrorKind.INVALID_REQUEST and "4 MB" in info.value.message
    assert fake.requests == []


@pytest.mark.parametrize("n", [3, 5])
async def test_unsupported_n_is_invalid_request_without_a_call(
    fake: FakeToAPIs, provider: ToAPIsProvider, n: int
) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.submit(req(n=n))
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    assert "1, 2 or 4" in info.value.message
    assert fake.requests == []


async def test_more_than_five_references_is_invalid(
    fake: FakeToAPIs, provider: ToAPIsProvider, tmp_path: Path
) -> None:
    path = tmp_path / "r.png"
    path.write_bytes(png_bytes())
    with pytest.raises(ProviderError) as info:
        await provider.submit(req(references=(ImageInput(path, "image/png"),) * 6))
    assert info.value.kind is ErrorKind.INVALID_REQUEST and "at most 5" in info.value.message
    assert fake.requests == []


@pytest.mark.parametrize("shape", ["result", "data", "url"])
async def test_task_runs_to_completion_and_images_are_downloaded(
    fake: FakeToAPIs, provider: ToAPIsProvider, shape: str
) -> None:
    fake.result_shape = shape  # type: ignore[assignment]
    fake.task_script = (
        TaskStep("queued", 0),
        TaskStep("submitted", 5),
        TaskStep("in_progress", 42),
        TaskStep("completed", 100),
    )
    request = req(n=2 if shape != "url" else 1, width=1200, height=900, aspect_ratio="4:3")
    task_id = (await provider.submit(request)).task_id

    states = [await provider.poll(task_id, request) for _ in range(3)]
    assert [(s.state, s.progress) for s in states] == [
        ("running", 0),
        ("running", 5),
        ("running", 42),
    ]
    # A new instance (as after a restart) finishes polling the same task id.
    fresh = make(fake)
    try:
        done = await fresh.poll(task_id, request)
    finally:
        await fresh.aclose()
    assert done.state == "completed" and done.progress == 100
    assert [image.data for image in done.images] == [fake.image] * request.n
    assert done.note == "Asked for 4:3; ToAPIs makes 3:2, the closest ratio."
    polls = fake.calls("poll")
    assert {(c.method, c.path) for c in polls} == {("GET", f"/v1/images/generations/{task_id}")}
    assert all(c.headers["Authorization"] == f"Bearer {KEY}" for c in polls)
    downloads = fake.calls("file")
    assert len(downloads) == request.n
    assert all("Authorization" not in c.headers for c in downloads)


async def test_a_completed_task_says_how_long_it_took_by_its_own_timestamps(
    fake: FakeToAPIs, provider: ToAPIsProvider
) -> None:
    fake.task_script = (TaskStep("in_progress", 40), TaskStep("completed", 100))
    task_id = (await provider.submit(req())).task_id
    task = fake.tasks[task_id]
    task.created_at, task.completed_at = 1_700_000_000, 1_700_000_007
    running = await provider.poll(task_id, req())
    assert running.state == "running" and running.took is None
    done = await provider.poll(task_id, req())
    assert done.state == "completed" and done.took == 7.0  # completed_at - created_at
    # Without completed_at (or with nonsense), nothing is claimed.
    fake.task_script = (TaskStep("completed", 100),)
    other = (await provider.submit(req())).task_id
    fake.tasks[other].completed_at = fake.tasks[other].created_at - 5
    assert (await provider.poll(other, req())).took is None


async def test_exact_ratio_has_no_note(fake: FakeToAPIs, provider: ToAPIsProvider) -> None:
    fake.task_script = (TaskStep("completed", 100),)
    request = req(width=800, height=1200, aspect_ratio="2:3")
    task_id = (await provider.submit(request)).task_id
    assert fake.calls("submit")[0].json["size"] == "2:3"
    status = await provider.poll(task_id, request)
    assert status.state == "completed" and status.note is None


@pytest.mark.parametrize(
    ("code", "message", "kind", "in_message"),
    [
        ("content_policy_violation", "Prompt flagged", ErrorKind.CONTENT_POLICY, "content policy"),
        ("generation_failed", "Upstream model error", ErrorKind.TASK_FAILED, "Upstream model"),
        (500, "Internal generation error", ErrorKind.TASK_FAILED, "Regenerate"),
    ],
)
async def test_failed_task_is_a_failed_status(
    fake: FakeToAPIs,
    provider: ToAPIsProvider,
    code: str | int,
    message: str,
    kind: ErrorKind,
    in_message: str,
) -> None:
    fake.task_script = (TaskStep("in_progress", 30), TaskStep("failed", 30, code, message))
    task_id = (await provider.submit(req())).task_id
    assert (await provider.poll(task_id, req())).state == "running"
    status = await provider.poll(task_id, req())
    assert status.state == "failed" and status.error is not None
    assert status.error.kind is kind
    assert in_message in status.error.message
    assert str(code) in status.error.detail


async def test_unknown_task_is_task_failed(provider: ToAPIsProvider) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.poll("task_gone", req())
    assert info.value.kind is ErrorKind.TASK_FAILED
    assert "no longer knows" in info.value.message
    assert "task_not_found" in info.value.detail


@pytest.mark.parametrize(
    ("response", "kind", "in_message", "retry_after"),
    [
        (
            FakeToAPIs.error(400, "invalid_request", "prompt is too long"),
            ErrorKind.INVALID_REQUEST,
            ["prompt is too long"],
            None,
        ),
        (
            FakeToAPIs.error(401, "unauthorized", "Invalid API key"),
            ErrorKind.AUTHENTICATION,
            ["admin", "TOAPIS_API_KEY"],
            None,
        ),
        (
            FakeToAPIs.error(402, "insufficient_quota", "Insufficient balance"),
            ErrorKind.QUOTA_EXHAUSTED,
            ["admin", "credit"],
            None,
        ),
        (
            FakeToAPIs.error(429, "insufficient_quota", "Balance exhausted"),
            ErrorKind.QUOTA_EXHAUSTED,
            ["admin"],
            None,
        ),
        (
            FakeToAPIs.error(422, "content_policy_violation", "Content violates policy"),
            ErrorKind.CONTENT_POLICY,
            ["content policy", "Rephrase"],
            None,
        ),
        (
            FakeToAPIs.error(429, "rate_limit_exceeded", "Too many", {"Retry-After": "5"}),
            ErrorKind.RATE_LIMITED,
            ["rate limiting", "retried automatically"],
            5.0,
        ),
        (
            FakeToAPIs.error(
                429, "rate_limit_exceeded", "Too many", {"X-RateLimit-Reset": str(int(NOW) + 30)}
            ),
            ErrorKind.RATE_LIMITED,
            ["rate limiting"],
            30.0,
        ),
        (FakeToAPIs.error(429, 429, "Too many requests"), ErrorKind.RATE_LIMITED, [], None),
        (
            FakeToAPIs.error(503, "rate_limit_unavailable", "Rate limiter unavailable"),
            ErrorKind.UNAVAILABLE,
            ["HTTP 503", "retried automatically"],
            None,
        ),
        (FakeToAPIs.error(500, 500, "Internal error"), ErrorKind.UNAVAILABLE, ["HTTP 500"], None),
        (FakeResponse.html(504), ErrorKind.UNAVAILABLE, ["HTTP 504"], None),
        (
            FakeResponse(status=502, body=b"Bad Gateway", content_type="text/plain"),
            ErrorKind.UNAVAILABLE,
            ["HTTP 502"],
            None,
        ),
        (FakeResponse(status=500, body=b""), ErrorKind.UNAVAILABLE, ["HTTP 500"], None),
    ],
)
async def test_submit_error_mapping(
    fake: FakeToAPIs,
    provider: ToAPIsProvider,
    response: FakeResponse,
    kind: ErrorKind,
    in_message: list[str],
    retry_after: float | None,
) -> None:
    fake.enqueue("submit", response)
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    err = info.value
    assert err.kind is kind
    for text in in_message:
        assert text in err.message
    assert err.retry_after == retry_after
    assert f"HTTP {response.status}" in err.detail
    assert KEY not in err.message and KEY not in err.detail


async def test_poll_errors_are_mapped_too(fake: FakeToAPIs, provider: ToAPIsProvider) -> None:
    task_id = (await provider.submit(req())).task_id
    fake.enqueue(
        "poll",
        FakeResponse.html(502),
        FakeToAPIs.error(429, "rate_limit_exceeded", "Slow", {"Retry-After": "2"}),
    )
    with pytest.raises(ProviderError) as first:
        await provider.poll(task_id, req())
    with pytest.raises(ProviderError) as second:
        await provider.poll(task_id, req())
    assert first.value.kind is ErrorKind.UNAVAILABLE
    assert (second.value.kind, second.value.retry_after) == (ErrorKind.RATE_LIMITED, 2.0)
    assert (await provider.poll(task_id, req())).state == "running"


async def test_upload_error_is_mapped(
    fake: FakeToAPIs, provider: ToAPIsProvider, tmp_path: Path
) -> None:
    path = tmp_path / "r.png"
    path.write_bytes(png_bytes())
    fake.enqueue("upload", FakeToAPIs.error(400, "invalid_request", "unsupported file type"))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req(references=(ImageInput(path, "image/png"),)))
    assert info.value.kind is ErrorKind.INVALID_REQUEST
    assert "unsupported file type" in info.value.message
    assert fake.calls("submit") == []


async def test_wrong_key_is_authentication(fake: FakeToAPIs) -> None:
    secret = "wrong-secret-key-123"
    provider = make(fake, key=secret)
    try:
        with pytest.raises(ProviderError) as info:
            await provider.submit(req())
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.AUTHENTICATION
    assert secret not in info.value.message and secret not in info.value.detail


async def test_non_json_success_body_is_unavailable(
    fake: FakeToAPIs, provider: ToAPIsProvider
) -> None:
    fake.enqueue("submit", FakeResponse(status=200, body=b"<html>maintenance</html>"))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    assert info.value.kind is ErrorKind.UNAVAILABLE and "HTTP 200" in info.value.message


async def test_error_inside_a_200_answer_is_mapped(
    fake: FakeToAPIs, provider: ToAPIsProvider
) -> None:
    fake.enqueue("submit", FakeToAPIs.error(200, 402, "Insufficient balance"))
    with pytest.raises(ProviderError) as info:
        await provider.submit(req())
    assert info.value.kind is ErrorKind.QUOTA_EXHAUSTED


async def test_timeout_is_unavailable(fake: FakeToAPIs) -> None:
    provider = make(fake, timeout=0.05)
    fake.enqueue("submit", FakeResponse.slow(0.2))
    try:
        with pytest.raises(ProviderError) as info:
            await provider.submit(req())
    finally:
        await provider.aclose()
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "ToAPIs did not answer" in info.value.message


def test_poll_schedule_is_five_then_five_to_ten_seconds(provider: ToAPIsProvider) -> None:
    schedule = provider.poll_schedule
    rng = random.Random(1)
    assert all(4.0 <= schedule.first_delay(rng) <= 6.0 for _ in range(50))
    delays = [schedule.next_delay(k, rng) for k in range(10) for _ in range(5)]
    assert min(delays) >= 4.0 and max(delays) <= 12.0
    assert schedule.next_delay(20, random.Random(0)) >= 8.0


# -- shared HTTP helpers (core/providers/http.py) ----------------------------------------------


def test_retry_after_sources_and_precedence() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert parse_retry_after({"Retry-After": "12"}) == 12.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=lambda: 0) > 0
    assert parse_retry_after({"X-RateLimit-Reset": str(NOW + 45)}, now=lambda: NOW) == 45.0
    assert parse_retry_after({"X-RateLimit-Reset": str(NOW - 5)}, now=lambda: NOW) == 0.0
    assert parse_retry_after({"X-RateLimit-Reset": "20"}, now=lambda: NOW) == 20.0
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


def test_error_body_parsing_is_defensive() -> None:
    body = parse_error_body(429, b'{"error": {"code": 429, "message": "slow"}}')
    assert (body.code, body.message, body.is_json) == ("429", "slow", True)
    html = parse_error_body(504, b"<html><body><h1>504 Gateway Time-out</h1></body></html>")
    assert html.is_json is False and html.message == "504 Gateway Time-out"
    assert "HTTP 504" in html.describe()
    assert parse_error_body(500, b"\xff\xfe garbage").is_json is False
    assert parse_error_body(400, b'{"error": "bad size"}').message == "bad size"
    assert parse_error_body(400, b"[1, 2]").is_json is False


async def test_a_submit_goes_through_while_over_a_hundred_polls_hang(fake: FakeToAPIs) -> None:
    """A process with more jobs in flight than httpx's default pool (100 connections), each
    poll held open by a slow provider, still submits new tasks at once."""
    provider = make(fake, timeout=60)
    try:
        ids = [(await provider.submit(req())).task_id for _ in range(110)]
        fake.polls_open.clear()
        hanging = [asyncio.create_task(provider.poll(task_id, req())) for task_id in ids]
        deadline = asyncio.get_running_loop().time() + 30
        while len([r for r in fake.requests if r.method == "GET"]) < 100:  # httpx's old cap
            assert asyncio.get_running_loop().time() < deadline, "the polls did not arrive"
            await asyncio.sleep(0.05)
        submission = await asyncio.wait_for(provider.submit(req()), 10)
        assert submission.task_id
    finally:
        fake.polls_open.set()
        await asyncio.gather(*hanging, return_exceptions=True)
        await provider.aclose()
