"""The fake ToAPIs server with tasks that finish by the clock instead of by poll count.

A task submitted at monotonic time `t` with duration `d` (chosen from its prompt) answers
polls with `in_progress` and `progress` = elapsed / d (in %) until `t + d`, and
`completed` from then on, with `completed_at` = `created_at` + `d` (Unix seconds, whole as
ToAPIs sends them): like a provider whose tasks take `d` seconds, whenever and however often
they are polled. Everything else is :class:`FakeToAPIs` (wire protocol,
auth, recorded requests).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from aiohttp import web

from tests.fakes import RecordedRequest
from tests.fakes.toapis_server import FakeToAPIs, TaskStep

API_KEY = "toapis-bench-key"


class TimedToAPIs(FakeToAPIs):
    """FakeToAPIs whose tasks take `duration(prompt)` seconds.

    Attributes:
        submitted_at: task id → monotonic seconds when it was submitted.
        durations: task id → seconds the task takes.
        prompts: task id → the prompt it was submitted with.
    """

    def __init__(self, duration: Callable[[str], float], api_key: str = API_KEY) -> None:
        super().__init__(api_key)
        self.duration = duration
        self.submitted_at: dict[str, float] = {}
        self.durations: dict[str, float] = {}
        self.prompts: dict[str, str] = {}

    def completed_at(self, task_id: str) -> float:
        """When the task completed (or will), monotonic seconds."""
        return self.submitted_at[task_id] + self.durations[task_id]

    def polls(self, task_id: str) -> int:
        """How many times the task was polled."""
        return self.tasks[task_id].polls

    async def _submit(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        response = await super()._submit(recorded, request)
        if response.status == 200 and isinstance(response.body, bytes):
            task_id = json.loads(response.body)["id"]
            prompt = str(recorded.json.get("prompt", ""))
            self.submitted_at[task_id] = time.monotonic()
            self.durations[task_id] = self.duration(prompt)
            self.prompts[task_id] = prompt
            # created_at was read (and truncated) a moment ago, as ToAPIs would
            self.tasks[task_id].completed_at = int(time.time() + self.durations[task_id])
        return response

    async def _poll(self, recorded: RecordedRequest, request: web.Request) -> web.Response:
        task = self.tasks.get(request.match_info["task_id"])
        if task is not None and task.id in self.submitted_at:
            elapsed = time.monotonic() - self.submitted_at[task.id]
            length = self.durations[task.id]
            if elapsed >= length:
                task.script = (TaskStep("completed", 100),)
            else:
                task.script = (TaskStep("in_progress", min(99, int(100 * elapsed / length))),)
        return await super()._poll(recorded, request)
