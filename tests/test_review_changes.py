"""Team review, issue 10: Request changes opens a modal (views.open with the click's
trigger_id), validates in the modal (response_action: errors), and on submit posts the
comment in the thread and makes it the next version exactly like a reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import messages
from core.models import AuditRow, ChangeRequestRow, GenerationState
from tests.harness import BOB, CHANNEL, Harness, block_text
from tests.review_support import posted, result_of, review_bot

COMMENT = "make the sky <stormier> & darker"


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path)
    yield harness
    await harness.close()


async def test_request_changes_comment_becomes_the_next_version(bot: Harness) -> None:
    emu = bot.emulator
    v1 = await posted(bot, "a lighthouse --n 2")
    result = await result_of(bot, v1.id)
    await emu.click_button(BOB, CHANNEL, result.ts, "request_changes", f"{v1.id}:1")
    [modal] = await emu.wait_for(lambda: emu.open_views(BOB))
    [opened] = emu.calls_to("views.open")
    assert opened.ok and opened.params["trigger_id"]
    assert "v1 image 2" in str(modal.view["blocks"][0]["text"]["text"])
    # An empty comment: the modal stays open with the error on the comment block.
    answer = await emu.submit_view(BOB, modal.id, {"comment": {"comment": {"value": "  "}}})
    assert answer.json() == {
        "response_action": "errors",
        "errors": {"comment": messages.EMPTY_COMMENT},
    }
    assert not modal.closed and modal.errors == {"comment": messages.EMPTY_COMMENT}
    answer = await emu.submit_view(
        BOB, modal.id, {"comment": {"comment": {"type": "plain_text_input", "value": COMMENT}}}
    )
    assert answer.status == 200 and modal.closed
    rows = await bot.wait_generations(2)
    v2 = await bot.wait_state(rows[1].id, GenerationState.POSTED)
    assert (v2.kind, v2.instruction, v2.requested_by) == ("refine", COMMENT, BOB)
    assert v2.parent_image_id is not None
    thread = bot.thread(await bot.thread_of(v1.id))
    [note] = [m for m in thread if m.text.startswith(":memo:")]
    assert note.text == (
        f":memo: <@{BOB}> requested changes to v1 image 2:\n"
        "> make the sky &lt;stormier&gt; &amp; darker"
    )
    old = emu.message(CHANNEL, result.ts)
    assert old is not None and f"Changes requested by <@{BOB}>" in block_text(old)
    new_result = await result_of(bot, v2.id)
    assert "from v1 image 2" in block_text(new_result)
    async with bot.sm() as s:
        request = await s.scalar(select(ChangeRequestRow))
        actions = list(await s.scalars(select(AuditRow.action)))
    assert request is not None
    assert (request.generation_id, request.image_index, request.new_generation_id) == (
        v1.id,
        1,
        v2.id,
    )
    assert actions == ["changes_requested"]


async def test_a_stale_trigger_is_refused_by_the_stand_in(bot: Harness) -> None:
    runtime = bot.runtime
    assert runtime is not None
    view_id = await runtime.publisher.open_view("1.2.emu-made-up", {"type": "modal"})
    assert view_id is None
    assert bot.emulator.calls_to("views.open")[-1].error == "invalid_trigger_id"
