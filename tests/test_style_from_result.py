"""*Save style…* on a result over loopback HTTP (issue 12): the image's "…" menu opens a
modal prefilled with the version's prompt; a bad name, an empty or refused text, or a
style someone else owns keep the modal open with the reason under the field; a valid
submission saves the style with that image as a reference, which `--style` then sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.blocks import SAVE_STYLE
from bot.style_views import NAME_ACTION, NAME_BLOCK, TEXT_ACTION, TEXT_BLOCK
from core import styles
from core.models import ImageRow, InputRow, SessionRow, StyleRow
from tests.harness import ALICE, BOB, CHANNEL, Harness
from tests.review_support import posted, result_of


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, local_render_seconds=0.1, moderation_blocklist="gore")
    await harness.start()
    yield harness
    await harness.close()


def _values(name: str, text: str) -> dict[str, dict[str, dict[str, str]]]:
    return {
        NAME_BLOCK: {NAME_ACTION: {"type": "plain_text_input", "value": name}},
        TEXT_BLOCK: {TEXT_ACTION: {"type": "plain_text_input", "value": text}},
    }


async def test_save_style_from_a_result_takes_the_image_as_reference(bot: Harness) -> None:
    emu = bot.emulator
    v1 = await posted(bot, "a lighthouse, flat pastel, thick outlines --n 2")
    result = await result_of(bot, v1.id)
    await emu.choose_overflow(BOB, CHANNEL, result.ts, SAVE_STYLE, f"{v1.id}:1")
    [modal] = await emu.wait_for(lambda: emu.open_views(BOB))
    assert "v1 image 2" in modal.view["blocks"][0]["text"]["text"]
    text_input = modal.view["blocks"][2]["element"]
    assert text_input["initial_value"] == "a lighthouse, flat pastel, thick outlines"

    for name, text, field, said in (
        ("bad name!", "flat pastel", NAME_BLOCK, "letters, digits"),
        ("pastel", "   ", TEXT_BLOCK, "Describe the look"),
        ("pastel", "flat pastel, gore", TEXT_BLOCK, "refused (blocklist)"),
    ):
        answer = await emu.submit_view(BOB, modal.id, _values(name, text))
        assert answer.json()["response_action"] == "errors"
        assert said in answer.json()["errors"][field] and not modal.closed
    assert await bot.count(StyleRow) == 0

    answer = await emu.submit_view(BOB, modal.id, _values("Pastel", "flat pastel, thick outlines"))
    assert answer.status == 200 and modal.closed
    notes = await emu.wait_for(lambda: emu.ephemerals_for(BOB))
    thread_ts = await bot.thread_of(v1.id)
    assert notes[-1].thread_ts == thread_ts
    assert "Saved style `pastel` with v1 image 2 as a reference image (1 of 4)" in notes[-1].text
    async with bot.sm() as db:
        team = await db.scalar(select(SessionRow.team_id)) or ""
        image_path = await db.scalar(
            select(ImageRow.path).where(ImageRow.generation_id == v1.id, ImageRow.index == 1)
        )
    saved = await styles.show(bot.sm, team, "pastel")
    assert saved.text == "flat pastel, thick outlines" and saved.created_by == BOB
    assert [r.path for r in saved.references] == [image_path]

    # Alice may not change Bob's style from her own click: the reason is under the name.
    await emu.choose_overflow(ALICE, CHANNEL, result.ts, SAVE_STYLE, f"{v1.id}:0")
    [theirs] = await emu.wait_for(lambda: emu.open_views(ALICE))
    answer = await emu.submit_view(ALICE, theirs.id, _values("pastel", "pastel"))
    assert "belongs to someone else" in answer.json()["errors"][NAME_BLOCK]
    assert len((await styles.show(bot.sm, team, "pastel")).references) == 1

    # The style works: its reference goes with the next request.
    v2 = await posted(bot, "a harbour --style pastel", user=ALICE)
    async with bot.sm() as db:
        inputs = await db.scalars(select(InputRow.path).where(InputRow.generation_id == v2.id))
        assert list(inputs.all()) == [image_path]
