"""Nothing a person typed reaches the log at INFO or above (issue 12): prompts, replies and
style text appear at DEBUG only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from core.models import GenerationState
from tests.harness import BOB, CHANNEL, Harness

SECRET_WORDS = ("zanzibar-lighthouse", "quokka-parade", "gore", "teal-fresco")


async def test_prompts_are_not_logged_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    harness = await Harness(tmp_path, local_render_seconds=0.1, moderation_blocklist="gore").start()
    try:
        await harness.imagine("a zanzibar-lighthouse at dusk")
        [v1] = await harness.wait_generations(1)
        await harness.wait_state(v1.id, GenerationState.POSTED)
        thread_ts = await harness.thread_of(v1.id)
        await harness.emulator.post_user_message(
            BOB, CHANNEL, "add a quokka-parade", thread_ts=thread_ts
        )
        [_, v2] = await harness.wait_generations(2)
        await harness.wait_state(v2.id, GenerationState.POSTED)
        await harness.imagine("lots of gore")
        await harness.imagine("style save fresco teal-fresco walls")
    finally:
        await harness.close()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    quiet = [r.getMessage() for r in caplog.records if r.levelno < logging.INFO]
    assert loud and not [m for m in loud if any(w in m for w in SECRET_WORDS)]
    assert any("zanzibar-lighthouse" in m for m in quiet)  # DEBUG may say it
