"""ToAPIs task API provider (`IMAGE_PROVIDER=toapis`, model `gpt-4o-image` by default).

Wire protocol (ToAPIs docs, "gpt-4o-image"):

- Uploads: `POST /v1/uploads/images`, multipart field `file` (JPEG/PNG/WebP/GIF up to 10 MB;
  a mask PNG up to 4 MB) → `{"data": {"url": ...}}`. Reference images and the mask are sent
  to the generation as those URLs.
- Submit: `POST /v1/images/generations`, JSON
  `{model, prompt, size: "1:1"|"2:3"|"3:2", n: 1|2|4, image_urls?: [≤5], mask_url?}` →
  a task `{"id", "object": "generation.task", "status": "queued", "progress": 0,
  "created_at"}`.
- Poll: `GET /v1/images/generations/{id}`. `queued` / `submitted` / `in_progress` are
  running (with `progress` 0-100); `completed` carries the images at `result.data[].url`
  (the docs also show a top-level `url` and `data[].url`; all are accepted); `failed`
  carries `error.code` / `error.message`. Result URLs expire (`expires_at`), so they are
  downloaded inside `poll`. A 404 `task_not_found` is a failure, not an endless poll.
- Errors: `{"error": {"code", "message", "type"?}}`, `code` a string or an integer; mapping
  in `map_error`. Gateway HTML pages and other non-JSON bodies are UNAVAILABLE errors with
  the status code.

The provider keeps no state between calls: after a restart a new instance polls an old id.
There is no documented cancel, so `cancel` returns False. Retries are the engine's job.

Downloaded result images have their pixel count checked from the header against
`max_image_pixels` before anything decodes them. Every error text is redacted of the key at
the source (`ProviderHTTP.error`), whatever the response body says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from core.providers.base import (
    IMAGE_MIMES,
    MB,
    ErrorKind,
    GeneratedImage,
    GenerationRequest,
    ImageInput,
    InputLimits,
    ProviderError,
    ProviderInfo,
    Submission,
    TaskStatus,
)
from core.providers.http import (
    ErrorBody,
    HTTPProvider,
    parse_retry_after,
    shorten,
)
from core.providers.results import build_prompt, closest_size, completed, read_input
from core.schedule import PollSchedule

DEFAULT_MODEL = "gpt-4o-image"

# The aspect ratios ToAPIs accepts for gpt-4o-image.
SIZES: dict[str, tuple[int, int]] = {"1:1": (1, 1), "3:2": (3, 2), "2:3": (2, 3)}

INFO = ProviderInfo(
    name="toapis",
    title="ToAPIs",
    default_model=DEFAULT_MODEL,
    allowed_n=(1, 2, 4),  # ToAPIs documents n = 1, 2 or 4
    # POST /v1/uploads/images: JPEG/PNG/WebP/GIF up to 10 MB, a mask PNG up to 4 MB;
    # a generation takes at most 5 image_urls.
    limits=InputLimits(
        max_references=5,
        max_bytes=10 * MB,
        mimes=IMAGE_MIMES | {"image/gif"},
        mask_max_bytes=4 * MB,
    ),
    # First poll about 5 s after submit, then every 5-10 s with ±20 % jitter (issue 3);
    # once the engine expects a finish time, a poll 0.5 s after it, then every 1 s, and
    # far from it every 30 s at most, so polls stay sparser than every 5 s on average
    # (issue 13). While nothing is known of the model's durations, the first poll comes
    # after 3-3.6 s instead (ToAPIs documents "wait 2-3 seconds" for a submitted task:
    # https://docs.toapis.com/docs/en/api-reference/tasks/image-status), and
    # the progress it reports aims the next ones.
    poll_schedule=PollSchedule(
        first=5.0, interval=5.0, factor=1.25, cap=10.0, near=1.0, far=30.0, early=3.0
    ),
    # No price list we can read per model (checked 2026-11-27): its models are "unpriced"
    # until IMAGE_PRICES names them (doctor warns). The task API takes no seed.
    honours_seed=False,
    sizes=SIZES,
)
ALLOWED_N = INFO.allowed_n
MAX_REFERENCES = INFO.limits.max_references
MAX_IMAGE_BYTES = INFO.limits.max_bytes
MAX_MASK_BYTES = INFO.limits.mask_max_bytes

RUNNING_STATES = {"queued", "submitted", "in_progress", "processing", "pending", "running"}
_CONTENT_POLICY_CODES = {
    "content_policy_violation",
    "content_policy",
    "moderation_blocked",
    "content_violation",
    "sensitive_content",
}


class ToAPIsProvider(HTTPProvider):
    """The ToAPIs task API as an `ImageProvider` (declared by `INFO`).

    Built with HTTPProvider's arguments: `base_url` is the API root, e.g.
    "https://toapis.com" (`/v1/...` paths are appended); `model` None → "gpt-4o-image".
    `cancel` returns False: ToAPIs documents no way to cancel a task.
    """

    info = INFO

    async def submit(self, request: GenerationRequest) -> Submission:
        """Upload references/mask, create the task, return its id. Raises ProviderError."""
        if request.n not in ALLOWED_N:
            raise self._http.error(
                ErrorKind.INVALID_REQUEST,
                f"ToAPIs makes 1, 2 or 4 images per request, not {request.n}. "
                "Use --n 1, --n 2 or --n 4.",
                detail=f"n={request.n} not in {ALLOWED_N}",
            )
        if len(request.references) > MAX_REFERENCES:
            raise self._http.error(
                ErrorKind.INVALID_REQUEST,
                f"ToAPIs takes at most {MAX_REFERENCES} reference images; "
                f"this request has {len(request.references)}. Remove some and try again.",
                detail=f"{len(request.references)} references",
            )
        size = closest_size(request.width, request.height, SIZES)
        body: dict[str, Any] = {
            "model": request.model or self.model,
            "prompt": build_prompt(request),
            "size": size.value,
            "n": request.n,
        }
        if request.references:
            body["image_urls"] = [
                await self._upload(ref, MAX_IMAGE_BYTES, "reference") for ref in request.references
            ]
        if request.mask is not None:
            body["mask_url"] = await self._upload(request.mask, MAX_MASK_BYTES, "mask")
        payload = await self._call("POST", "v1/images/generations", json=body)
        task_id = payload.get("id")
        if not isinstance(task_id, str | int) or task_id == "":
            raise self._http.error(
                ErrorKind.UNAVAILABLE,
                "ToAPIs accepted the request but sent no task id. "
                "It will be retried automatically.",
                detail=f"no id in {self._http.snippet(payload)}",
            )
        return Submission(task_id=str(task_id))

    async def poll(self, task_id: str, request: GenerationRequest) -> TaskStatus:
        """The task's state; on completion the images are downloaded. Raises ProviderError."""
        payload = await self._call(
            "GET", f"v1/images/generations/{quote(task_id, safe='')}", poll=True
        )
        status = str(payload.get("status") or "").lower()
        progress = _progress(payload.get("progress"))
        if status in RUNNING_STATES:
            return TaskStatus(state="running", progress=progress)
        if status == "failed":
            return TaskStatus(state="failed", progress=progress, error=self._task_error(payload))
        if status != "completed":
            raise self._http.error(
                ErrorKind.UNAVAILABLE,
                f"ToAPIs reported an unknown task status {status!r}. Checking again shortly.",
                detail=f"task {task_id}: status={status!r}",
            )
        urls = _result_urls(payload)
        if not urls:
            return TaskStatus(
                state="failed",
                progress=100,
                error=self._http.error(
                    ErrorKind.TASK_FAILED,
                    "ToAPIs finished the task without any image. Press Regenerate to try again.",
                    detail=f"task {task_id}: completed without result URLs",
                ),
            )
        images: list[GeneratedImage] = [await self._http.download(url) for url in urls]
        size = closest_size(request.width, request.height, SIZES)
        note = None
        if size.approximated:
            note = (
                f"Asked for {request.aspect_ratio}; ToAPIs makes {size.ratio_text}, "
                "the closest ratio."
            )
        return completed(images, size, note, payload.get("usage"), _took(payload))

    # -- HTTP ------------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, *, poll: bool = False, **kwargs: Any
    ) -> dict[str, Any]:
        response = await self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise self.map_error(response, poll=poll)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise self._http.unreadable(response, f"{method} /{path}")
        error = payload.get("error")
        if (
            isinstance(error, dict)
            and error
            and not payload.get("id")
            and not payload.get("status")
        ):
            # An error inside a 2xx answer: use an integer code as the status when there is one.
            code = error.get("code")
            status = code if isinstance(code, int) and 400 <= code < 600 else 400
            raise self._map(self._http.parse_error(response, status), response.headers, poll=poll)
        return payload

    async def _upload(self, image: ImageInput, limit: int, role: str) -> str:
        """Upload a local file via `POST /v1/uploads/images` and return `data.url`."""
        data = await read_input(image, role)
        if len(data) > limit:
            raise self._http.error(
                ErrorKind.INVALID_REQUEST,
                f"The {role} image is {len(data) / MB:.1f} MB; ToAPIs accepts at most "
                f"{limit // MB} MB. Post a smaller image.",
                detail=f"{image.path}: {len(data)} bytes > {limit}",
            )
        payload = await self._call(
            "POST", "v1/uploads/images", files={"file": (image.path.name, data, image.mime)}
        )
        inner = payload.get("data")
        url = inner.get("url") if isinstance(inner, dict) else payload.get("url")
        if not isinstance(url, str) or not url:
            raise self._http.error(
                ErrorKind.UNAVAILABLE,
                "ToAPIs accepted an upload but returned no URL. It will be retried automatically.",
                detail=f"upload: {self._http.snippet(payload)}",
            )
        return url

    # -- errors ----------------------------------------------------------------------------

    def map_error(self, response: httpx.Response, *, poll: bool = False) -> ProviderError:
        """Map a ToAPIs error response onto a ProviderError (see `_error_kind`).

        By `code` first (it is more specific), then by HTTP status:
        - invalid_request / 400 → INVALID_REQUEST (the provider's message is quoted);
        - unauthorized / 401 / 403 → AUTHENTICATION (the admin must fix TOAPIS_API_KEY);
        - insufficient_quota / 402 → QUOTA_EXHAUSTED;
        - content_policy_violation / 422 → CONTENT_POLICY;
        - rate_limit_exceeded / 429 → RATE_LIMITED, retry_after from Retry-After or
          X-RateLimit-Reset;
        - rate_limit_unavailable / 5xx / non-JSON bodies (gateway pages) → UNAVAILABLE;
        - task_not_found / 404 while polling → TASK_FAILED.
        """
        body = self._http.parse_error(response)
        return self._map(body, response.headers, poll=poll)

    def _map(self, body: ErrorBody, headers: Mapping[str, str], *, poll: bool) -> ProviderError:
        status = body.status
        code = body.code or ""
        detail = body.describe()
        said = shorten(body.message) if body.message else ""
        retry_after = parse_retry_after(headers, now=self._clock)

        kind = _error_kind(status, code, is_json=body.is_json, poll=poll)
        messages = {
            ErrorKind.UNAVAILABLE: f"ToAPIs is unavailable right now (HTTP {status}). "
            "It will be retried automatically.",
            ErrorKind.RATE_LIMITED: "ToAPIs is rate limiting us. "
            "The request will be retried automatically.",
            ErrorKind.QUOTA_EXHAUSTED: "The ToAPIs account is out of credit. "
            "An admin must top it up; retrying will not help.",
            ErrorKind.CONTENT_POLICY: "ToAPIs refused this request under its content policy. "
            "Rephrase the prompt (or use other images) and try again.",
            ErrorKind.AUTHENTICATION: f"ToAPIs refused our credentials (HTTP {status}). "
            "An admin must fix TOAPIS_API_KEY.",
            ErrorKind.TASK_FAILED: "ToAPIs no longer knows this generation task "
            "(it may have expired). Press Regenerate to start again.",
            ErrorKind.INVALID_REQUEST: f"ToAPIs rejected the request: {said or f'HTTP {status}'}. "
            "Change that and try again.",
        }
        return self._http.error(
            kind,
            messages[kind],
            detail=detail,
            retry_after=retry_after if kind.retryable else None,
        )

    def _task_error(self, payload: dict[str, Any]) -> ProviderError:
        error = payload.get("error")
        code = ""
        message = ""
        if isinstance(error, dict):
            code = str(error.get("code") or "").strip().lower()
            message = str(error.get("message") or "")
        elif isinstance(error, str):
            message = error
        message = self._http.redact(message)  # before anything cuts it short
        said = shorten(message) if message else ""
        detail = f"task failed: code={code or '?'} {shorten(message, 300)}"
        if code in _CONTENT_POLICY_CODES:
            kind = ErrorKind.CONTENT_POLICY
            text = "ToAPIs refused this request under its content policy" + (
                f" ({said})" if said else ""
            )
            text += ". Rephrase the prompt and try again."
        else:
            kind = ErrorKind.TASK_FAILED
            text = "ToAPIs could not generate the image" + (f": {said}" if said else "")
            text += ". Press Regenerate to try again."
        return self._http.error(kind, text, detail=detail)


def _error_kind(status: int, code: str, *, is_json: bool, poll: bool) -> ErrorKind:
    """The ErrorKind for an error answer: the documented `code` decides first (it is more
    specific: e.g. a 429 with `insufficient_quota`), then the HTTP status."""
    by_code = {
        "rate_limit_unavailable": ErrorKind.UNAVAILABLE,
        "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
        "insufficient_quota": ErrorKind.QUOTA_EXHAUSTED,
        "unauthorized": ErrorKind.AUTHENTICATION,
        "invalid_api_key": ErrorKind.AUTHENTICATION,
        "task_not_found": ErrorKind.TASK_FAILED,
        "invalid_request": ErrorKind.INVALID_REQUEST,
    }
    if code in by_code:
        return by_code[code]
    if code in _CONTENT_POLICY_CODES:
        return ErrorKind.CONTENT_POLICY
    if status >= 500 or not is_json:
        return ErrorKind.UNAVAILABLE
    by_status = {
        429: ErrorKind.RATE_LIMITED,
        402: ErrorKind.QUOTA_EXHAUSTED,
        422: ErrorKind.CONTENT_POLICY,
        401: ErrorKind.AUTHENTICATION,
        403: ErrorKind.AUTHENTICATION,
        408: ErrorKind.UNAVAILABLE,
    }
    if status in by_status:
        return by_status[status]
    if status == 404 and poll:
        return ErrorKind.TASK_FAILED
    return ErrorKind.INVALID_REQUEST


def _progress(value: object) -> int:
    """`progress` as an int 0-100 (accepts numbers and strings like "45" or "45%")."""
    try:
        number = float(str(value).strip().rstrip("%")) if value is not None else 0.0
    except ValueError:
        return 0
    return max(0, min(100, round(number)))


def _took(payload: dict[str, Any]) -> float | None:
    """Seconds from `created_at` to `completed_at` (Unix timestamps, whole seconds) of a
    completed task, or None when either is missing or they make no sense."""
    start, end = payload.get("created_at"), payload.get("completed_at")
    if not isinstance(start, int | float) or not isinstance(end, int | float):
        return None
    if isinstance(start, bool) or isinstance(end, bool) or end < start:
        return None
    return float(end - start)


def _result_urls(payload: dict[str, Any]) -> list[str]:
    """Image URLs of a completed task: `result.data[].url`, `data[].url` or a top-level `url`."""
    for holder in (payload.get("result"), payload):
        if isinstance(holder, dict) and isinstance(holder.get("data"), list):
            urls = [
                item["url"]
                for item in holder["data"]
                if isinstance(item, dict) and isinstance(item.get("url"), str) and item["url"]
            ]
            if urls:
                return urls
    for holder in (payload.get("result"), payload):
        if isinstance(holder, dict) and isinstance(holder.get("url"), str) and holder["url"]:
            return [holder["url"]]
    return []
