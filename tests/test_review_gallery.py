"""Team review, issue 10: a fully approved image goes to the gallery channel exactly once
(double click, a refused or lost post retried with backoff, a restart, a crash after the
post) and, when the bot is not in the gallery, the approver is told how to invite it, the
thread says the post is pending, the approval stands and the post is made once it can."""

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
    harness = await review_bot(tmp_path, gallery_retry_seconds=0.2, gallery_retry_max_seconds=0.4)
    text = set_command(harness, rest="--gallery #design-gallery")
    answer = await harness.emulator.send_slash_command(OLIVE, CHANNEL, text)
    assert "Saved" in answer.json()["text"]
    yield harness
    await harness.close()


async def _gallery_row(bot: Harness) -> GalleryPostRow:
    row = await _maybe_row(bot)
    assert row is not None
    return row


async def _maybe_row(bot: Harness) -> GalleryPostRow | None:
    async with bot.sm() as s:
        return await s.scalar(select(GalleryPostRow))


async def _wait_row(bot: Harness, state: str) -> GalleryPostRow:
    """Wait until the gallery intent exists and is in `state`."""
    for _ in range(400):
        row = await _maybe_row(bot)
        if row is not None and row.state == state:
            return row
        await asyncio.sleep(0.025)
    raise AssertionError(f"the gallery post never became {state}")


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


async def test_a_refused_post_is_retried_and_made_once_across_a_restart(bot: Harness) -> None:
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    emu.fail_next("chat.postMessage", "internal_error")  # the gallery post fails once
    await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    [post] = await emu.wait_for(lambda: emu.messages(GALLERY), within=10)
    row = await _wait_posted(bot)
    assert row.message_ts == post.ts and row.attempts == 1 and row.last_error == "slack_error"
    # The note goes to the thread at that channel's pace: it may come after the retry.
    [note] = await emu.wait_for(
        lambda: [m for m in bot.thread(result.thread_ts or "") if m.text.startswith(":hourglass:")],
        within=10,
    )
    assert "pending" in note.text and f"<#{GALLERY}>" in note.text
    async with bot.sm() as s:
        actions = list(await s.scalars(select(AuditRow.action).order_by(AuditRow.id)))
    assert actions == ["policy_set", "approve", "approved", "publish_failed", "published"]
    await bot.stop(crash=True)
    await bot.start()  # a restart finds nothing to do
    await emu.wait_idle()
    assert len(emu.messages(GALLERY)) == 1


async def test_a_lost_answer_is_found_instead_of_posted_again(bot: Harness) -> None:
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    emu.fail_after("chat.postMessage", lose="500", when=lambda p: p.get("channel") == GALLERY)
    await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    row = await _wait_posted(bot)
    await emu.wait_idle()
    [post] = emu.messages(GALLERY)
    assert row.message_ts == post.ts and row.attempts == 1
    assert emu.calls_to("conversations.history")  # the retry looked before posting


async def test_a_rate_limited_post_waits_for_retry_after(bot: Harness) -> None:
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    emu.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=1)
    await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await _wait_posted(bot)
    # The paced client (bot/slack_client.py) retries a short Retry-After itself; a long one
    # comes back to the gallery retries, which wait at least as long.
    tries = [c for c in emu.calls_to("chat.postMessage") if c.params.get("channel") == GALLERY]
    assert [c.ok for c in tries] == [False, True]
    assert tries[1].at - tries[0].at >= 0.9  # Retry-After: 1 (backoff alone is 0.2 s)
    assert len(emu.messages(GALLERY)) == 1


async def _wait_posted(bot: Harness) -> GalleryPostRow:
    return await _wait_row(bot, "posted")


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
    thread = bot.thread(result.thread_ts or "")
    [note] = await emu.wait_for(
        lambda: [m for m in bot.thread(result.thread_ts or "") if "pending" in m.text]
    )
    assert "/invite @imagine" in note.text and len(thread) >= 3
    async with bot.sm() as s:
        assert (await s.scalar(select(ApprovalRow.user_id))) == CAROL
        actions = list(await s.scalars(select(AuditRow.action).order_by(AuditRow.id)))
    assert actions[-1] == "publish_failed"
    row = await _gallery_row(bot)
    assert row.state in ("pending", "posting") and row.last_error == "not_in_channel"
    # Retried with backoff while the bot is out; someone invites it: posted once.
    await emu.wait_for(lambda: len(_gallery_tries(bot)) >= 3, within=10)
    emu.ws.channels[GALLERY].members.add(emu.ws.bot_user_id)
    [post] = await emu.wait_for(lambda: emu.messages(GALLERY), within=10)
    assert (await _wait_posted(bot)).message_ts == post.ts
    await emu.wait_idle()
    assert len(emu.messages(GALLERY)) == 1
    notes = [m for m in bot.thread(result.thread_ts or "") if "pending" in m.text]
    assert len(notes) == 1 and len(emu.ephemerals_for(CAROL)) == 1  # said once


def _gallery_tries(bot: Harness) -> list[object]:
    """Gallery post tries: history looks (a retry looks first) and posts in the gallery."""
    calls = bot.emulator.calls_to("conversations.history") + bot.emulator.calls_to(
        "chat.postMessage"
    )
    return [c for c in calls if c.params.get("channel") == GALLERY]


async def test_a_gallery_post_is_given_up_after_the_last_try(tmp_path: Path) -> None:
    bot = await review_bot(
        tmp_path, gallery_retry_seconds=0.1, gallery_retry_max_seconds=0.1, gallery_retry_attempts=3
    )
    try:
        emu = bot.emulator
        text = set_command(bot, rest="--gallery #design-gallery")
        await emu.send_slash_command(OLIVE, CHANNEL, text)
        del emu.ws.channels[GALLERY]  # the gallery channel was deleted
        v1 = await posted(bot)
        result = await result_of(bot, v1.id)
        await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
        row = await _wait_row(bot, "unreachable")
        assert row.attempts == 3
        assert row.last_error == "channel_not_found"
        async with bot.sm() as s:
            failed = list(
                await s.scalars(select(AuditRow.detail).where(AuditRow.action == "publish_failed"))
            )
        assert [d["retrying"] for d in failed] == [True, False]
    finally:
        await bot.close()
