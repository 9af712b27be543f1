"""A local OpenAI Images API (aiohttp) that speaks the documented wire protocol.

Routes (base URL returned by `start()` ends in `/v1`, like `OPENAI_BASE_URL`):

- `POST /v1/images/generations` (route "generations"): JSON `{model, prompt, n, size, …}` →
  `{"created", "data": [{"b64_json"}] * n, "usage"}`.
- `POST /v1/images/edits` (route "edits"): multipart with `image[]` parts, optional `mask`
  and form fields → same answer.
- `GET /v1/models/{model}` (route "model"): the model object `{id, object: "model", created,
  owned_by}` plus whatever `models[model]` adds (e.g. `shutdown_date`); a model not in
  `models` → 404 `model_not_found`.
- `POST /v1/moderations` (route "moderations"): JSON `{model, input}` (a string, strings, or
  `{"type": "text"|"image_url", …}` parts) → `{"id", "model", "results": [{"flagged",
  "categories", "category_scores", "category_applied_input_types"}]}`; text containing a
  word of `flag_words` is flagged with its categories, an image part with `flag_images`.
- `GET /files/{name}` (route "file"): the image for `result_mode="url"` answers (no auth,
  like OpenAI's signed blob links).

A wrong or missing `Authorization: Bearer <api_key>` gets OpenAI's 401 body (which, like the
real API, quotes the key it was given, masked as "sk-proj-****…wxyz": the provider must not
pass that on).

Scripting: `result_mode` "b64" (GPT image models) or "url" (older models); `image` is the PNG
returned; `enqueue("generations" | "edits" | "file", FakeResponse...)` for errors, delays and
HTML pages; `FakeOpenAI.quota_error()` etc. build the documented error answers.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

from aiohttp import web

from . import FakeResponse, FakeServer, RecordedRequest, png_bytes

MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)


class FakeOpenAI(FakeServer):
    """The fake OpenAI Images API. See the module docstring for routes and scripting.

    Attributes:
        result_mode: "b64" → `data[].b64_json`; "url" → `data[].url` served by this fake.
        image: PNG bytes returned for every generated image.
        usage: the `usage` object in successful answers (None to omit it).
        models: the models `GET /v1/models/{model}` knows, with extra fields of each.
    """

    prefix = "/v1"

    def __init__(self, api_key: str | None = "sk-test-key") -> None:
        super().__init__(api_key)
        self.result_mode: Literal["b64", "url"] = "b64"
        self.image = png_bytes(16, 16)
        self.usage: dict[str, Any] | None = {
            "total_tokens": 100,
            "input_tokens": 50,
            "output_tokens": 50,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 40},
        }
        self.models: dict[str, dict[str, Any]] = {"gpt-image-1": {}, "dall-e-3": {}}
        self._route("GET", "/v1/models/{model}", "model", self._model)
        self._route("POST", "/v1/images/generations", "generations", self._generate)
        self._route("POST", "/v1/images/edits", "edits", self._generate)
        self._route("POST", "/v1/moderations", "moderations", self._moderate)
        self._route("GET", "/files/{name}", "file", self._file, auth=False)
        self.flag_words: dict[str, list[str]] = {}
        self.flag_images: list[str] = []

    # Documented error answers, ready for enqueue().

    @staticmethod
    def invalid_request(message: str, param: str | None = None) -> FakeResponse:
        """400 invalid_request_error naming `param`."""
        return FakeResponse.error(400, None, message, type="invalid_request_error", param=param)

    @staticmethod
    def moderation_blocked() -> FakeResponse:
        """400 moderation_blocked (GPT image models' safety system)."""
        return FakeResponse.error(
            400,
            "moderation_blocked",
            "Your request was rejected as a result of our safety system.",
            type="image_generation_user_error",
        )

    @staticmethod
    def quota_error() -> FakeResponse:
        """429 insufficient_quota."""
        return FakeResponse.error(
            429,
            "insufficient_quota",
            "You exceeded your current quota, please check your plan and billing details.",
            type="insufficient_quota",
        )

    @staticmethod
    def rate_limited(headers: dict[str, str] | None = None) -> FakeResponse:
        """429 rate_limit_exceeded with the given retry headers."""
        return FakeResponse.error(
            429,
            "rate_limit_exceeded",
            "Rate limit reached for images per minute.",
            type="requests",
            headers=headers,
        )

    # Handlers.

    def _unauthorized(self, request: RecordedRequest) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if len(given) > 12:  # OpenAI quotes the key it got, masked: "sk-proj-****…wxyz"
            given = given[:8] + "*" * (len(given) - 12) + given[-4:]
        return web.json_response(
            {
                "error": {
                    "message": f"Incorrect API key provided: {given}. You can find your API "
                    "key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
            status=401,
        )

    async def _generate(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        if recorded.json is not None:
            n = int(recorded.json.get("n", 1))
        else:
            n = int(recorded.form().get("n", "1"))
        data: list[dict[str, str]] = []
        for index in range(n):
            if self.result_mode == "url":
                data.append({"url": f"{self.root_url}/files/img-{len(self.requests)}-{index}.png"})
            else:
                data.append({"b64_json": base64.b64encode(self.image).decode("ascii")})
        payload: dict[str, Any] = {"created": int(time.time()), "data": data}
        if self.usage is not None:
            payload["usage"] = self.usage
        return web.json_response(payload, headers={"x-request-id": f"req_{len(self.requests)}"})

    async def _moderate(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        body = recorded.json or {}
        items = body.get("input")
        parts = items if isinstance(items, list) else [items]
        results = []
        for part in parts:
            if isinstance(part, str):
                part = {"type": "text", "text": part}
            hits: list[str] = []
            if part.get("type") == "text":
                text = str(part.get("text", "")).lower()
                for word, categories in self.flag_words.items():
                    if word.lower() in text:
                        hits += [c for c in categories if c not in hits]
            elif part.get("type") == "image_url":
                assert str(part["image_url"]["url"]).startswith("data:image/")
                hits = list(self.flag_images)
            names = [*MODERATION_CATEGORIES, *(h for h in hits if h not in MODERATION_CATEGORIES)]
            results.append(
                {
                    "flagged": bool(hits),
                    "categories": {name: name in hits for name in names},
                    "category_scores": {name: 0.9 if name in hits else 0.01 for name in names},
                    "category_applied_input_types": {name: ["text"] for name in names},
                }
            )
        if not isinstance(items, list) or any(isinstance(p, dict) for p in parts):
            flagged = any(r["flagged"] for r in results)
            merged = {n: any(r["categories"][n] for r in results) for n in results[0]["categories"]}
            scores = {n: max(r["category_scores"][n] for r in results) for n in merged}
            results = [
                {
                    "flagged": flagged,
                    "categories": merged,
                    "category_scores": scores,
                    "category_applied_input_types": results[0]["category_applied_input_types"],
                }
            ]
        return web.json_response(
            {"id": f"modr-{len(self.requests)}", "model": body.get("model"), "results": results}
        )

    async def _model(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        model = request.match_info["model"]
        if model not in self.models:
            return FakeResponse.error(
                404,
                "model_not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
                type="invalid_request_error",
            ).to_web()
        body = {"id": model, "object": "model", "created": 1698785189, "owned_by": "system"}
        return web.json_response({**body, **self.models[model]})

    async def _file(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        return web.Response(body=self.image, content_type="image/png")
