"""A local ToAPIs task API (aiohttp) that speaks the documented gpt-4o-image wire protocol.

Routes (base URL returned by `start()` is the root, like `TOAPIS_BASE_URL`):

- `POST /v1/uploads/images` (route "upload"): multipart field `file` →
  `{"success": true, "data": {"url", "filename", "size", "content_type"}}`.
- `POST /v1/images/generations` (route "submit"): JSON `{model, prompt, size, n, image_urls?,
  mask_url?}`, validated as documented (size 1:1|2:3|3:2, n 1|2|4, at most 5 image_urls;
  otherwise 400 `invalid_request`) → `{"id", "object": "generation.task", "model",
  "status": "queued", "progress": 0, "created_at"}`.
- `GET /v1/images/generations/{id}` (route "poll"): each poll moves the task one step along
  `task_script` (then stays on the last step). A completed task carries `completed_at` (when
  a poll first found it completed, unless set on the task), `expires_at` and the image URLs
  in the shape chosen by `result_shape`; a failed one carries `error`.
  An unknown id → 404 `{"error": {"code": "task_not_found", …}}`.
- `GET /v1/models` (route "models"): the key's models, `{"success": true, "object": "list",
  "data": [{"id", "object": "model"}]}`.
- `GET /files/{name}` (route "file"): result images (no auth, like a CDN link).

A wrong or missing `Authorization: Bearer <api_key>` → 401 `unauthorized`.

Scripting: set `task_script` (a list of `TaskStep`) before submitting; `result_shape` is
"result" (`result.data[].url`), "data" (`data[].url`) or "url" (top-level `url`);
`enqueue(route, FakeResponse...)` for HTTP errors, delays and HTML pages.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from . import FakeResponse, FakeServer, RecordedRequest, png_bytes


@dataclass(frozen=True)
class TaskStep:
    """One poll answer of a task: `status` ("queued", "submitted", "in_progress", "completed",
    "failed"), `progress` 0-100, and for "failed" the `error_code` (str or int) and message."""

    status: str
    progress: int = 0
    error_code: str | int | None = None
    error_message: str | None = None


DEFAULT_SCRIPT = (TaskStep("queued", 0), TaskStep("in_progress", 50), TaskStep("completed", 100))


@dataclass
class _Task:
    id: str
    n: int
    model: str
    created_at: int
    script: tuple[TaskStep, ...]
    polls: int = 0
    completed_at: int | None = None  # Unix seconds, set when a poll first finds it completed


class FakeToAPIs(FakeServer):
    """The fake ToAPIs API. See the module docstring for routes and scripting.

    Attributes:
        task_script: the steps new tasks go through, one per poll.
        result_shape: where completed tasks put their image URLs.
        image: PNG bytes served for every result image.
        tasks: the submitted tasks by id (delete one to get a 404 task_not_found).
        polls_open: an event; while it is cleared, poll requests wait (unanswered) until
            it is set again, as a slow provider would keep them (the test holds workers
            mid-poll, each holding its job's lease).
    """

    def __init__(self, api_key: str | None = "toapis-test-key") -> None:
        super().__init__(api_key)
        self.task_script: tuple[TaskStep, ...] = DEFAULT_SCRIPT
        self.result_shape: Literal["result", "data", "url"] = "result"
        self.image = png_bytes(12, 8)
        self.tasks: dict[str, _Task] = {}
        self.polls_open = asyncio.Event()
        self.polls_open.set()
        self.uploads: dict[str, bytes] = {}
        self._route("GET", "/v1/models", "models", self._models)
        self._route("POST", "/v1/uploads/images", "upload", self._upload)
        self._route("POST", "/v1/images/generations", "submit", self._submit)
        self._route("GET", "/v1/images/generations/{task_id}", "poll", self._poll)
        self._route("GET", "/files/{name}", "file", self._file, auth=False)

    @staticmethod
    def error(
        status: int, code: str | int, message: str, headers: dict[str, str] | None = None
    ) -> FakeResponse:
        """The documented error body `{"error": {"code", "message", "type"}}`."""
        return FakeResponse.error(status, code, message, type="error", headers=headers)

    async def _models(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        data = [{"id": model, "object": "model"} for model in ("gpt-4o-image", "gpt-image-1")]
        return web.json_response({"success": True, "object": "list", "data": data})

    async def _upload(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        files = recorded.parts_named("file")
        if len(files) != 1 or not files[0].data:
            return self._invalid("field `file` is required")
        name = f"upload-{len(self.uploads) + 1}-{files[0].filename or 'image'}"
        self.uploads[name] = files[0].data
        return web.json_response(
            {
                "success": True,
                "data": {
                    "url": f"{self.root_url}/files/{name}",
                    "filename": files[0].filename,
                    "size": len(files[0].data),
                    "content_type": files[0].content_type,
                },
            }
        )

    async def _submit(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        body = recorded.json
        if not isinstance(body, dict) or not body.get("prompt"):
            return self._invalid("prompt is required")
        if body.get("size", "1:1") not in ("1:1", "2:3", "3:2"):
            return self._invalid("size must be one of 1:1, 2:3, 3:2")
        if body.get("n", 1) not in (1, 2, 4):
            return self._invalid("n must be one of 1, 2, 4")
        if len(body.get("image_urls") or []) > 5:
            return self._invalid("image_urls accepts at most 5 URLs")
        task = _Task(
            id=f"task_{len(self.tasks) + 1:04d}abc",
            n=int(body.get("n", 1)),
            model=str(body.get("model", "gpt-4o-image")),
            created_at=int(time.time()),
            script=tuple(self.task_script),
        )
        self.tasks[task.id] = task
        return web.json_response(
            {
                "id": task.id,
                "object": "generation.task",
                "model": task.model,
                "status": "queued",
                "progress": 0,
                "created_at": task.created_at,
            }
        )

    async def _poll(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        if task is None:
            return web.json_response(
                {"error": {"code": "task_not_found", "message": "Task not found", "type": "error"}},
                status=404,
            )
        await self.polls_open.wait()
        step = task.script[min(task.polls, len(task.script) - 1)]
        task.polls += 1
        payload: dict[str, Any] = {
            "id": task.id,
            "object": "generation.task",
            "model": task.model,
            "status": step.status,
            "progress": step.progress,
            "created_at": task.created_at,
        }
        if step.status == "failed":
            payload["error"] = {"code": step.error_code, "message": step.error_message}
        elif step.status == "completed":
            now = int(time.time())
            if task.completed_at is None:
                task.completed_at = now
            payload["completed_at"] = task.completed_at
            payload["expires_at"] = now + 86400
            urls = [f"{self.root_url}/files/{task.id}-{index}.png" for index in range(task.n)]
            if self.result_shape == "result":
                payload["result"] = {
                    "created": now,
                    "data": [{"url": url, "revised_prompt": "…"} for url in urls],
                }
            elif self.result_shape == "data":
                payload["data"] = [{"url": url} for url in urls]
            else:
                payload["url"] = urls[0]
        return web.json_response(payload)

    async def _file(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name in self.uploads:
            return web.Response(body=self.uploads[name], content_type="image/png")
        return web.Response(body=self.image, content_type="image/png")

    def _unauthorized(self, request: RecordedRequest) -> web.Response:
        return web.json_response(
            {"error": {"code": "unauthorized", "message": "Invalid API key", "type": "error"}},
            status=401,
        )

    @staticmethod
    def _invalid(message: str) -> web.Response:
        return web.json_response(
            {"error": {"code": "invalid_request", "message": message, "type": "error"}},
            status=400,
        )
