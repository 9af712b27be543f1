"""Team review, issue 10: the App Home tab. `app_home_opened` publishes it (views.publish);
a reviewer sees the images waiting for them with working Approve / Request changes
buttons (the value binds the image to its channel; the clicker's rights are checked on the
server), their recent sessions with `slack_file` thumbnails, and recently approved images
in channels they are in. A review action made from Home publishes it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.emulator.state import View
from bot.emulator.transcript import render_blocks
from core.models import ApprovalRow, GenerationState
from tests.harness import ALICE, CHANNEL, Harness, block_text
from tests.review_support import CAROL, DAVE, OLIVE, posted, result_of, review_bot, set_command

OTHER = "C0OTHER"  # a channel Dave is not in


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path)
    harness.emulator.add_channel(OTHER, "other", members=[ALICE])
    text = set_command(harness, reviewers="@carol @design-team", rest="--self-approval off")
    answer = await harness.emulator.send_slash_command(OLIVE, CHANNEL, text)
    assert "Saved" in answer.json()["text"]
    yield harness
    await harness.close()


async def _home(bot: Harness, user: str) -> View:
    """Open the Home tab and wait until a new one is published."""
    emu = bot.emulator
    before = emu.home(user)
    answer = await emu.open_app_home(user)
    assert answer.status == 200
    return await emu.wait_for(lambda: emu.home(user) is not before and emu.home(user))


def _text(view: View) -> str:
    return "\n".join(render_blocks(view.view["blocks"]))


def _buttons(view: View) -> list[tuple[str, str]]:
    return [
        (el["action_id"], el.get("value", ""))
        for block in view.view["blocks"]
        if block["type"] == "actions"
        for el in block["elements"]
    ]


async def test_a_reviewer_sees_what_waits_and_approves_from_home(bot: Harness) -> None:
    emu = bot.emulator
    v1 = await posted(bot, "a <lighthouse> & sea")
    home = await _home(bot, DAVE)  # a reviewer through @design-team
    text = _text(home)
    assert "# Waiting for your review" in text and "v1 image 1" in text
    assert "&lt;lighthouse&gt; &amp; sea" in str(home.view["blocks"]) and "<lighthouse>" not in str(
        home.view["blocks"]
    )
    value = f"{v1.id}:0:{CHANNEL}:home"
    assert _buttons(home) == [("home_approve", value), ("home_request_changes", value)]
    assert "Nothing is waiting" in _text(await _home(bot, ALICE))  # the requester: not hers

    publishes = len(emu.calls_to("views.publish"))
    answer = await emu.click_home_button(DAVE, "home_approve", value)
    assert answer.status == 200
    result = await result_of(bot, v1.id)
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    async with bot.sm() as s:
        assert await s.scalar(select(ApprovalRow.user_id)) == DAVE
    # The Home tab is published again: nothing waits, the image is under Recently approved.
    await emu.wait_for(lambda: len(emu.calls_to("views.publish")) > publishes)
    refreshed = emu.home(DAVE)
    assert refreshed is not None and _buttons(refreshed) == []
    after = _text(refreshed)
    assert "Nothing is waiting for your review." in after
    assert f"approved by <@{DAVE}>" in after


async def test_home_lists_sessions_with_thumbnails_and_approved_in_my_channels(
    bot: Harness,
) -> None:
    emu = bot.emulator
    v1 = await posted(bot, "a lighthouse")
    result = await result_of(bot, v1.id)
    await emu.click_button(CAROL, CHANNEL, result.ts, "approve", f"{v1.id}:0")
    await emu.wait_for(lambda: "Approved by" in block_text(emu.message(CHANNEL, result.ts)))
    home = await _home(bot, ALICE)
    blocks = home.view["blocks"]
    [image] = [b for b in blocks if b["type"] == "image"]
    thread = emu.replies(CHANNEL, result.thread_ts or "")
    file_ids = [f.id for m in thread for f in m.files]
    assert image["slack_file"] == {"id": file_ids[0]}
    text = _text(home)
    assert "# Your recent sessions" in text and "1 version, newest v1" in text
    assert "|Open the thread>" in str(blocks)  # the thread's permalink
    assert "# Recently approved" in text and f"<@{CAROL}>" in text
    # Dave is not in OTHER: an image approved there is not on his Home.
    await bot.imagine("a secret", channel=OTHER)
    rows = await bot.wait_generations(2)
    await bot.wait_state(rows[1].id, GenerationState.POSTED)
    dave = _text(await _home(bot, DAVE))
    assert "a secret" not in dave and "Nothing is waiting" in dave


async def test_a_forged_home_value_changes_nothing(bot: Harness) -> None:
    emu = bot.emulator
    mine = await posted(bot, "a lighthouse")
    await bot.imagine("their secret", channel=OTHER)  # default policy there: anyone
    rows = await bot.wait_generations(2)
    secret = await bot.wait_state(rows[1].id, GenerationState.POSTED)
    await _home(bot, DAVE)

    def forge(value: str) -> None:  # as a tampered client would send it
        home = emu.home(DAVE)
        assert home is not None
        for block in home.view["blocks"]:
            for el in block.get("elements", []):
                if el.get("action_id") == "home_approve":
                    el["value"] = value

    forge(f"{secret.id}:0:{OTHER}:home")  # a channel Dave is not in
    publishes = len(emu.calls_to("views.publish"))
    await emu.click_home_button(DAVE, "home_approve", f"{secret.id}:0:{OTHER}:home")
    [dm] = await emu.wait_for(lambda: [m for m in _dms(bot, DAVE) if "not a member" in m])
    assert "Join it" in dm
    await emu.wait_for(lambda: len(emu.calls_to("views.publish")) > publishes)
    forge(f"{secret.id}:0:{CHANNEL}:home")  # the other channel's image, named as this one's
    await emu.click_home_button(DAVE, "home_approve", f"{secret.id}:0:{CHANNEL}:home")
    [refused] = await emu.wait_for(lambda: emu.ephemerals_for(DAVE))
    assert "belongs to another conversation" in refused.text
    await emu.wait_idle()
    async with bot.sm() as s:
        assert list(await s.scalars(select(ApprovalRow))) == []
    assert "Approved by" not in block_text(await result_of(bot, mine.id))


def _dms(bot: Harness, user: str) -> list[str]:
    ws = bot.emulator.ws
    return [
        m.text
        for c in ws.channels.values()
        if c.is_im and user in c.members
        for m in bot.emulator.messages(c.id)
    ]


async def test_request_changes_from_home_opens_the_modal_and_refreshes_home(
    bot: Harness,
) -> None:
    emu = bot.emulator
    v1 = await posted(bot, "a lighthouse")
    await _home(bot, CAROL)
    value = f"{v1.id}:0:{CHANNEL}:home"
    await emu.click_home_button(CAROL, "home_request_changes", value)
    [modal] = await emu.wait_for(lambda: emu.open_views(CAROL))
    assert modal.view["private_metadata"] == value
    publishes = len(emu.calls_to("views.publish"))
    values: dict[str, Any] = {
        "comment": {"comment": {"type": "plain_text_input", "value": "bluer"}}
    }
    answer = await emu.submit_view(CAROL, modal.id, values)
    assert answer.status == 200 and modal.closed
    rows = await bot.wait_generations(2)
    assert rows[1].instruction == "bluer" and rows[1].requested_by == CAROL
    await emu.wait_for(lambda: len(emu.calls_to("views.publish")) > publishes)
    thread = emu.replies(CHANNEL, await bot.thread_of(v1.id))
    assert any(m.text.startswith(f":memo: <@{CAROL}> requested changes") for m in thread)


async def test_the_stand_in_enforces_views_publish_rules(bot: Harness) -> None:
    """https://docs.slack.dev/reference/methods/views.publish: user_id and view required,
    a `home` view, at most 100 blocks, image blocks with one source, Home tab enabled."""
    emu = bot.emulator
    client = AsyncWebClient(token=bot.bot_token, base_url=emu.api_url, retry_handlers=[])
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}

    async def error(**args: Any) -> str:
        with pytest.raises(SlackApiError) as err:
            await client.api_call("views.publish", json=args)
        return str(err.value.response["error"])

    home = {"type": "home", "blocks": [section] * 100}
    assert (await client.views_publish(user_id=ALICE, view=home))["ok"]
    assert await error(view=home) == "invalid_arguments"
    assert await error(user_id=ALICE, view={**home, "blocks": [section] * 101}) == (
        "invalid_arguments"
    )
    assert await error(user_id=ALICE, view={**home, "type": "modal"}) == "invalid_arguments"
    both = {"type": "image", "alt_text": "x", "image_url": "https://x/y.png"}
    both["slack_file"] = {"id": "F1"}
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [both]}) == (
        "invalid_arguments"
    )
    neither = {"type": "image", "alt_text": "x", "slack_file": {}}
    assert await error(user_id=ALICE, view={"type": "home", "blocks": [neither]}) == (
        "invalid_arguments"
    )
    assert await error(user_id="U0NOBODY", view=home) == "user_not_found"
    emu.ws.home_tab_enabled = False
    assert await error(user_id=ALICE, view=home) == "not_enabled"


async def test_the_stand_in_lists_a_users_channels_like_slack(bot: Harness) -> None:
    """users.conversations with a bot token: private channels only where the bot is too."""
    emu = bot.emulator
    emu.add_channel("C0PRIV", "priv", members=[DAVE], bot_member=False, is_private=True)
    client = AsyncWebClient(token=bot.bot_token, base_url=emu.api_url, retry_handlers=[])
    types = "public_channel,private_channel"
    first = await client.users_conversations(user=DAVE, types=types, limit=1)
    ids = [c["id"] for c in first["channels"]]
    cursor = first["response_metadata"]["next_cursor"]
    while cursor:
        page = await client.users_conversations(user=DAVE, types=types, limit=1, cursor=cursor)
        ids += [c["id"] for c in page["channels"]]
        cursor = page["response_metadata"]["next_cursor"]
    assert ids == [CHANNEL]  # not C0PRIV (the bot is not in it), not OTHER (Dave is not)
    emu.ws.channels["C0PRIV"].members.add(emu.ws.bot_user_id)
    again = await client.users_conversations(user=DAVE, types=types)
    assert sorted(c["id"] for c in again["channels"]) == [CHANNEL, "C0PRIV"]
