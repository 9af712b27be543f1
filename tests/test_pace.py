"""Slack's rate limits under load (issue 13): the stand-in enforces them, the bot paces
itself within them, status edits are coalesced, and 300 concurrent generations are all
posted once without a storm of 429s."""

from __future__ import annotations

import asyncio
import collections
import os
import time
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import pacing
from bot.emulator import SlackEmulator
from bot.emulator import limits as slack_limits
from bot.emulator.webapi import ApiCall
from bot.pacing import HIGH, Pacer, priority
from bot.slack_client import PacedWebClient
from bot.status_edits import StatusEdits
from core import metrics
from core.models import GenerationState
from tests.harness import ALICE, BOB, Harness

TOKEN = "xoxb-pace-test-token"
LOAD = int(os.environ.get("PACE_LOAD_GENERATIONS", "300"))
"""Concurrent generations in the load test (the issue asks for 300)."""
SCALE = float(os.environ.get("PACE_RATE_SCALE", "4"))


def _ratelimited(calls: list[ApiCall]) -> list[ApiCall]:
    return [c for c in calls if c.error == "ratelimited"]


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_the_stand_in_answers_429_with_retry_after_over_slacks_rates() -> None:
    async with SlackEmulator("s" * 32, TOKEN) as emu:
        emu.add_channel("C0OTHER", "other", members=[ALICE])
        client = AsyncWebClient(token=TOKEN, base_url=emu.api_url, retry_handlers=[])
        for i in range(slack_limits.POST_BURST):
            await client.chat_postMessage(channel="C0DESIGN", text=f"burst {i}")
        with pytest.raises(SlackApiError) as over:
            await client.chat_postMessage(channel="C0DESIGN", text="one too many")
        assert over.value.response.status_code == 429
        assert over.value.response["error"] == "ratelimited"
        assert int(over.value.response.headers["Retry-After"]) >= 1
        assert "one too many" not in [m.text for m in emu.messages("C0DESIGN")]
        # Per channel: another channel still takes a message.
        posted = await client.chat_postMessage(channel="C0OTHER", text="fine here")
        # chat.update is Tier 3 per workspace, across channels.
        burst = round(slack_limits.TIER_PER_MINUTE[3] * slack_limits.TIER_BURST_SHARE)
        for i in range(burst):
            await client.chat_update(channel="C0OTHER", ts=posted["ts"], text=f"edit {i}")
        with pytest.raises(SlackApiError) as over:
            await client.chat_update(channel="C0OTHER", ts=posted["ts"], text="too fast")
        assert over.value.response.status_code == 429
        assert len(_ratelimited(emu.calls)) == 2


async def test_the_paced_client_stays_within_the_limit_and_puts_results_first() -> None:
    async with SlackEmulator("s" * 32, TOKEN, rate_scale=5) as emu:
        client = PacedWebClient(token=TOKEN, base_url=emu.api_url, pacer=Pacer(5))
        started = time.monotonic()

        async def post(i: int) -> None:
            await client.chat_postMessage(channel="C0DESIGN", text=f"status {i}")

        async def post_result() -> None:
            await asyncio.sleep(0.05)  # asks after the others are in line
            with priority(HIGH):
                await client.chat_postMessage(channel="C0DESIGN", text="the result")

        await asyncio.gather(*(post(i) for i in range(30)), post_result())
        elapsed = time.monotonic() - started
        assert not _ratelimited(emu.calls)
        texts = [m.text for m in emu.messages("C0DESIGN")]
        assert len(texts) == 31
        assert texts.index("the result") < texts.index("status 29") - 5
        # 15 at once (the bot's burst at scale 5), then 5 a second.
        assert elapsed >= (31 - 15) / 5 - 0.5


async def test_a_429_is_retried_after_retry_after_and_counted() -> None:
    async with SlackEmulator("s" * 32, TOKEN) as emu:
        client = PacedWebClient(token=TOKEN, base_url=emu.api_url)
        posted = await client.chat_postMessage(channel="C0DESIGN", text="hello")
        before = _sample("imagine_slack_ratelimited_total", {"method": "chat.update"})
        emu.fail_next("chat.update", "ratelimited", status=429, retry_after=1)
        started = time.monotonic()
        await client.chat_update(channel="C0DESIGN", ts=posted["ts"], text="hello again")
        assert time.monotonic() - started >= 1.0
        assert emu.message("C0DESIGN", posted["ts"]).text == "hello again"
        assert [c.error for c in emu.calls_to("chat.update")] == ["ratelimited", None]
        after = _sample("imagine_slack_ratelimited_total", {"method": "chat.update"})
        assert after == before + 1


async def test_status_edits_keep_only_the_latest_and_skip_what_is_shown() -> None:
    sent: list[str] = []
    gate = asyncio.Event()

    def sender(signature: str) -> Any:
        async def send() -> None:
            await gate.wait()
            sent.append(signature)

        return send

    edits = StatusEdits(gap=0.2)
    first = edits.submit("m", "10%", sender("10%"), final=False)
    await asyncio.sleep(0.01)  # its sender has taken it and waits at the gate
    waiting = [edits.submit("m", f"{p}%", sender(f"{p}%"), final=False) for p in range(20, 100, 10)]
    assert all(w.done() for w in waiting[:-1])  # superseded by a newer one
    again = edits.submit("m", "90%", sender("90%"), final=False)
    assert again is waiting[-1]  # the same as the one waiting: not queued twice
    final = edits.submit("m", "done", sender("done"), final=True)
    gate.set()
    await asyncio.wait_for(final, 5)
    assert first.done() and waiting[-1].done()
    assert sent == ["10%", "done"]
    assert edits.submit("m", "done", sender("done"), final=True).done()  # already shown
    # The gap: a later non-final edit waits `gap` seconds after the last one sent.
    started = time.monotonic()
    await asyncio.wait_for(edits.submit("m", "again", sender("again"), final=False), 5)
    assert time.monotonic() - started >= 0.15 and sent[-1] == "again"
    await edits.close()


def _tagged(call: ApiCall, event_type: str) -> int | None:
    meta = call.params.get("metadata") or {}
    if call.ok and meta.get("event_type") == event_type:
        return int(meta["event_payload"]["generation_id"])
    return None


@pytest.mark.timeout(900)
async def test_concurrent_generations_are_all_posted_once_within_slacks_limits(
    tmp_path: Path,
) -> None:
    """LOAD generations at once over 6 channels, local provider with no render time,
    against the stand-in at 4x Slack's published rates (and the bot told so)."""
    harness = Harness(
        tmp_path,
        local_render_seconds=0,
        provider_concurrency=8,
        slack_rate_scale=SCALE,
        duplicate_window_seconds=0,
    )
    emu = harness.emulator
    emu.rates.scale = SCALE
    channels = [f"C0LOAD{i}" for i in range(6)]
    for channel in channels:
        emu.add_channel(channel, channel.lower(), members=[ALICE, BOB])
    await harness.start()
    try:
        # Bursts of 10 commands: fast acks on SQLite under bigger bursts are issue 13's item 1,
        # not this test's subject; the generations still all run at once.
        for start in range(0, LOAD, 10):
            answers = await asyncio.gather(
                *(
                    harness.imagine(f"a lighthouse number {i}", channel=channels[i % 6])
                    for i in range(start, min(LOAD, start + 10))
                )
            )
            assert all(a.status == 200 for a in answers)
            await harness.wait_generations(min(LOAD, start + 10), within=30)
        rows = await harness.wait_generations(LOAD, within=60)
        deadline = time.monotonic() + 800
        while time.monotonic() < deadline:
            rows = await harness.generations()
            if all(r.state in GenerationState.TERMINAL for r in rows):
                break
            await asyncio.sleep(1)
        assert [r.state for r in rows] == [GenerationState.POSTED] * LOAD
        await emu.wait_for(lambda: len(emu.calls_to("chat.update")) >= LOAD, within=60)
    finally:
        await harness.close()

    posts = emu.calls_to("chat.postMessage")
    results = collections.Counter(_tagged(c, "imagine_result") for c in posts)
    results.pop(None, None)
    assert sorted(results) == [r.id for r in rows] and set(results.values()) == {1}
    shares = emu.calls_to("files.completeUploadExternal")
    shared = collections.Counter(f["id"] for c in shares if c.ok for f in c.params["files"])
    assert len(shared) == LOAD and set(shared.values()) == {1}  # every image once
    roots = {c.response["ts"]: c.params["channel"] for c in posts if _tagged(c, "imagine_root")}
    for row in rows:  # what a person sees: one result message in each thread
        thread_ts = await harness.thread_of(row.id)
        thread = harness.thread(thread_ts, roots[thread_ts])
        assert sum(1 for m in thread if "imagine_result" in str(m.metadata)) == 1

    limited = _ratelimited(emu.calls)
    assert len(limited) <= max(3, len(emu.calls) // 100), collections.Counter(
        c.method for c in limited
    )
    edits = collections.Counter(c.params["ts"] for c in emu.calls_to("chat.update") if c.ok)
    statuses = {_tagged(c, "imagine_status"): c.response["ts"] for c in posts}
    per_message = [edits[ts] for gid, ts in statuses.items() if gid is not None]
    assert len(per_message) == LOAD
    assert max(per_message) <= 4, collections.Counter(per_message)  # coalesced
    print(
        f"{LOAD} generations: {len(emu.calls)} Web API calls, {len(limited)} answered 429; "
        f"chat.update per status message: {sorted(collections.Counter(per_message).items())}"
    )


async def test_idle_channel_buckets_are_dropped_past_the_limit_and_busy_ones_kept() -> None:
    pacer = Pacer()
    busy = pacer.bucket("chat.postMessage", "C0BUSY")
    assert busy is not None
    busy.hold(3600)  # Slack said Retry-After: an hour: that must not be forgotten
    for i in range(pacing.KEPT_BUCKETS + 10):
        idle = pacer.bucket("chat.postMessage", f"C{i:06d}")  # never posted in: full
        assert idle is not None
    assert pacer.bucket("chat.postMessage", "C0BUSY") is busy
    assert len(pacer._buckets) <= pacing.KEPT_BUCKETS
