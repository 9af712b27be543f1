"""Team review, issue 10: `/imagine settings` opens the policy modal for admins (views.open
with the command's trigger_id), validates on submit with `response_action: errors`, saves
and audits like the text form; non-admins get a private explanation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot import messages
from core.models import AuditRow, ReviewPolicyRow
from tests.harness import ALICE, CHANNEL, Harness
from tests.review_support import CAROL, DAVE, GALLERY, OLIVE, review_bot


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path)
    yield harness
    await harness.close()


def _values(users: list[str], approvals: str, self_ok: bool, gallery: str | None) -> dict:
    options = [{"value": "on"}] if self_ok else []
    return {
        "reviewers": {"reviewers": {"type": "multi_users_select", "selected_users": users}},
        "approvals": {"approvals": {"type": "number_input", "value": approvals}},
        "self_approval": {"self_approval": {"type": "checkboxes", "selected_options": options}},
        "gallery": {"gallery": {"type": "channels_select", "selected_channel": gallery}},
    }


async def test_an_admin_sets_the_policy_in_the_modal(bot: Harness) -> None:
    emu = bot.emulator
    answer = await emu.send_slash_command(OLIVE, CHANNEL, "settings")
    assert answer.status == 200 and not answer.text
    [modal] = emu.open_views(OLIVE)
    assert modal.view["private_metadata"] == CHANNEL
    blocks = {b["block_id"]: b for b in modal.view["blocks"]}
    assert blocks["approvals"]["element"]["initial_value"] == "1"
    # One named reviewer cannot give two approvals: the error goes on the approvals block.
    reply = await emu.submit_view(OLIVE, modal.id, _values([CAROL], "2", False, GALLERY))
    assert reply.json()["response_action"] == "errors"
    assert "2 approvals need at least 2 reviewers" in modal.errors["approvals"]
    reply = await emu.submit_view(OLIVE, modal.id, _values([CAROL], "x", False, GALLERY))
    assert modal.errors == {"approvals": "Enter a whole number from 1 to 5."}
    reply = await emu.submit_view(OLIVE, modal.id, _values([CAROL], "1", False, CHANNEL))
    assert "another channel" in modal.errors["gallery"]
    reply = await emu.submit_view(OLIVE, modal.id, _values([CAROL, DAVE], "2", False, GALLERY))
    assert reply.status == 200 and modal.closed
    async with bot.sm() as s:
        row = await s.scalar(select(ReviewPolicyRow))
        actions = list(await s.scalars(select(AuditRow.action)))
    assert row is not None
    assert (row.reviewer_users, row.approvals_required, row.self_approval) == (
        [CAROL, DAVE],
        2,
        False,
    )
    assert row.gallery_channel_id == GALLERY and actions == ["policy_set"]
    # The modal opens again with the saved values.
    await emu.send_slash_command(OLIVE, CHANNEL, "settings")
    [again] = emu.open_views(OLIVE)
    blocks = {b["block_id"]: b for b in again.view["blocks"]}
    assert blocks["reviewers"]["element"]["initial_users"] == [CAROL, DAVE]
    assert "initial_options" not in blocks["self_approval"]["element"]


async def test_a_non_admin_gets_no_modal(bot: Harness) -> None:
    answer = await bot.emulator.send_slash_command(ALICE, CHANNEL, "settings")
    assert answer.json()["text"] == messages.REVIEW_ADMIN_ONLY
    assert bot.emulator.calls_to("views.open") == []
