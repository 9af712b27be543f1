"""The core loop through Slack: /imagine → thread → status → image → Approve / Regenerate."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from core.models import ApprovalRow, GenerationState, ImageRow, SessionRow
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text, buttons

S = GenerationState


async def test_imagine_posts_image_in_thread_then_approve_and_regenerate(tmp_path: Path) -> None:
    # Renders take 2.5 s so the throttled status message shows progress on the way.
    harness = await Harness(tmp_path, local_render_seconds=2.5).start()
    try:
        await _imagine_approve_regenerate(harness)
    finally:
        await harness.close()


async def _imagine_approve_regenerate(harness: Harness) -> None:
    emu = harness.emulator
    answer = await harness.imagine("a lighthouse at dusk --ar 3:2 --seed 42")
    assert answer.status == 200
    assert answer.text == ""  # acknowledged without a visible reply; the thread says the rest

    [generation] = await harness.generations()
    generation = await harness.wait_state(generation.id, S.POSTED)
    thread_ts = await harness.thread_of(generation.id)

    root = emu.message(CHANNEL, thread_ts)
    assert root is not None and root.thread_ts is None and root.bot_id
    assert f"<@{ALICE}>" in block_text(root)
    assert "a lighthouse at dusk" in block_text(root)
    assert "3:2" in block_text(root) and "local preview renderer" in block_text(root)

    thread = harness.thread(thread_ts)
    status, upload, result = thread[1], thread[2], thread[3]
    assert len(thread) == 4
    # The status message went queued → progress → done, edited in place.
    updates = [c.params["text"] for c in emu.calls_to("chat.update") if c.params["ts"] == status.ts]
    assert any("%" in text for text in updates)
    assert "done" in status.text and status.edits == len(updates)

    # The image is a PNG of the requested 3:2 size, uploaded into this thread.
    [file] = upload.files
    png = Image.open(io.BytesIO(emu.file_bytes(file.id)))
    assert png.format == "PNG"
    assert png.size == (generation.width, generation.height)
    assert png.size[0] * 2 == png.size[1] * 3
    async with harness.sm() as s:
        image = await s.scalar(select(ImageRow).where(ImageRow.generation_id == generation.id))
    assert image is not None and image.slack_file_id == file.id and image.width == png.size[0]

    g = generation.id
    assert buttons(result) == [
        ("approve", f"{g}:0"),
        ("request_changes", f"{g}:0"),
        ("refine_this", f"{g}:0"),
        ("regenerate", str(g)),
        ("history", str(g)),
    ]
    assert "seed 42" in block_text(result)

    # Bob approves: the message says so, the Approve button is gone, the approval is stored.
    click = await emu.click_button(BOB, CHANNEL, result.ts, "approve")
    assert click.status == 200
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    result = emu.message(CHANNEL, result.ts)
    assert f"Approved by <@{BOB}>" in block_text(result)
    assert "<!date^" in block_text(result)  # and when, in each reader's time zone
    assert buttons(result) == [
        ("refine_this", f"{g}:0"),
        ("regenerate", str(g)),
        ("history", str(g)),
    ]
    async with harness.sm() as s:
        [approval] = (await s.scalars(select(ApprovalRow))).all()
    assert approval.user_id == BOB and approval.image_id == image.id

    # Regenerate: a second generation in the same thread, same request, new seed.
    await emu.click_button(ALICE, CHANNEL, result.ts, "regenerate")
    first, second = await harness.wait_generations(2)
    second = await harness.wait_state(second.id, S.POSTED)
    assert second.session_id == first.session_id
    assert (second.version, second.parent_generation_id, second.kind) == (2, first.id, "regenerate")
    assert second.prompt == first.prompt and second.params == first.params
    assert second.seed != first.seed
    assert await harness.count(SessionRow) == 1
    thread = harness.thread(thread_ts)
    assert len([m for m in thread if m.files]) == 2
    latest = thread[-1]
    assert [a for a, _ in buttons(latest)] == [
        "approve",
        "request_changes",
        "refine_this",
        "regenerate",
        "history",
    ]
    assert ("approve", f"{second.id}:0") in buttons(latest)
    assert "v2" in block_text(latest)


async def test_two_concurrent_approvals_keep_the_first(harness: Harness) -> None:
    emu = harness.emulator
    await harness.imagine("two cats --n 2")
    [generation] = await harness.generations()
    await harness.wait_state(generation.id, S.POSTED)
    result = harness.thread(await harness.thread_of(generation.id))[-1]
    assert [a for a, _ in buttons(result)] == [
        "approve",
        "request_changes",
        "refine_this",
        "approve",
        "request_changes",
        "refine_this",
        "regenerate",
        "history",
    ]

    # Both click Approve on image 2 at once (both see the button).
    clicks = await asyncio.gather(
        emu.click_button(ALICE, CHANNEL, result.ts, "approve", f"{generation.id}:1"),
        emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{generation.id}:1"),
    )
    assert [c.status for c in clicks] == [200, 200]
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    await emu.wait_for(lambda: emu.ephemerals)
    async with harness.sm() as s:
        approvals = (await s.scalars(select(ApprovalRow))).all()
    assert len(approvals) == 1
    winner = approvals[0].user_id
    loser = BOB if winner == ALICE else ALICE
    result = emu.message(CHANNEL, result.ts)
    assert block_text(result).count("Approved by") == 1
    assert f"Approved by <@{winner}>" in block_text(result)
    # Image 1 can still be approved; image 2 cannot be approved twice.
    assert [v for a, v in buttons(result) if a == "approve"] == [f"{generation.id}:0"]
    [notice] = emu.ephemerals_for(loser)
    assert "already approved" in notice.text
