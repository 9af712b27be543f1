"""Team review, issue 10: an opened App Home tab follows its items. When a version starts
waiting for the channel's reviewers, is approved (in the thread) or gets a change request,
the Home tabs of the reviewers (user groups resolved) and of the requester are published
again in the background, coalesced per person (HOME_REFRESH_SECONDS), and only for people
who opened Home once; a failed refresh changes nothing about the approval."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.emulator.state import View
from bot.emulator.transcript import render_blocks
from bot.home_refresh import HomeRefresher
from core.db.views import get_view
from core.models import ApprovalRow
from tests.harness import ALICE, CHANNEL, Harness, block_text
from tests.review_support import CAROL, DAVE, OLIVE, posted, result_of, review_bot, set_command

WINDOW = 0.5  # HOME_REFRESH_SECONDS in these tests


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path, home_refresh_seconds=WINDOW)
    text = set_command(harness, reviewers="@carol @design-team", rest="--self-approval off")
    answer = await harness.emulator.send_slash_command(OLIVE, CHANNEL, text)
    assert "Saved" in answer.json()["text"]
    yield harness
    await harness.close()


def _text(view: View | None) -> str:
    return "\n".join(render_blocks(view.view["blocks"])) if view is not None else ""


def _waiting(view: View | None) -> str:
    """The "Waiting for your review" part of a Home tab."""
    return _text(view).split("# Your recent sessions")[0]


async def _open_home(bot: Harness, user: str) -> None:
    emu = bot.emulator
    before = emu.home(user)
    assert (await emu.open_app_home(user)).status == 200
    await emu.wait_for(lambda: emu.home(user) is not before)


def _publishes_for(bot: Harness, user: str) -> list[float]:
    return [c.at for c in bot.emulator.calls_to("views.publish") if c.params["user_id"] == user]


async def test_an_opened_home_follows_new_images_and_approvals(bot: Harness) -> None:
    emu = bot.emulator
    await _open_home(bot, DAVE)  # a reviewer through @design-team
    await _open_home(bot, ALICE)  # the requester
    assert "Nothing is waiting for your review." in _waiting(emu.home(DAVE))

    v1 = await posted(bot, "a lighthouse")
    # Without reopening: the new image waits on Dave's Home, Alice's lists her session.
    await emu.wait_for(lambda: "v1 image 1" in _waiting(emu.home(DAVE)), within=15)
    await emu.wait_for(lambda: "1 version, newest v1" in _text(emu.home(ALICE)), within=15)
    assert emu.home(CAROL) is None  # a reviewer who never opened Home: not published unasked

    result = await result_of(bot, v1.id)
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    # Dave's Home: nothing waits any more, the image is under "Recently approved".
    await emu.wait_for(
        lambda: (
            "Nothing is waiting" in _waiting(emu.home(DAVE))
            and f"approved by <@{CAROL}>" in _text(emu.home(DAVE))
        ),
        within=15,
    )
    await emu.wait_for(lambda: f"approved by <@{CAROL}>" in _text(emu.home(ALICE)), within=15)
    assert emu.home(CAROL) is None


async def test_a_burst_of_changes_is_one_publish_per_person_per_window(bot: Harness) -> None:
    emu = bot.emulator
    await _open_home(bot, DAVE)
    v1 = await posted(bot, "a lighthouse")
    await emu.wait_for(lambda: "v1 image 1" in _waiting(emu.home(DAVE)), within=15)
    assert bot.runtime is not None
    publisher = bot.runtime.publisher
    changes = publisher.home_changes
    assert isinstance(changes, HomeRefresher)
    view = await get_view(bot.sm, v1.id)
    seen = len(_publishes_for(bot, DAVE))
    for _ in range(5):
        await publisher.review_items_changed(view)
    # The five changes fold into at most two publishes (one may have been due already).
    await emu.wait_for(lambda: len(_publishes_for(bot, DAVE)) > seen, within=30)
    await emu.wait_for(lambda: not changes.busy, within=30)
    times = _publishes_for(bot, DAVE)
    assert 1 <= len(times) - seen <= 2
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= WINDOW * 0.9 for gap in gaps[-(len(times) - seen) :])


async def test_a_failed_refresh_does_not_touch_the_approval(bot: Harness) -> None:
    emu = bot.emulator
    await _open_home(bot, DAVE)
    v1 = await posted(bot, "a lighthouse")
    await emu.wait_for(lambda: "v1 image 1" in _waiting(emu.home(DAVE)), within=15)
    failed_before = [c for c in emu.calls_to("views.publish") if not c.ok]
    emu.fail_next("views.publish", "internal_error")
    result = await result_of(bot, v1.id)
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    # The refresh was tried and refused; the approval stands and Dave's Home is stale.
    await emu.wait_for(
        lambda: len([c for c in emu.calls_to("views.publish") if not c.ok]) > len(failed_before),
        within=15,
    )
    async with bot.sm() as s:
        assert await s.scalar(select(ApprovalRow.user_id)) == CAROL
    assert "v1 image 1" in _waiting(emu.home(DAVE))
    await _open_home(bot, DAVE)  # opened again: it shows the approval
    assert "Nothing is waiting" in _waiting(emu.home(DAVE))


async def test_an_approval_from_home_publishes_the_clickers_home_once(bot: Harness) -> None:
    """The click's own refresh (at once, for the clicker) is the only publish of their
    Home for that change: the background refresher knows it happened after the change."""
    emu = bot.emulator
    await _open_home(bot, DAVE)
    v1 = await posted(bot, "a lighthouse")
    await emu.wait_for(lambda: "v1 image 1" in _waiting(emu.home(DAVE)), within=15)
    assert bot.runtime is not None
    changes = bot.runtime.publisher.home_changes
    assert isinstance(changes, HomeRefresher)
    await emu.wait_for(lambda: not changes.busy, within=30)
    seen = len(_publishes_for(bot, DAVE))
    value = f"{v1.id}:0:{CHANNEL}:home"
    assert (await emu.click_home_button(DAVE, "home_approve", value)).status == 200
    await emu.wait_for(lambda: "Nothing is waiting" in _waiting(emu.home(DAVE)), within=15)
    await emu.wait_for(lambda: not changes.busy, within=30)
    assert len(_publishes_for(bot, DAVE)) - seen == 1
