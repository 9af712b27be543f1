"""Forget-me from Slack (issue 12): `/imagine forget-me` answers privately with what will
go and a confirmation button; someone else's click changes nothing; the person's click
erases their rows and images and deletes the bot's messages and files of their sessions
in Slack (chat.delete, files.delete), each deletion recorded before it is made, so a
second click or a second run deletes nothing twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from bot.blocks import FORGET_ME
from bot.emulator.server import SlackEmulator
from core import forget
from core.db import privacy as repo
from core.db.privacy import FORGOTTEN
from core.models import (
    CostRow,
    DeletionRow,
    GalleryPostRow,
    GenerationRow,
    ImageRow,
    SessionRow,
)
from core.models import GenerationState as S
from core.ports import PublishError
from tests.harness import ALICE, BOB, CHANNEL, Harness
from tests.review_support import CAROL, GALLERY, OLIVE, posted, result_of, review_bot, set_command


async def _posted(harness: Harness, count: int) -> GenerationRow:
    rows = await harness.wait_generations(count)
    return await harness.wait_state(rows[count - 1].id, S.POSTED)


async def _file_ids(harness: Harness, generation_id: int) -> list[str]:
    async with harness.sm() as db:
        found = await db.scalars(
            select(ImageRow.slack_file_id).where(ImageRow.generation_id == generation_id)
        )
        return [f for f in found.all() if f]


def _share_messages(emu: SlackEmulator, file_ids: list[str]) -> list[str]:
    """The ts of the messages that share these files (Slack's `shares` field)."""
    found = {
        share["ts"]
        for f in file_ids
        for by_channel in emu.file(f).shares.values()
        for entries in by_channel.values()
        for share in entries
    }
    return sorted(found)


async def test_forget_me_from_slack_deletes_once_and_only_for_the_asker(tmp_path: Path) -> None:
    bot = await Harness(tmp_path, local_render_seconds=0.1).start()
    emu = bot.emulator
    try:
        await bot.imagine("alice's secret lighthouse --n 2", user=ALICE)
        alice = await _posted(bot, 1)
        await bot.imagine("bob's harbour", user=BOB)
        bob = await _posted(bot, 2)
        a_root, b_root = await bot.thread_of(alice.id), await bot.thread_of(bob.id)
        a_files, b_files = await _file_ids(bot, alice.id), await _file_ids(bot, bob.id)
        assert len(a_files) == 2 and len(b_files) == 1
        assert alice.result_ts and alice.status_ts and bob.result_ts
        a_share, b_share = _share_messages(emu, a_files), _share_messages(emu, b_files)
        assert len(a_share) == len(b_share) == 1  # one file_share message per batch

        assert (await bot.imagine("forget-me", user=ALICE)).status == 200
        notes = await emu.wait_for(lambda: emu.ephemerals_for(ALICE))
        note = notes[-1]
        assert "1 session you started" in note.text and "2 generated images" in note.text
        assert await bot.count(DeletionRow) == 0  # nothing is recorded before the click

        await emu.click_ephemeral_button(note, FORGET_ME, forged_by=BOB)
        refused = await emu.wait_for(lambda: emu.ephemerals_for(BOB))
        assert "belongs to someone else" in refused[-1].text
        async with bot.sm() as db:
            owners = set((await db.scalars(select(SessionRow.owner_user_id))).all())
        assert owners == {ALICE, BOB} and emu.message(CHANNEL, a_root) is not None
        assert not emu.calls_to("chat.delete") and not emu.calls_to("files.delete")

        seen = len(emu.ephemerals_for(ALICE))
        await emu.click_ephemeral_button(note, FORGET_ME)
        done = await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[seen:])
        assert "Removed" in done[0].text and "2 generated images" in done[0].text
        assert "6 of the bot's Slack messages and files" in done[0].text

        for ts in (a_root, alice.status_ts, alice.result_ts, *a_share):
            assert emu.message(CHANNEL, ts) is None  # deleted in Slack
        assert all(emu.file(f).deleted for f in a_files)
        assert emu.message(CHANNEL, b_root) is not None  # Bob's thread is intact
        assert emu.message(CHANNEL, bob.result_ts) is not None
        assert emu.message(CHANNEL, b_share[0]) is not None
        assert not any(emu.file(f).deleted for f in b_files)
        deletes = len(emu.calls_to("chat.delete")), len(emu.calls_to("files.delete"))
        assert deletes == (4, 2) and all(c.ok for c in emu.calls_to("chat.delete"))
        share_delete = emu.calls_to("chat.delete")[-1]  # after its files: it is recorded
        assert share_delete.params.get("ts") == a_share[0]  # from their shares, then deleted
        methods = [(c.method, c.params.get("file")) for c in emu.calls]
        for f in a_files:  # each file's shares are read before the file is deleted
            assert methods.index(("files.info", f)) < methods.index(("files.delete", f))
        async with bot.sm() as db:
            rows = (await db.scalars(select(DeletionRow))).all()
            images = (await db.scalars(select(ImageRow.generation_id))).all()
            prompt = await db.scalar(
                select(GenerationRow.prompt).where(GenerationRow.id == alice.id)
            )
            payers = set((await db.scalars(select(CostRow.user_id))).all())
        assert len(rows) == 6 and {r.outcome for r in rows} == {"deleted"}
        assert all(r.attempts == 1 and r.done_at for r in rows)
        assert list(images) == [bob.id] and prompt == ""
        assert payers == {FORGOTTEN, BOB}  # usage keeps anonymous totals

        seen = len(emu.ephemerals_for(ALICE))  # a second click: nothing happens twice
        await emu.click_ephemeral_button(note, FORGET_ME)
        again = await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[seen:])
        assert "Nothing was left to remove" in again[0].text
        assert (len(emu.calls_to("chat.delete")), len(emu.calls_to("files.delete"))) == deletes
        assert await bot.count(DeletionRow) == 6

        await bot.imagine("forget-me", user=ALICE)  # and the command says so
        nothing = await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[seen + 1 :])
        assert "nothing of yours to forget" in nothing[0].text
    finally:
        await bot.close()


async def test_deletions_are_claimed_once_and_retried_only_when_unanswered(
    tmp_path: Path,
) -> None:
    """The deletion queue alone: concurrent runs delete each item once; a transient failure
    is tried again by the next run, a refusal or a success never."""
    bot = await Harness(tmp_path).start()
    try:
        async with bot.sm.begin() as db:
            await repo.record_deletions(db, "T1", [("C1", "1.1"), ("C1", "1.2")], ["F1", "F2"])
            await repo.record_deletions(db, "T1", [("C1", "1.1")], ["F1"])  # known: skipped
        calls: list[str] = []
        flaky: set[str] = set()

        async def delete(item: forget.Deletion) -> str:
            calls.append(item.ref)
            await asyncio.sleep(0.05)  # both runs overlap on every item
            if item.ref in flaky:
                flaky.discard(item.ref)
                raise PublishError("Slack answered 503")
            return "cant_delete_message" if item.ref == "1.2" else "deleted"

        first, second = await asyncio.gather(
            forget.run_deletions(bot.sm, "T1", delete), forget.run_deletions(bot.sm, "T1", delete)
        )
        assert sorted(calls) == ["1.1", "1.2", "F1", "F2"]  # each once, whichever run took it
        assert (first.deleted + second.deleted, first.refused + second.refused) == (3, 1)
        assert await forget.run_deletions(bot.sm, "T1", delete) == forget.DeletionCounts()

        async with bot.sm.begin() as db:  # a later forget-me; Slack fails once on its file
            await repo.record_deletions(db, "T1", [], ["F3"])
        flaky.add("F3")
        assert (await forget.run_deletions(bot.sm, "T1", delete)).retry == 1
        assert (await forget.run_deletions(bot.sm, "T1", delete)).deleted == 1
        assert calls[4:] == ["F3", "F3"]
        assert await forget.run_deletions(bot.sm, "T2", delete) == forget.DeletionCounts()
    finally:
        await bot.close()


async def test_a_files_share_messages_are_recorded_before_the_file_goes(tmp_path: Path) -> None:
    """With a Sharer, each due file's share messages are recorded first (its deletion
    waits when they cannot be read), then deleted once even by concurrent runs."""
    bot = await Harness(tmp_path).start()
    try:
        async with bot.sm.begin() as db:
            await repo.record_deletions(db, "T1", [], ["F1"])
        calls: list[tuple[str, str]] = []
        failing = [True]

        async def shares(file_id: str) -> list[tuple[str, str]]:
            calls.append(("shares", file_id))
            if failing:
                failing.pop()
                raise PublishError("Slack answered 503")
            return [("C1", "9.1"), ("C2", "9.2")]

        async def delete(item: forget.Deletion) -> str:
            if item.kind == "file":  # its share messages are recorded by now
                assert await bot.count(DeletionRow) == 3
            calls.append((item.kind, item.ref))
            await asyncio.sleep(0.05)  # both runs overlap
            return "deleted"

        held = await forget.run_deletions(bot.sm, "T1", delete, shares)
        assert held == forget.DeletionCounts(retry=1) and calls == [("shares", "F1")]
        assert await bot.count(DeletionRow) == 1  # nothing deleted, nothing guessed

        first, second = await asyncio.gather(
            forget.run_deletions(bot.sm, "T1", delete, shares),
            forget.run_deletions(bot.sm, "T1", delete, shares),
        )
        made = sorted(c for c in calls if c[0] != "shares")
        assert made == [("file", "F1"), ("message", "9.1"), ("message", "9.2")]
        assert first.deleted + second.deleted == 3 and await bot.count(DeletionRow) == 3
        calls.clear()
        assert await forget.run_deletions(bot.sm, "T1", delete, shares) == forget.DeletionCounts()
        assert calls == []  # a deleted file's shares are not read again
    finally:
        await bot.close()


async def _gallery_posted(bot: Harness, ts: str) -> None:
    """Wait until the gallery post's ts is recorded (after Slack answered)."""
    for _ in range(400):
        async with bot.sm() as db:
            if await db.scalar(select(GalleryPostRow.message_ts)) == ts:
                return
        await asyncio.sleep(0.025)
    raise AssertionError("the gallery post was never recorded")


async def test_forget_me_deletes_the_gallery_posts_once_across_a_restart(tmp_path: Path) -> None:
    """The gallery post of the person's approved image is recorded and deleted with their
    thread; a deletion Slack did not answer is made by the next run, after a restart, and
    nothing is deleted twice."""
    bot = await review_bot(tmp_path)
    emu = bot.emulator
    try:
        text = set_command(bot, rest="--gallery #design-gallery")
        assert "Saved" in (await emu.send_slash_command(OLIVE, CHANNEL, text)).json()["text"]
        v1 = await posted(bot, "alice's lighthouse")
        result = await result_of(bot, v1.id)
        await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
        [post] = await emu.wait_for(lambda: emu.messages(GALLERY))
        await _gallery_posted(bot, post.ts)
        bob = await posted(bot, "bob's harbour", user=BOB)  # not Alice's: stays

        await bot.imagine("forget-me", user=ALICE)
        note = (await emu.wait_for(lambda: emu.ephemerals_for(ALICE)))[-1]
        assert "1 gallery post of your images" in note.text
        assert "still being made" not in note.text
        emu.fail_next("chat.delete", "internal_error")  # the first deletion: no answer
        await emu.click_ephemeral_button(note, FORGET_ME)
        done = (await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[1:]))[0]
        assert "Slack did not answer for 1 of them" in done.text
        assert await bot.count(GalleryPostRow) == 0  # went with the image

        await bot.stop()  # a restart; the next forget-me of the workspace finishes the job
        await bot.start()
        await bot.imagine("forget-me", user=CAROL)  # nothing of hers: finishes deletions
        await emu.wait_for(lambda: emu.ephemerals_for(CAROL))
        assert emu.message(GALLERY, post.ts) is None and emu.messages(GALLERY) == []
        assert emu.message(CHANNEL, v1.result_ts or "") is None
        assert emu.message(CHANNEL, bob.result_ts or "") is not None
        deleted = [c.params["ts"] for c in emu.calls_to("chat.delete") if c.ok]
        assert post.ts in deleted and len(deleted) == len(set(deleted))  # each once
        async with bot.sm() as db:
            rows = (await db.scalars(select(DeletionRow))).all()
        assert {r.outcome for r in rows} == {"deleted"}
        assert len([r for r in rows if r.kind == "message"]) == len(deleted)
        assert sum(r.attempts for r in rows) == len(rows) + 1  # the unanswered one twice
        calls = len(emu.calls_to("chat.delete")), len(emu.calls_to("files.delete"))
        await bot.stop()
        await bot.start()
        await bot.imagine("forget-me", user=ALICE)  # nothing is left: nothing is deleted
        await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[2:])
        assert (len(emu.calls_to("chat.delete")), len(emu.calls_to("files.delete"))) == calls
    finally:
        await bot.close()


_POSTING = ("chat.postMessage", "files.getUploadURLExternal", "files.completeUploadExternal")


async def test_forget_me_cancels_a_running_version_which_then_posts_nothing(
    tmp_path: Path,
) -> None:
    """A version of the person's still being made is cancelled as by the Cancel button:
    its thread and status are deleted and it posts no result, no file, no status after."""
    bot = await Harness(tmp_path, local_render_seconds=60).start()
    emu = bot.emulator
    try:
        await bot.imagine("alice's slow lighthouse", user=ALICE)
        [row] = await bot.wait_generations(1)
        running = await bot.wait_row(
            row.id, lambda r: r.status_ts is not None and r.state == S.SUBMITTED
        )
        root = await bot.thread_of(row.id)

        await bot.imagine("forget-me", user=ALICE)
        note = (await emu.wait_for(lambda: emu.ephemerals_for(ALICE)))[-1]
        assert "1 version still being made: cancelled" in note.text
        assert "gallery post" not in note.text
        before = len(emu.calls)
        await emu.click_ephemeral_button(note, FORGET_ME)
        done = (await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[1:]))[0]
        assert "2 of the bot's Slack messages and files" in done.text
        stopped = await bot.generation(row.id)
        assert stopped.state == S.CANCELLED and stopped.result_ts is None
        assert emu.message(CHANNEL, root) is None
        assert emu.message(CHANNEL, running.status_ts or "") is None
        after = [c.method for c in emu.calls[before:] if c.method in _POSTING]
        assert after == [] and emu.messages(CHANNEL) == []
        assert await bot.count(ImageRow) == 0

        deletes = len(emu.calls_to("chat.delete"))
        await bot.stop()  # a restart: the cancelled job stays cancelled, nothing again
        await bot.start()
        await bot.imagine("forget-me", user=ALICE)
        nothing = await emu.wait_for(lambda: emu.ephemerals_for(ALICE)[2:])
        assert "nothing of yours to forget" in nothing[0].text
        assert len(emu.calls_to("chat.delete")) == deletes
        assert [c.method for c in emu.calls[before:] if c.method in _POSTING] == []
    finally:
        await bot.close()
