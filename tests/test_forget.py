"""Forget-me (issue 12), the use case: a person's prompts, replies, images and posted files
are erased, their approvals anonymised, other people's data intact, and the bot's Slack
messages and files of those sessions listed for deletion."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from bot.blocks import result_message
from core import db, home, review, sessions
from core.db import policy as policy_db
from core.db import review as review_db
from core.db import views
from core.db.privacy import FORGOTTEN
from core.forget import forget, is_forgotten, settle
from core.jobs import steps
from core.models import (
    ApprovalRow,
    AttachmentRow,
    AuditRow,
    DeletionRow,
    GenerationRow,
    HomeSeenRow,
    ImageRow,
    ReviewVoteRow,
    SessionRow,
)
from core.models import GenerationState as S
from core.policy import Policy
from tests.fakes import png_bytes
from tests.fakes.publisher import RecordingPublisher
from tests.harness import ALICE, BOB, CHANNEL, Harness
from tests.jobs_support import job, make_engine, queue

CAROL, DAVE = "U0CAROL", "U0DAVE"
TEAM = "T0TEAM"  # the workspace of tests.jobs_support.queue


def _on_disk(paths: list[str]) -> list[str]:
    return [p for p in paths if Path(p).exists()]


async def _posted(harness: Harness, count: int) -> GenerationRow:
    rows = await harness.wait_generations(count)
    return await harness.wait_state(rows[count - 1].id, S.POSTED)


async def test_forget_me_erases_one_person_and_keeps_the_others(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        await harness.imagine("alice's secret lighthouse", user=ALICE)
        a1 = await _posted(harness, 1)
        await harness.imagine("bob's harbour", user=BOB)
        b1 = await _posted(harness, 2)
        a_thread, b_thread = await harness.thread_of(a1.id), await harness.thread_of(b1.id)
        await harness.emulator.post_user_message(BOB, CHANNEL, "add a boat", thread_ts=a_thread)
        a2 = await _posted(harness, 3)  # Bob's refinement in Alice's session
        files = [("alice.png", png_bytes(30, 30), "image/png")]
        await harness.emulator.post_user_message(
            ALICE, CHANNEL, "alice wants gulls", thread_ts=b_thread, files=files
        )
        b2 = await _posted(harness, 4)  # Alice's refinement in Bob's session
        async with harness.sm() as db:
            team = await db.scalar(select(SessionRow.team_id).limit(1)) or ""
            alice_paths = [
                p
                for p in (await db.scalars(select(ImageRow.path))).all()
                if p
                != (await db.scalar(select(ImageRow.path).where(ImageRow.generation_id == b1.id)))
            ]
            bob_image = await db.scalar(select(ImageRow).where(ImageRow.generation_id == b1.id))
        assert bob_image is not None
        where = sessions.Conversation(team, CHANNEL)
        await sessions.approve(harness.sm, b1.id, 0, ALICE, where)  # Alice approves Bob's
        await home.mark_seen(harness.sm, team, ALICE)  # she opened the Home tab
        await home.mark_seen(harness.sm, team, BOB)

        report = await forget(harness.sm, team, ALICE)

        assert report.sessions == 1 and report.prompts == 3  # a1, a2 (her session), b2
        assert report.images == 3 and report.approvals_anonymised == 1
        assert (CHANNEL, a_thread) in report.messages
        assert a1.result_ts and (CHANNEL, a1.result_ts) in report.messages
        assert b1.result_ts and (CHANNEL, b1.result_ts) not in report.messages
        assert len(report.files) == 3
        async with harness.sm() as db:
            rows = {g.id: g for g in (await db.scalars(select(GenerationRow))).all()}
            images = (await db.scalars(select(ImageRow))).all()
            approval = await db.scalar(select(ApprovalRow))
            owners = set((await db.scalars(select(SessionRow.owner_user_id))).all())
            attachments = await db.scalar(select(AttachmentRow.id).limit(1))
            trail = await policy_db.audit_events(db, "forget_me")
            home_seen = (await db.scalars(select(HomeSeenRow.user_id))).all()
        assert rows[a1.id].prompt == rows[a2.id].prompt == rows[b2.id].prompt == ""
        assert rows[b2.id].instruction is None and rows[b2.id].requested_by == FORGOTTEN
        assert rows[a2.id].requested_by == BOB  # Bob's own row keeps his name
        assert rows[b1.id].prompt == "bob's harbour"  # Bob's data intact
        assert [i.id for i in images] == [bob_image.id] and _on_disk([bob_image.path])
        assert approval is not None and approval.user_id == FORGOTTEN
        assert owners == {FORGOTTEN, BOB} and attachments is None
        assert not _on_disk(alice_paths)
        assert trail[0]["user_id"] is None and "alice" not in str(trail).lower()
        assert rows[a1.id].cost_usd == a1.cost_usd  # usage totals stay, anonymous
        assert home_seen == [BOB]
    finally:
        await harness.close()


async def test_two_forgotten_reviewers_votes_stay_counted(tmp_path: Path) -> None:
    """Both voters on one image forget themselves: their votes become two distinct
    placeholders (the table is unique per image and person), the count stays 2, nobody's
    id matches a placeholder, and the next real vote completes a 3-approval policy."""
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        await harness.imagine("bob's harbour", user=BOB)
        b1 = await _posted(harness, 1)
        async with harness.sm.begin() as db:
            team = await db.scalar(select(SessionRow.team_id).limit(1)) or ""
            await review_db.put_policy(
                db, team, CHANNEL, Policy(approvals_required=3, self_approval=False), BOB
            )
        where = sessions.Conversation(team, CHANNEL)
        for voter in (ALICE, CAROL):
            assert (await sessions.approve(harness.sm, b1.id, 0, voter, where)).newly_approved

        first = await forget(harness.sm, team, ALICE)
        second = await forget(harness.sm, team, CAROL)

        assert first.votes_anonymised == second.votes_anonymised == 1
        async with harness.sm() as db:
            voters = [v.user_id for v in (await db.scalars(select(ReviewVoteRow))).all()]
        assert len(set(voters)) == 2 and all(is_forgotten(v) for v in voters)
        assert not {ALICE, CAROL, FORGOTTEN} & set(voters)
        refused = await sessions.approve(harness.sm, b1.id, 0, BOB, where)
        assert refused.refused is not None  # the requester is still himself, not a placeholder
        shown = str(result_message(refused.view)[1])  # the thread shows them anonymously
        assert "Approved 2 of 3" in shown and shown.count("someone forgotten") == 2
        assert "<@forgotten" not in shown
        third = await sessions.approve(harness.sm, b1.id, 0, DAVE, where)
        assert third.newly_approved and third.completed  # 2 anonymised + Dave = 3
        assert len(third.view.images[0].votes) == 3
    finally:
        await harness.close()


async def test_what_a_step_under_way_shares_after_forget_is_recorded_for_deletion(
    migrated_url: str, tmp_path: Path
) -> None:
    """A post step that started before forget-me (its job says not cancelled) shares the
    images after it: it then posts no result, and `settle` (waiting for it to stop)
    records the shared files and the thread's messages for deletion, once."""
    engine_db = db.create_engine(migrated_url)
    sm = db.sessionmaker(engine_db)
    publisher = RecordingPublisher()
    try:
        job_id = await queue(sm)
        engine = make_engine(sm, tmp_path, publisher)
        assert await engine.claim() == job_id
        for _ in range(3):  # submit, then poll until the images are stored
            if (await job(sm, job_id)).state != S.COMPLETED:
                await steps.run_step(engine.ctx, await job(sm, job_id))
        started = await job(sm, job_id)
        view = await views.get_view(sm, job_id)
        report = await forget(sm, TEAM, ALICE, engine.ctx.store)
        assert report.stopped == (job_id,) and report.images == 1

        _, left = await asyncio.gather(
            steps.post(engine.ctx, started, view),
            settle(sm, TEAM, report.stopped, engine.ctx.store, within=10),
        )
        assert left == 0 and publisher.of("post_result") == []
        [reserved] = publisher.of("reserve_uploads")
        async with sm() as s:
            recorded = {(r.kind, r.ref) for r in await s.scalars(select(DeletionRow))}
            stopped = await s.get(GenerationRow, job_id)
            thread = await s.scalar(select(SessionRow.thread_ts))
        assert {("file", f) for f in reserved.result.values()} <= recorded
        assert ("message", view.status_ts) in recorded and ("message", view.thread_ts) in recorded
        assert stopped is not None and stopped.state == S.CANCELLED and thread is None
        assert await settle(sm, TEAM, report.stopped) == 0  # again: nothing new
        async with sm() as s:
            assert len((await s.scalars(select(DeletionRow))).all()) == len(recorded)
    finally:
        await engine_db.dispose()


async def test_a_gallery_post_made_while_its_image_is_forgotten_is_recorded_for_deletion(
    tmp_path: Path,
) -> None:
    """A gallery post claimed before forget-me and made after it: its intent went with the
    image, so finishing it records the post for deletion instead (no audit row)."""
    harness = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        await harness.imagine("alice's lighthouse", user=ALICE)
        a1 = await _posted(harness, 1)
        async with harness.sm.begin() as s:
            team = await s.scalar(select(SessionRow.team_id)) or ""
            image = await s.scalar(select(ImageRow.id).where(ImageRow.generation_id == a1.id))
            assert image is not None
            await review_db.add_gallery_intent(s, image, "C0GALLERY", BOB)
        job = await review.claim_gallery(harness.sm, image)
        assert job is not None
        report = await forget(harness.sm, team, ALICE)
        assert not [m for m in report.messages if m[0] == "C0GALLERY"]  # not posted yet
        assert not await review.finish_gallery(harness.sm, job, team_id=team, ts="99.000100")
        async with harness.sm() as s:
            recorded = {(r.channel_id, r.ref) for r in await s.scalars(select(DeletionRow))}
            audited = list(await s.scalars(select(AuditRow.action)))
        assert ("C0GALLERY", "99.000100") in recorded and "published" not in audited
    finally:
        await harness.close()
