"""Team review, issue 10: a fully approved image goes to the gallery channel exactly once
(double click, a crash before the post, a crash after it) and, when the bot is not in the
gallery, the approver is told how to invite it while the approval stands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core.models import ApprovalRow, AuditRow, GalleryPostRow
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text
from tests.review_support import CAROL, GALLERY, OLIVE, posted, result_of, review_bot, set_command


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path)
    text = set_command(harness, rest="--gallery #design-gallery")
    answer = await harness.emulator.send_slash_command(OLIVE, CHANNEL, text)
    assert "Saved" in answer.json()["text"]
    yield harness
    await harness.close()


async def _gallery_row(bot: Harness) -> GalleryPostRow:
    async with bot.sm() as s:
        row = await s.scalar(select(GalleryPostRow))
    assert row is not None
    return row


async def test_a_double_click_publishes_once_with_the_post_contents(bot: Harness) -> None:
    v1 = await posted(bot, "a <b>lighthouse</b> & sea")
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    await asyncio.gather(
        *(emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0") for _ in range(2))
    )
    [post] = await emu.wait_for(lambda: emu.messages(GALLERY))
    await emu.wait_for(lambda: emu.ephemerals_for(BOB))  # the second click: already approved
    await emu.wait_idle()
    assert len(emu.messages(GALLERY)) == 1
    text = block_text(post)
    assert f"by <@{ALICE}>" in text and f"Approved by <@{BOB}>" in text
    assert "&lt;b&gt;lighthouse&lt;/b&gt; &amp; sea" in text and "<b>" not in text
    assert "Versions: v1" in text and "|Open the thread>" in text
    [image] = [b for b in post.blocks if b["type"] == "image"]
    assert image["slack_file"]["id"] == emu.replies(CHANNEL, result.thread_ts or "")[2].files[0].id
    assert post.metadata and post.metadata["event_type"] == "imagine_gallery_post"
    row = await _wait_posted(bot)
    assert row.message_ts == post.ts
    async with bot.sm() as s:
        actions = list(await s.scalars(select(AuditRow.action).order_by(AuditRow.id)))
    assert actions == ["policy_set", "approve", "approved", "published"]


async def test_a_crash_before_the_post_is_resumed_once_at_start(bot: Harness) -> None:
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    emu.fail_next("chat.postMessage", "internal_error")  # the gallery post fails
    await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    await emu.wait_for(lambda: [c for c in emu.calls_to("chat.postMessage") if not c.ok])
    await emu.wait_idle()
    assert emu.messages(GALLERY) == [] and (await _gallery_row(bot)).state == "posting"
    await bot.stop(crash=True)
    async with bot.sm.begin() as s:  # the claim is older than GALLERY_STALE_SECONDS
        await s.execute(update(GalleryPostRow).values(claimed_at=GalleryPostRow.claimed_at - 3600))
    await bot.start()
    [post] = await emu.wait_for(lambda: emu.messages(GALLERY), within=10)
    row = await _wait_posted(bot)
    assert row.message_ts == post.ts
    await bot.stop()
    await bot.start()  # another start finds nothing to do
    await emu.wait_idle()
    assert len(emu.messages(GALLERY)) == 1


async def _wait_posted(bot: Harness) -> GalleryPostRow:
    for _ in range(400):
        row = await _gallery_row(bot)
        if row.state == "posted":
            return row
        await asyncio.sleep(0.025)
    raise AssertionError("the gallery post was never recorded")


async def test_a_crash_after_the_post_finds_it_instead_of_posting_again(bot: Harness) -> None:
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    [post] = await emu.wait_for(lambda: emu.messages(GALLERY))
    await _wait_posted(bot)
    await bot.stop(crash=True)
    async with bot.sm.begin() as s:  # as if the process died between the post and its record
        await s.execute(
            update(GalleryPostRow).values(state="posting", message_ts=None, claimed_at=1.0)
        )
    await bot.start()
    row = await _wait_posted(bot)
    assert row.message_ts == post.ts
    await emu.wait_idle()
    assert len(emu.messages(GALLERY)) == 1
    assert emu.calls_to("conversations.history")  # it looked before posting


async def test_a_gallery_without_the_bot_tells_the_approver_and_the_approval_stands(
    bot: Harness,
) -> None:
    emu = bot.emulator
    emu.ws.channels[GALLERY].members.discard(emu.ws.bot_user_id)
    v1 = await posted(bot)
    result = await result_of(bot, v1.id)
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    [notice] = await emu.wait_for(lambda: emu.ephemerals_for(CAROL))
    assert "/invite @imagine" in notice.text and f"<#{GALLERY}>" in notice.text
    assert "Your approval stands" in notice.text
    assert "Approved by" in block_text(emu.message(CHANNEL, result.ts))
    async with bot.sm() as s:
        assert (await s.scalar(select(ApprovalRow.user_id))) == CAROL
        actions = list(await s.scalars(select(AuditRow.action).order_by(AuditRow.id)))
    assert actions[-1] == "publish_failed"
    assert (await _gallery_row(bot)).state == "unreachable"
