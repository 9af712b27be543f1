"""User text is shown, never interpreted; every message fits Slack's Block Kit limits.

Over loopback HTTP against the Slack stand-in, which refuses oversize blocks with
`invalid_blocks` as Slack does; plus unit tests of `bot.mrkdwn` and of the stand-in's
limit checks.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from PIL import Image
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import mrkdwn
from bot.emulator.webapi import ApiCall
from core.models import GenerationState
from tests.harness import BOB, CHANNEL, Harness

EVIL = "<!channel> see <https://evil.example|click to approve> & <@U0BOB>"


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _strings(call: ApiCall) -> list[str]:
    """Every string a Web API call sent (text, block texts, comments…)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(call.params)
    return found


def _posts(harness: Harness) -> list[ApiCall]:
    emu = harness.emulator
    return [
        c
        for c in emu.calls
        if c.method
        in ("chat.postMessage", "chat.update", "chat.postEphemeral", "files.completeUploadExternal")
    ]


def _assert_nothing_interpreted(calls: list[ApiCall]) -> None:
    for call in calls:
        for text in _strings(call):
            for raw in ("<!channel>", "<https://evil", "<@U0BOB>"):
                assert raw not in text, f"{call.method} sent {raw!r} unescaped"


async def _posted(harness: Harness, prompt: str) -> int:
    delivery = await harness.imagine(prompt)
    assert delivery.status == 200
    (row,) = await harness.wait_generations(1)
    await harness.wait_state(row.id, GenerationState.POSTED)
    return row.id


async def test_a_prompt_cannot_ping_the_channel_or_disguise_a_link(harness: Harness) -> None:
    await _posted(harness, EVIL)
    calls = _posts(harness)
    assert calls and all(c.ok for c in calls), [(c.method, c.error) for c in calls]
    _assert_nothing_interpreted(calls)
    root = next(c for c in calls if c.method == "chat.postMessage")
    shown = json.dumps(root.params["blocks"])
    assert "&lt;!channel&gt;" in shown and "&lt;https://evil.example|click to approve&gt;" in shown
    assert "&amp;" in shown
    upload = next(c for c in calls if c.method == "files.completeUploadExternal")
    assert "&lt;!channel&gt;" in upload.params["initial_comment"]
    # A person sees the characters as typed.
    thread = harness.emulator.transcript(CHANNEL, root.response["ts"])
    assert "<!channel> see <https://evil.example|click to approve> &" in thread


async def test_a_quoted_line_starting_with_gt_stays_inside_the_quote(harness: Harness) -> None:
    await _posted(harness, "first line\n> not a nested quote")
    root = next(c for c in _posts(harness) if c.method == "chat.postMessage")
    quote = root.params["blocks"][1]["text"]["text"]
    assert quote == ">first line\n>&gt; not a nested quote"


async def test_a_reply_and_a_file_name_are_escaped_in_status_and_result(
    harness: Harness,
) -> None:
    generation_id = await _posted(harness, "a lighthouse")
    thread_ts = await harness.thread_of(generation_id)
    before = len(harness.emulator.calls)
    name = "<!here>`x`.png"
    _ts, delivery = await harness.emulator.post_user_message(
        BOB, CHANNEL, "paint <!channel> in & out", thread_ts=thread_ts, files=[(name, _png(), "")]
    )
    assert delivery is not None and delivery.status == 200
    rows = await harness.wait_generations(2)
    await harness.wait_state(rows[1].id, GenerationState.POSTED)
    calls = [c for c in _posts(harness) if harness.emulator.calls.index(c) >= before]
    engine_calls = [c for c in calls if c.method != "chat.postEphemeral"]
    assert engine_calls and all(c.ok for c in engine_calls)
    statuses = [c for c in engine_calls if c.method in ("chat.postMessage", "chat.update")]
    for call in statuses:
        for text in _strings(call):
            assert "<!channel>" not in text and "<!here>" not in text
    result = statuses[-1] if statuses[-1].params.get("blocks") else statuses[-2]
    shown = json.dumps(result.params)
    assert "paint &lt;!channel&gt; in &amp; out" in shown
    assert "&lt;!here&gt;`x`.png" in json.dumps(
        [c.params for c in engine_calls if "References" in json.dumps(c.params)]
    )


async def test_a_newline_bomb_prompt_still_gets_its_thread_and_images(harness: Harness) -> None:
    prompt = "a" + "\n" * 1998 + "b"
    generation_id = await _posted(harness, prompt)
    calls = _posts(harness)
    assert all(c.ok for c in calls), [(c.method, c.error) for c in calls]
    thread_ts = await harness.thread_of(generation_id)
    thread = harness.thread(thread_ts)
    assert thread[0].blocks, "the root message arrived"
    quote = thread[0].blocks[1]["text"]["text"]
    assert len(quote) <= mrkdwn.SECTION_TEXT and quote.endswith(mrkdwn.ELLIPSIS)
    assert any(m.files for m in thread), "the images arrived"
    assert any(m.blocks and m.blocks[-1].get("block_id") == "generation" for m in thread)


async def test_a_very_long_refinement_fits_every_block(harness: Harness) -> None:
    generation_id = await _posted(harness, "a lighthouse")
    thread_ts = await harness.thread_of(generation_id)
    instruction = "& < > " * 300  # 1,800 characters (the most is 2,000), 4,200 escaped
    _ts, delivery = await harness.emulator.post_user_message(
        BOB, CHANNEL, instruction, thread_ts=thread_ts
    )
    assert delivery is not None and delivery.status == 200
    rows = await harness.wait_generations(2)
    await harness.wait_state(rows[1].id, GenerationState.POSTED)
    calls = _posts(harness)
    assert all(c.ok for c in calls), [(c.method, c.error) for c in calls]
    for call in calls:
        for block in call.params.get("blocks") or []:
            text = (block.get("text") or {}).get("text", "")
            assert len(text) <= mrkdwn.SECTION_TEXT
            # No entity cut in half at the "…".
            assert not text.endswith(("&…", "&a…", "&am…", "&amp…", "&l…", "&lt…", "&g…"))


# -- bot.mrkdwn ------------------------------------------------------------------------


def test_escape_replaces_only_slacks_control_characters() -> None:
    assert mrkdwn.escape("a & b <@U1> > `c` *d*") == "a &amp; b &lt;@U1&gt; &gt; `c` *d*"


@pytest.mark.parametrize("limit", range(1, 20))
def test_clip_never_splits_an_entity_or_leaves_markup_open(limit: int) -> None:
    for text in ("&amp;&lt;&gt;" * 3, "hi <@U0ALICE> and <!date^1^{date}|x>", "abc&amp;def"):
        clipped = mrkdwn.clip(text, limit)
        assert len(clipped) <= limit
        if clipped != text:
            body = clipped.removesuffix(mrkdwn.ELLIPSIS)
            assert clipped.endswith(mrkdwn.ELLIPSIS)
            assert text.startswith(body)
            assert not re.search(r"&[a-z]*$", body), clipped
            assert body.count("<") == body.count(">")


def test_clip_leaves_short_text_alone() -> None:
    assert mrkdwn.clip("short", 5) == "short"
    assert mrkdwn.clip("longer", 5) == "long…"


# -- the stand-in is as strict as Slack -------------------------------------------------


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button(text: str = "Go", value: str = "1") -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": text}, "value": value}
        ],
    }


def _context(count: int) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * count}


OVERSIZE = {
    "section text": [_section("x" * 3001)],
    "header text": [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}],
    "button text": [_button(text="x" * 76)],
    "button value": [_button(value="x" * 2001)],
    "51 blocks": [_section("x")] * 51,
    "11 context elements": [_context(11)],
    "image alt text": [{"type": "image", "image_url": "https://x/y.png", "alt_text": "x" * 2001}],
}
AT_THE_LIMIT = [
    _section("x" * 3000),
    {"type": "header", "text": {"type": "plain_text", "text": "x" * 150}},
    _button(text="x" * 75, value="x" * 2000),
    _context(10),
    {"type": "image", "image_url": "https://x/y.png", "alt_text": "x" * 2000},
] + [_section("x")] * 45


@pytest.mark.parametrize("case", sorted(OVERSIZE))
async def test_stand_in_refuses_oversize_blocks(harness: Harness, case: str) -> None:
    client = AsyncWebClient(token=harness.bot_token, base_url=harness.emulator.api_url)
    with pytest.raises(SlackApiError) as err:
        await client.api_call(
            "chat.postMessage", json={"channel": CHANNEL, "text": "t", "blocks": OVERSIZE[case]}
        )
    assert err.value.response["error"] == "invalid_blocks"
    assert err.value.response["response_metadata"]["messages"]
    assert harness.emulator.messages(CHANNEL) == []


async def test_stand_in_takes_blocks_exactly_at_the_limits(harness: Harness) -> None:
    client = AsyncWebClient(token=harness.bot_token, base_url=harness.emulator.api_url)
    assert len(AT_THE_LIMIT) == 50
    response = await client.api_call(
        "chat.postMessage", json={"channel": CHANNEL, "text": "t", "blocks": AT_THE_LIMIT}
    )
    assert response["ok"]
    with pytest.raises(SlackApiError) as err:
        await client.api_call("chat.postMessage", json={"channel": CHANNEL, "text": "x" * 40001})
    assert err.value.response["error"] == "msg_too_long"
