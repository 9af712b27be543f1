"""Team review, issue 10: when a session's first image awaits review under a policy that
names reviewers, the thread mentions them once (users `<@U…>`, groups `<!subteam^S…>`),
recorded as a side effect: later versions, a lost answer and a restart never repeat it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.emulator import Message
from core.models import GenerationState
from tests.harness import ALICE, CHANNEL, Harness
from tests.review_support import CAROL, GROUP, OLIVE, posted, review_bot, set_command


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await review_bot(tmp_path)
    yield harness
    await harness.close()


async def _set_reviewers(bot: Harness) -> None:
    text = set_command(bot, reviewers="@carol @design-team", rest="--approvals 2")
    answer = await bot.emulator.send_slash_command(OLIVE, CHANNEL, text)
    assert "Saved" in answer.json()["text"]


def _mentions(thread: list[Message]) -> list[Message]:
    return [m for m in thread if m.text.startswith(":eyes:")]


async def test_the_reviewers_are_mentioned_once_per_session(bot: Harness) -> None:
    await _set_reviewers(bot)
    v1 = await posted(bot, "a lighthouse")
    thread_ts = await bot.thread_of(v1.id)
    [mention] = _mentions(bot.thread(thread_ts))
    assert mention.text.startswith(f":eyes: <@{CAROL}> <!subteam^{GROUP}>: v1 is waiting")
    assert "2 approvals needed" in mention.text
    assert mention.metadata and mention.metadata["event_type"] == "imagine_mention"
    thread = bot.thread(thread_ts)
    assert thread.index(mention) == len(thread) - 1  # after the result message
    # A reply refines the image: v2 waits too, and nobody is called again.
    await bot.emulator.post_user_message(ALICE, CHANNEL, "make it blue", thread_ts=thread_ts)
    rows = await bot.wait_generations(2)
    await bot.wait_state(rows[1].id, GenerationState.POSTED)
    await bot.emulator.wait_idle()
    assert len(_mentions(bot.thread(thread_ts))) == 1
    # Another session calls them again, once.
    other = await posted(bot, "a windmill")
    assert len(_mentions(bot.thread(await bot.thread_of(other.id)))) == 1


async def test_no_mention_without_named_reviewers(bot: Harness) -> None:
    v1 = await posted(bot, "a lighthouse")
    await bot.emulator.wait_idle()
    assert _mentions(bot.thread(await bot.thread_of(v1.id))) == []


async def test_a_lost_answer_does_not_mention_twice(bot: Harness) -> None:
    await _set_reviewers(bot)
    emu = bot.emulator
    emu.fail_after("chat.postMessage", lose="500", when=lambda p: ":eyes:" in str(p.get("text")))
    v1 = await posted(bot, "a lighthouse")
    await emu.wait_idle()
    thread = bot.thread(await bot.thread_of(v1.id))
    assert len(_mentions(thread)) == 1
    lost = [c for c in emu.calls_to("chat.postMessage") if ":eyes:" in str(c.params.get("text"))]
    assert len(lost) == 1 and lost[0].response.get("lost") == "500"
    assert emu.calls_to("conversations.replies")  # the retry looked for it instead
