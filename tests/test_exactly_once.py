"""Exactly once across lost answers and restarts, over loopback HTTP to the stand-in.

Slack accepts a post and the answer never reaches the bot (the connection drops, a 500, or
the process dies): the engine must adopt what Slack already has (found by its message
metadata or, for files, by files.info) instead of posting a second root message, status
message, set of files or result message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.emulator import Message
from core.models import GenerationState, ImageRow
from core.providers.local import LocalProvider
from tests.harness import CHANNEL, Harness, buttons

S = GenerationState


def tagged(event_type: str) -> Any:
    """A `when` for fail_after: the call carries our metadata of `event_type`."""
    return lambda params: (params.get("metadata") or {}).get("event_type") == event_type


FAULTS = {
    "root": ("chat.postMessage", tagged("imagine_root")),
    "status": ("chat.postMessage", tagged("imagine_status")),
    "upload": ("files.completeUploadExternal", None),
    "result": ("chat.postMessage", tagged("imagine_result")),
}


def roots(harness: Harness) -> list[Message]:
    return [m for m in harness.emulator.messages(CHANNEL) if m.thread_ts is None and m.bot_id]


def of_type(thread: list[Message], event_type: str) -> list[Message]:
    return [m for m in thread if (m.metadata or {}).get("event_type") == event_type]


async def assert_exactly_once(harness: Harness, generation_id: int) -> None:
    """One root, one status message, one set of files, one result: what the channel shows."""
    row = await harness.wait_state(generation_id, S.POSTED, within=30)
    [root] = roots(harness)
    thread_ts = await harness.thread_of(generation_id)
    assert root.ts == thread_ts
    assert root.metadata == {
        "event_type": "imagine_root",
        "event_payload": {"generation_id": generation_id, "version": 1},
    }
    thread = harness.thread(thread_ts)
    [status] = of_type(thread, "imagine_status")
    assert status.ts == row.status_ts
    [shared] = [m for m in thread if m.files]
    [result] = [m for m in thread if "approve" in [a for a, _ in buttons(m)]]
    assert of_type(thread, "imagine_result") == [result] and result.ts == row.result_ts
    assert float(shared.ts) < float(result.ts)  # the images above their buttons
    async with harness.sm() as db:
        images = (
            await db.scalars(select(ImageRow).where(ImageRow.generation_id == generation_id))
        ).all()
    assert sorted(f.id for f in shared.files) == sorted(str(i.slack_file_id) for i in images)


@pytest.mark.parametrize("effect", list(FAULTS))
async def test_a_lost_answer_after_slack_accepted_is_adopted_not_posted_again(
    tmp_path: Path, effect: str
) -> None:
    harness = await Harness(tmp_path, provider=LocalProvider(render_seconds=0.2)).start()
    method, when = FAULTS[effect]
    harness.emulator.fail_after(method, when=when)
    try:
        await harness.imagine("a lighthouse in fog")
        [generation] = await harness.wait_generations(1)
        await harness.wait_row(generation.id, lambda r: r.error_kind == "publish")
        await assert_exactly_once(harness, generation.id)
        lost = [c for c in harness.emulator.calls_to(method) if c.response.get("lost")]
        assert len(lost) == 1  # the fault did happen
    finally:
        await harness.close()


@pytest.mark.parametrize("effect", ["root", "upload"])
async def test_a_restart_after_slack_accepted_resumes_without_posting_twice(
    tmp_path: Path, effect: str
) -> None:
    provider = LocalProvider(render_seconds=0.2)
    # A crashed process keeps its leases: the new one takes the job when they expire.
    harness = await Harness(tmp_path, provider=provider, job_lease_seconds=2).start()
    method, when = FAULTS[effect]
    harness.emulator.fail_after(method, when=when, lose="500")
    try:
        await harness.imagine("a lighthouse in fog")
        [generation] = await harness.wait_generations(1)
        await harness.wait_row(generation.id, lambda r: r.error_kind == "publish")
        await harness.stop(crash=True)  # the process dies before it tries again
        await harness.start()
        await assert_exactly_once(harness, generation.id)
        assert len(provider.submitted_task_ids) == 1
    finally:
        await harness.close()


async def test_files_are_visible_in_the_thread_before_the_result_message(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, provider=LocalProvider(render_seconds=0.1)).start()
    harness.emulator.api.share_delay = 0.5  # Slack shares files a moment after answering
    try:
        await harness.imagine("two foxes --n 2")
        [generation] = await harness.wait_generations(1)
        await assert_exactly_once(harness, generation.id)
        thread = harness.thread(await harness.thread_of(generation.id))
        [shared] = [m for m in thread if m.files]
        [result] = of_type(thread, "imagine_result")
        for file in shared.files:
            [share] = file.shares["public"][CHANNEL]
            assert float(share["ts"]) < float(result.ts)
        # a few files.info checks per upload batch, not one per file and poll
        assert 1 <= len(harness.emulator.calls_to("files.info")) <= 3
        for call in harness.emulator.calls_to("files.getUploadURLExternal"):
            assert call.params["alt_txt"] == "two foxes"
    finally:
        await harness.close()
