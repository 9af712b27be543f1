"""Team review, issue 10: the channel's policy set with `/imagine review` over loopback
(admins only, escaped mentions parsed, every change audited), and approvals judged by it:
refusals told privately, 2-of-N with a user group member, concurrent approvals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import messages
from core.models import ApprovalRow, AuditRow, GalleryPostRow, ReviewPolicyRow, ReviewVoteRow
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text, buttons
from tests.review_support import (
    CAROL,
    DAVE,
    GALLERY,
    GROUP,
    OLIVE,
    posted,
    result_of,
    review_bot,
    set_command,
)


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path)
    yield harness
    await harness.close()


async def _command(bot: Harness, user: str, text: str) -> str:
    answer = await bot.emulator.send_slash_command(user, CHANNEL, text)
    assert answer.status == 200, answer.text
    body = answer.json()
    assert body["response_type"] == "ephemeral"
    return str(body["text"])


async def _audit(bot: Harness) -> list[AuditRow]:
    async with bot.sm() as s:
        return list((await s.scalars(select(AuditRow).order_by(AuditRow.id))).all())


async def test_an_admin_sets_the_policy_with_escaped_mentions(bot: Harness) -> None:
    assert "the default, one approval by anyone" in await _command(bot, ALICE, "review")
    text = set_command(
        bot,
        reviewers="@carol @design-team",
        rest="--approvals 2 --self-approval off --gallery #design-gallery",
    )
    assert "<!subteam^S0DESIGN|@design-team>" in text and "<#C0GALLERY|design-gallery>" in text
    answer = await _command(bot, OLIVE, text)
    assert answer.startswith(":white_check_mark: Saved.")
    assert f"<@{CAROL}> or <!subteam^{GROUP}>" in answer and f"<#{GALLERY}>" in answer
    async with bot.sm() as s:
        row = await s.scalar(select(ReviewPolicyRow))
    assert row is not None
    assert (row.reviewer_users, row.reviewer_groups) == ([CAROL], [GROUP])
    assert (row.approvals_required, row.self_approval, row.gallery_channel_id) == (
        2,
        False,
        GALLERY,
    )
    # A later set changes only what it names.
    await _command(bot, OLIVE, "review set --approvals 1")
    shown = await _command(bot, BOB, "review")
    assert "Approvals needed: 1" in shown and f"<@{CAROL}>" in shown and "no" in shown
    assert "Review rules for" in await _command(bot, OLIVE, "review off")
    assert "the default" in await _command(bot, BOB, "review")
    audit = await _audit(bot)
    assert [(a.action, a.user_id) for a in audit] == [
        ("policy_set", OLIVE),
        ("policy_set", OLIVE),
        ("policy_off", OLIVE),
    ]
    assert audit[0].detail["after"]["approvals_required"] == 2
    assert audit[1].detail["before"]["approvals_required"] == 2
    assert audit[2].detail["before"]["reviewer_users"] == [CAROL]


async def test_a_non_admin_cannot_change_the_policy(bot: Harness) -> None:
    for text in ("review set --approvals 2", "review off"):
        assert await _command(bot, ALICE, text) == messages.REVIEW_ADMIN_ONLY
    async with bot.sm() as s:
        assert await s.scalar(select(ReviewPolicyRow)) is None
    assert await _audit(bot) == []
    # users.info was asked (workspace admin flags), as form arguments.
    assert [c.params.get("user") for c in bot.emulator.calls_to("users.info")] == [ALICE, ALICE]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("review set --approvals 9", "from 1 to 5"),
        ("review set --approvals two", "from 1 to 5"),
        ("review set --reviewers @carol", "not a person or user group Slack recognised"),
        ("review set --gallery #design", "not a channel Slack recognised"),
        ("review set --self-approval maybe", "`on` or `off`"),
        ("review set --colour red", "Unknown option `--colour`"),
        ("review set", "Say what to set"),
        ("review sideways", "I don't know `review sideways`"),
        ("review set --reviewers <@U0CAROL|carol> --approvals 2", "2 approvals need at least 2"),
        (f"review set --gallery <#{CHANNEL}|design>", "another channel"),
        ("review set --reviewers <script>", "&lt;script&gt;"),
    ],
)
async def test_malformed_review_commands_say_what_to_change(
    bot: Harness, text: str, says: str
) -> None:
    answer = await _command(bot, OLIVE, text)
    assert says in answer and messages.REVIEW_USAGE in answer
    assert "<script>" not in answer
    async with bot.sm() as s:
        assert await s.scalar(select(ReviewPolicyRow)) is None


async def _votes(bot: Harness) -> list[str]:
    async with bot.sm() as s:
        return list(await s.scalars(select(ReviewVoteRow.user_id).order_by(ReviewVoteRow.id)))


async def test_refused_approvals_tell_the_clicker_why_and_who_can(bot: Harness) -> None:
    await _command(bot, OLIVE, set_command(bot, reviewers="@carol", rest="--self-approval off"))
    v1 = await posted(bot, user=CAROL)  # Carol asks; she is the only reviewer
    result = await result_of(bot, v1.id)
    assert "waiting for" in block_text(result) and f"<@{CAROL}>" in block_text(result)
    emu = bot.emulator
    await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    [to_bob] = await emu.wait_for(lambda: emu.ephemerals_for(BOB))
    [to_carol] = await emu.wait_for(lambda: emu.ephemerals_for(CAROL))
    assert to_bob.text.startswith(f"Only <@{CAROL}> can approve images in this channel.")
    assert "don't let people approve their own images" in to_carol.text
    assert await _votes(bot) == [] and await bot.count(ApprovalRow) == 0
    assert await _audit(bot) and all(a.action == "policy_set" for a in await _audit(bot))


async def test_two_of_n_with_a_group_member_then_approved_and_buttons_go(bot: Harness) -> None:
    text = set_command(bot, reviewers="@carol @design-team", rest="--approvals 2")
    await _command(bot, OLIVE, text)
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    progress = await emu.wait_for(
        lambda: (
            "Approved 1 of 2" in block_text(emu.message(CHANNEL, result.ts))
            and block_text(emu.message(CHANNEL, result.ts))
        )
    )
    assert f"waiting for <@{CAROL}> or <!subteam^{GROUP}>" in progress
    # Carol again: counted once, told so privately.
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    [again] = await emu.wait_for(lambda: emu.ephemerals_for(CAROL))
    assert "already counted (1 of 2)" in again.text
    # Dave is in @design-team (usergroups.users.list is asked when his click is judged).
    await emu.click_button(DAVE, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    done = await emu.wait_for(
        lambda: (
            "Approved by" in block_text(emu.message(CHANNEL, result.ts))
            and emu.message(CHANNEL, result.ts)
        )
    )
    assert f"Approved by <@{CAROL}>, <@{DAVE}>" in block_text(done)
    assert [a for a, _ in buttons(done)] == ["refine_this", "regenerate", "history"]
    asked = [c.params.get("usergroup") for c in emu.calls_to("usergroups.users.list")]
    assert asked == [GROUP]  # only for Dave: Carol is named in person
    assert await _votes(bot) == [CAROL, DAVE]
    async with bot.sm() as s:
        assert (await s.scalar(select(ApprovalRow.user_id))) == DAVE
    actions = [a.action for a in await _audit(bot)]
    assert actions == ["policy_set", "approve", "approve", "approved"]
    # A group member removed from the group is refused at once.
    emu.ws.usergroups[GROUP].users.remove(DAVE)
    v2 = await posted(bot, "a second lighthouse")
    second = await result_of(bot, v2.id)
    await emu.click_button(DAVE, CHANNEL, second.ts, "approve", f"{v2.id}:0")
    [refused] = await emu.wait_for(lambda: emu.ephemerals_for(DAVE))
    assert refused.text.startswith("Only ")


async def test_concurrent_approvals_by_two_reviewers_complete_once(bot: Harness) -> None:
    text = set_command(
        bot, reviewers="@carol @design-team", rest="--approvals 2 --gallery #design-gallery"
    )
    await _command(bot, OLIVE, text)
    v1 = await posted(bot)
    emu = bot.emulator
    result = await result_of(bot, v1.id)
    clicks = await asyncio.gather(
        emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0"),
        emu.click_button(DAVE, CHANNEL, result.ts, "approve", f"{v1.id}:0"),
    )
    assert [c.status for c in clicks] == [200, 200]
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    posts = await emu.wait_for(lambda: emu.messages(GALLERY))
    await emu.wait_idle()
    assert sorted(await _votes(bot)) == sorted([CAROL, DAVE])
    assert await bot.count(ApprovalRow) == 1 and await bot.count(GalleryPostRow) == 1
    assert len(emu.messages(GALLERY)) == len(posts) == 1
