"""OpenAI Images API provider (`IMAGE_PROVIDER=openai`).

Wire protocol (OpenAI API reference, "Images"):

- `POST {base}/images/generations`, JSON `{model, prompt, n, size, quality?}`.
- `POST {base}/images/edits` when the request has reference images or a mask: multipart with
  the images as repeated `image[]` parts (PNG/JPEG/WebP), `mask` (a PNG with alpha, the size
  of the first image) and the other fields as form strings.
- Success: `{"created", "data": [{"b64_json"} | {"url"}], "usage"?}`. GPT image models
  return `b64_json`; older models return `url`, which expires after 60 minutes, so it is
  downloaded at once.
- Errors: `{"error": {"message", "type", "param", "code"}}`; mapping in `_map_error`.

The API is synchronous (a call can take a minute), so `submit` makes the whole call and
returns the finished `TaskStatus` with a made-up task id `openai-<uuid hex>`. Nothing is
stored between calls: if the process restarts after the engine stored that id but before it
stored the result, `poll(task_id, request)` runs the same request again (a clean retry of
the step; the engine posts one result). Retries are the engine's job: this module raises
`ProviderError` with the right kind and `retry_after` and never loops.

Sizes: OpenAI makes `1024x1024`, `1536x1024` and `1024x1536`; the requested aspect ratio is
mapped to the closest, with a note in `TaskStatus.note` when it had to be approximated. The
negative prompt becomes an explicit "Do not include: …" sentence (no negative-prompt field).
Seeds are not supported by the API and are ignored.

Every result image (inline `b64_json` or downloaded `url`) has its pixel count checked from
its header against `max_image_pixels` before anything decodes it. Every error text is
redacted of the key at the source (`ProviderHTTP.error`), whatever the response body says.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

import httpx

from core.providers.base import (
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
from core.providers.http import HTTPProvider, parse_retry_after, shorten
from core.providers.results import build_prompt, closest_size, completed, read_input
from core.schedule import PollSchedule

DEFAULT_MODEL = "gpt-image-1"

# Sizes the GPT image models accept (besides "auto"), with their aspect ratios.
SIZES: dict[str, tuple[int, int]] = {
    "1024x1024": (1, 1),
    "1536x1024": (3, 2),
    "1024x1536": (2, 3),
}

# OpenAI's published per-image prices for gpt-image-1, USD (pricing page, "Image generation",
# read 2026-11-27).
# Its default quality "auto" has no published price, so a request without --quality has an
# unknown cost unless IMAGE_PRICES prices "auto" or "*".
_SQUARE = {"low": 0.011, "medium": 0.042, "high": 0.167}
_WIDE = {"low": 0.016, "medium": 0.063, "high": 0.25}
PRICES = {"gpt-image-1": {"1024x1024": _SQUARE, "1536x1024": _WIDE, "1024x1536": _WIDE}}
# What OpenAI bills gpt-image-1 by: USD per million tokens (pricing page, "Image generation
# models", read 2026-11-27): text input $5, image input $10, image output $40. The `usage` of
# a response gives the tokens, so the real cost of a request (also for quality "auto") is
# reconciled from it (core.pricing.cost_from_usage).
TOKEN_PRICES = {"gpt-image-1": {"text_input": 5.0, "image_input": 10.0, "output": 40.0}}

INFO = ProviderInfo(
    name="openai",
    title="OpenAI",
    default_model=DEFAULT_MODEL,
    allowed_n=(1, 2, 3, 4),  # images one call makes (our --n range)
    # POST /v1/images/edits: up to 16 images (gpt-image-1), each a PNG, WebP or JPEG under
    # 50 MB; `mask` a PNG under 4 MB, the size of the first image.
    limits=InputLimits(
        max_references=16,
        max_bytes=50 * MB,
        mask_max_bytes=4 * MB,
    ),
    # Only used after a restart (the result of the synchronous call was lost): poll re-runs
    # the request at once, and retries are spaced by the engine's retry_delay.
    poll_schedule=PollSchedule(first=0.0, interval=1.0, factor=2.0, cap=10.0),
    default_prices=PRICES,
    honours_seed=False,  # the Images API takes no seed
    sizes=SIZES,
    token_prices=TOKEN_PRICES,
)

_CONTENT_POLICY_CODES = {"moderation_blocked", "content_policy_violation"}
_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached"}


class OpenAIProvider(HTTPProvider):
    """The OpenAI Images API as an `ImageProvider` (declared by `INFO`).

    Built with HTTPProvider's arguments: `base_url` e.g. "https://api.openai.com/v1"
    (paths are appended); `model` None → "gpt-image-1"; `timeout` should allow a minute
    (generation is synchronous). `cancel` returns False: a synchronous Images API call
    cannot be cancelled.
    """

    info = INFO

    async def submit(self, request: GenerationRequest) -> Submission:
        """Run the generation (or edit) and return it finished. Raises ProviderError."""
        task_id = f"openai-{uuid.uuid4().hex}"
        return Submission(task_id=task_id, status=await self._run(request))

    async def poll(self, task_id: str, request: GenerationRequest) -> TaskStatus:
        """Re-run `request`: the synchronous result is not stored, so after a restart the
        step is retried cleanly. Raises ProviderError."""
        return await self._run(request)

    # -- the call ------------------------------------------------------------------------

    async def _run(self, request: GenerationRequest) -> TaskStatus:
        model = request.model or self.model
        size = closest_size(request.width, request.height, SIZES)
        fields: dict[str, Any] = {
            "model": model,
            "prompt": build_prompt(request),
            "n": request.n,
            "size": size.value,
        }
        if request.quality:
            fields["quality"] = request.quality
        if request.references or request.mask:
            files = [("image[]", await _file_part(ref, "image")) for ref in request.references]
            if request.mask is not None:
                files.append(("mask", await _file_part(request.mask, "mask")))
            data = {key: str(value) for key, value in fields.items()}
            response = await self._http.request("POST", "images/edits", data=data, files=files)
        else:
            response = await self._http.request("POST", "images/generations", json=fields)
        if response.status_code >= 400:
            raise self._map_error(response, model)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise self._http.unreadable(
                response, f"POST {response.request.url.path}", status_in_message=False
            )
        images = [await self._image(item) for item in payload["data"] if isinstance(item, dict)]
        images = [image for image in images if image is not None]
        if not images:
            raise self._http.error(
                ErrorKind.TASK_FAILED,
                "OpenAI finished without returning an image. Press Regenerate to try again.",
                detail=f"HTTP {response.status_code}: no b64_json or url in data",
            )
        note = None
        if size.approximated:
            note = (
                f"Asked for {request.aspect_ratio}; OpenAI makes {size.value} "
                f"({size.ratio_text}), the closest size."
            )
        return completed(images, size, note, payload.get("usage"))

    async def _image(self, item: dict[str, Any]) -> GeneratedImage | None:
        b64 = item.get("b64_json")
        if isinstance(b64, str) and b64:
            try:
                data = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise self._http.error(
                    ErrorKind.UNAVAILABLE,
                    "OpenAI sent an image that could not be decoded. "
                    "It will be retried automatically.",
                    detail=f"b64_json: {exc}",
                ) from exc
            return await self._http.image(data)
        url = item.get("url")
        if isinstance(url, str) and url:
            return await self._http.download(url)
        return None

    def _map_error(self, response: httpx.Response, model: str) -> ProviderError:
        """Map an OpenAI error response onto an ErrorKind (OpenAI "Error codes" guide).

        400 → INVALID_REQUEST naming `param`; code moderation_blocked /
        content_policy_violation → CONTENT_POLICY; 401/403 → AUTHENTICATION; 404 →
        INVALID_REQUEST (unknown model); 429 insufficient_quota → QUOTA_EXHAUSTED; other 429
        → RATE_LIMITED; 408/409/5xx and unreadable bodies → UNAVAILABLE.
        """
        body = self._http.parse_error(response)
        status, retry_after = body.status, parse_retry_after(response.headers)
        said = shorten(body.message) if body.message else ""

        def err(kind: ErrorKind, message: str, hint: float | None = None) -> ProviderError:
            return self._http.error(kind, message, detail=body.describe(), retry_after=hint)

        if body.code in _CONTENT_POLICY_CODES:
            return err(
                ErrorKind.CONTENT_POLICY,
                "OpenAI's safety system refused this request. "
                "Rephrase the prompt (or use other images) and try again.",
            )
        if status == 429 and (body.code in _QUOTA_CODES or body.type in _QUOTA_CODES):
            return err(
                ErrorKind.QUOTA_EXHAUSTED,
                "The OpenAI account is out of quota or credit. "
                "An admin must add credit or raise the limit; retrying will not help.",
            )
        if status == 429:
            return err(
                ErrorKind.RATE_LIMITED,
                "OpenAI is rate limiting us. The request will be retried automatically.",
                retry_after,
            )
        if status in (401, 403):
            return err(
                ErrorKind.AUTHENTICATION,
                f"OpenAI refused our credentials (HTTP {status}). "
                "An admin must fix OPENAI_API_KEY or the account's access.",
            )
        if status in (408, 409) or status >= 500 or not body.is_json:
            return err(
                ErrorKind.UNAVAILABLE,
                f"OpenAI is unavailable right now (HTTP {status}). "
                "It will be retried automatically.",
                retry_after,
            )
        if status == 404:
            return err(
                ErrorKind.INVALID_REQUEST,
                f"OpenAI does not offer the model `{model}`"
                + (f": {said}" if said else ".")
                + " Pick another with --model, or ask an admin to fix IMAGE_MODEL.",
            )
        field = f" (field `{body.param}`)" if body.param else ""
        return err(
            ErrorKind.INVALID_REQUEST,
            f"OpenAI rejected the request{field}: {said or f'HTTP {status}'}. "
            "Change that and try again.",
        )


async def _file_part(image: ImageInput, role: str) -> tuple[str, bytes, str]:
    """(filename, bytes, mime) for one multipart part; a missing file is INVALID_REQUEST."""
    return (image.path.name, await read_input(image, role), image.mime)
