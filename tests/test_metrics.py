"""Observability (issue 13): GET /metrics after a generation, the worker's METRICS_PORT
server, and LOG_FORMAT=json lines that carry the session and generation ids."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.app import bound_port
from bot.worker import start_metrics_server
from core import metrics
from core.logs import JsonFormatter
from core.models import GenerationState
from tests.harness import Harness


async def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics on loopback: {(sample name, sorted labels): value}."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _total(samples: dict, name: str) -> float:
    return sum(v for (n, _labels), v in samples.items() if n == name)


async def test_metrics_move_after_a_generation(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, local_render_seconds=0.3).start()
    try:
        assert harness.runner is not None
        port = bound_port(harness.runner)
        before = await _scrape(port)
        await harness.imagine("a lighthouse at dusk")
        [row] = await harness.wait_generations(1)
        await harness.wait_state(row.id, GenerationState.POSTED)
        # The local renderer is free; a priced provider's estimate is added the same way.
        await metrics.completed(harness.sm, row.id, "priced", 0.25)
        after = await _scrape(port)
    finally:
        await harness.close()

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("imagine_generations_total", state="posted") == 1
    assert moved("imagine_generations_total", state="submitted") == 1
    assert moved("imagine_slack_calls_total", method="chat.postMessage") >= 3
    assert moved("imagine_slack_calls_total", method="files.completeUploadExternal") == 1
    assert moved("imagine_queue_wait_seconds_count") == 1
    assert moved("imagine_provider_task_seconds_count", provider="local") == 1
    calls = _total(after, "imagine_provider_call_seconds_count")
    assert calls - _total(before, "imagine_provider_call_seconds_count") >= 2  # submit, poll
    assert moved("imagine_cost_usd_total", provider="priced") == 0.25
    assert moved("imagine_status_edits_total", outcome="sent") >= 1
    assert _value(after, "imagine_event_loop_lag_seconds_count") > 0
    assert _value(after, "imagine_provider_breaker_state", provider="local") == 0
    assert ("imagine_jobs_in_flight", (("state", "queued"),)) in after


async def test_the_worker_serves_metrics_on_its_own_port() -> None:
    runner = await start_metrics_server(0, "127.0.0.1")
    try:
        samples = await _scrape(bound_port(runner))
    finally:
        await runner.cleanup()
    assert any(name == "process_cpu_seconds_total" for name, _ in samples)
    assert any(name.startswith("imagine_") for name, _ in samples)


async def test_json_log_lines_during_a_job_carry_its_ids(tmp_path: Path) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    harness = await Harness(tmp_path, local_render_seconds=0.3).start()
    try:
        await harness.imagine("a lighthouse at dusk")
        [row] = await harness.wait_generations(1)
        await harness.wait_state(row.id, GenerationState.POSTED)
    finally:
        await harness.close()
        root.removeHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    posted = [line for line in lines if line["message"] == f"job {row.id}: posted"]
    assert posted, lines
    assert posted[0]["generation_id"] == row.id
    assert posted[0]["session_id"] == row.session_id
    engine_lines = [line for line in lines if line["logger"].startswith("core.jobs")]
    assert engine_lines and all(line.get("generation_id") == row.id for line in engine_lines)
