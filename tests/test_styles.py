"""Brand styles (issue 12) from Slack: save, list, show, apply, delete; style references in
the 5-image limit; the channel default and `--style none`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import messages
from core import styles
from core.db.refinement import inputs
from core.models import GenerationRow, GenerationState, StyleReferenceRow, StyleRow
from core.ports import InputsNote
from tests.fakes import png_bytes
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text

S = GenerationState
CAROL = "U0CAROL"


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(tmp_path, local_render_seconds=0.1, imagine_admins=CAROL)
    harness.emulator.add_user(CAROL, "carol")
    await harness.start()
    yield harness
    await harness.close()


async def _say(harness: Harness, text: str, user: str = ALICE) -> str:
    answer = await harness.imagine(text, user=user)
    assert answer.status == 200
    body = answer.json()
    assert body.get("response_type") == "ephemeral"
    return str(body["text"])


async def _team(harness: Harness) -> str:
    async with harness.sm() as db:
        team = await db.scalar(select(StyleRow.team_id).limit(1))
    assert team
    return team


async def _posted(harness: Harness, index: int = -1) -> GenerationRow:
    rows = await harness.wait_generations(abs(index) if index < 0 else index + 1)
    return await harness.wait_state(rows[index].id, S.POSTED)


async def test_save_list_show_apply_and_delete(local: Harness) -> None:
    said = await _say(local, "style save Brand flat pastel colours, thick <b>outlines</b>")
    assert "Saved style `brand`" in said
    assert "Updated" in await _say(local, "style save brand flat pastel colours, thick outlines")
    assert "Only the creator" in await _say(local, "style save brand neon", user=BOB)
    listed = await _say(local, "style list", user=BOB)
    assert "`brand`" in listed and "thick outlines" in listed
    shown = await _say(local, "style show BRAND")
    assert "flat pastel colours" in shown and f"<@{ALICE}>" in shown
    assert await local.count(GenerationRow) == 0  # style commands queue nothing

    assert not (await local.imagine("a lighthouse --style brand")).text
    v1 = await _posted(local)
    assert v1.provider_prompt == "a lighthouse. Style: flat pastel colours, thick outlines"
    result = local.thread(await local.thread_of(v1.id))[-1]
    assert "Style brand applied" in block_text(result)

    unknown = await local.ask("a lighthouse --style brnad")  # told after the ack
    assert "no style `brnad`" in unknown and "`brand`" in unknown
    assert "Nothing was queued" in unknown
    assert await local.count(GenerationRow) == 1

    assert "Only the creator" in await _say(local, "style delete brand", user=BOB)
    assert "Deleted style `brand`" in await _say(local, "style delete brand", user=CAROL)
    assert "No styles saved yet" in await _say(local, "style list")
    # A prompt that merely starts with the word is a prompt.
    assert not (await local.imagine("style of Monet, a pond")).text


async def test_escaped_and_moderated_style_text(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, moderation_blocklist="gore").start()
    try:
        refused = await _say(harness, "style save grim lots of gore")
        assert "`gore`" in refused
        assert await harness.count(StyleRow) == 0
        await _say(harness, "style save odd <@U0ALL> & <!channel>")
        shown = await _say(harness, "style show odd")
        assert "&lt;!channel&gt;" in shown and "<!channel>" not in shown
    finally:
        await harness.close()


async def test_style_references_count_toward_the_five_image_limit(local: Harness) -> None:
    await _say(local, "style save brand flat pastel colours")
    team = await _team(local)
    for n in range(4):
        count = await styles.add_reference(
            local.sm, local.runtime.store, team, "brand", png_bytes(8 + n, 8), f"logo{n}.png"
        )
    assert count == 4
    with pytest.raises(styles.StyleRefused):
        await styles.add_reference(
            local.sm, local.runtime.store, team, "brand", png_bytes(9, 9), "x"
        )
    assert await local.count(StyleReferenceRow) == 4

    await local.imagine("a lighthouse --style brand")
    v1 = await _posted(local)
    async with local.sm() as db:
        given = await inputs(db, v1.id)
    assert [i.label for i in given] == ["logo0.png", "logo1.png", "logo2.png", "logo3.png"]
    assert "4 reference images (counted in the 5-image limit)" in _note(v1)

    thread_ts = await local.thread_of(v1.id)
    files = [(f"mine{n}.png", png_bytes(20 + n, 20), "image/png") for n in range(2)]
    _ts, delivery = await local.emulator.post_user_message(
        BOB, CHANNEL, "warmer light", thread_ts=thread_ts, files=files
    )
    assert delivery is not None
    v2 = await _posted(local, 1)
    async with local.sm() as db:
        given = await inputs(db, v2.id)
    # The base image and the style's 4 references fill the 5 slots: the posted ones are dropped.
    assert [i.role for i in given] == ["base"] + ["reference"] * 4
    assert "mine0.png" in _note(v2) and "not used" in _note(v2)
    assert "Style brand applied" in _note(v2)


async def test_channel_default_style_and_style_none(local: Harness) -> None:
    await _say(local, "style save brand flat pastel colours")
    assert "Only an admin" in await _say(local, "style default brand")
    assert "default style" in await _say(local, "style default brand", user=CAROL)

    await local.imagine("a lighthouse")
    v1 = await _posted(local)
    assert (v1.provider_prompt or "").endswith("Style: flat pastel colours")

    await local.imagine("a harbour --style none")
    v2 = await _posted(local, 1)
    assert v2.provider_prompt is None and v2.prompt == "a harbour"

    # A reply in the --style none session keeps none; one in the default session keeps it.
    await local.emulator.post_user_message(
        BOB, CHANNEL, "add a boat", thread_ts=await local.thread_of(v2.id)
    )
    v3 = await _posted(local, 2)
    assert "Style" not in (v3.provider_prompt or "")
    await local.emulator.post_user_message(
        BOB, CHANNEL, "add gulls", thread_ts=await local.thread_of(v1.id)
    )
    v4 = await _posted(local, 3)
    assert (v4.provider_prompt or "").endswith("Style: flat pastel colours")

    assert "no default style" in await _say(local, "style default none", user=CAROL)
    await local.imagine("a dune")
    v5 = await _posted(local, 4)
    assert v5.provider_prompt is None


def _note(row: GenerationRow) -> str:
    """The note shown with a generation's result, as the bot words it."""
    note = InputsNote.from_stored(row.inputs_note)
    return messages.inputs_note(note) if note else ""
