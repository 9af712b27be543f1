"""Content policy before anything is spent (issue 12): blocklist and OpenAI moderation on
requests and replies, both fail modes, withheld results; over loopback to the Slack stand-in
and the fake OpenAI server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from core.breaker import CircuitBreaker
from core.config import SettingsError, load_settings
from core.db import policy as policy_db
from core.models import GenerationRow, GenerationState, SessionRow
from core.moderation import Blocklist, ModerationRefused, Moderator, OpenAIModeration
from tests.conftest import OPENAI_KEY
from tests.fakes import FakeResponse, png_bytes
from tests.fakes.openai_server import FakeOpenAI
from tests.harness import ALICE, BOB, CHANNEL, Harness, block_text

S = GenerationState


async def _nothing_queued(harness: Harness) -> None:
    assert await harness.count(SessionRow) == 0
    assert await harness.count(GenerationRow) == 0


async def _audit(harness: Harness, action: str) -> list[dict[str, object]]:
    async with harness.sm() as db:
        return await policy_db.audit_events(db, action)


def test_blocklist_matches_whole_words_case_insensitively(tmp_path: Path) -> None:
    blocklist = Blocklist(["gore", r"blood\w*", ""])
    assert blocklist.check("A GORE scene").terms == ("GORE",)
    assert blocklist.check("gorey gorge").flagged is False
    assert blocklist.check("bloodbath at noon").terms == ("bloodbath",)
    assert blocklist.check("a calm lake").flagged is False
    listed = tmp_path / "blocked.txt"
    listed.write_text("# brand rules\nrival\n\n")
    from_both = Blocklist.from_settings("gore", listed)
    assert from_both.entries == ("gore", "rival")
    with pytest.raises(SettingsError, match="MODERATION_BLOCKLIST"):
        load_settings(moderation_blocklist="ok,(unclosed")


async def test_blocklisted_request_is_refused_privately_and_audited(tmp_path: Path) -> None:
    harness = await Harness(tmp_path, moderation_blocklist="gore,rival\\w*").start()
    try:
        answer = await harness.imagine("a Rivalco logo dripping with GORE --ar 3:2")
        body = answer.json()
        assert body.get("response_type") == "ephemeral"
        assert "`GORE`" in body["text"] and "Nothing was queued" in body["text"]
        assert "Rivalco" in body["text"]
        await _nothing_queued(harness)
        assert harness.emulator.calls_to("chat.postMessage") == []
        [event] = await _audit(harness, "moderation_refused")
        assert event["user_id"] == ALICE and event["channel_id"] == CHANNEL
        assert event["detail"] == {"categories": ["blocklist"], "terms": 2}
        assert "GORE" not in str(event)  # the audit keeps codes, not what was typed

        ok = await harness.imagine("a gorge at dawn")  # a longer word is not a match
        assert ok.status == 200 and not ok.text
        [row] = await harness.wait_generations(1)
        await harness.wait_state(row.id, S.POSTED)
    finally:
        await harness.close()


async def _openai_policy(tmp_path: Path, fake: FakeOpenAI, **settings: object) -> Harness:
    return await Harness(
        tmp_path,
        moderation="openai",
        openai_api_key=OPENAI_KEY,
        openai_base_url=fake.root_url + "/v1",
        **settings,
    ).start()


async def test_openai_moderation_flags_and_passes(tmp_path: Path, openai_fake: FakeOpenAI) -> None:
    openai_fake.flag_words = {"knife fight": ["violence", "violence/graphic"]}
    harness = await _openai_policy(tmp_path, openai_fake)
    try:
        body = (await harness.imagine("a knife fight in the rain")).json()
        assert "violence" in body["text"] and "violence / graphic" in body["text"]
        assert "0.9" not in body["text"]  # categories, never scores
        await _nothing_queued(harness)
        [call] = openai_fake.calls("moderations")
        assert call.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
        assert call.json == {
            "model": "omni-moderation-latest",
            "input": [{"type": "text", "text": "a knife fight in the rain"}],
        }
        [event] = await _audit(harness, "moderation_refused")
        assert event["detail"]["categories"] == ["violence", "violence/graphic"]

        assert not (await harness.imagine("a lighthouse at dusk")).text
        [row] = await harness.wait_generations(1)
        await harness.wait_state(row.id, S.POSTED)
        assert len(openai_fake.calls("moderations")) == 2
    finally:
        await harness.close()


async def test_a_reply_is_moderated_with_the_whole_chain(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    openai_fake.flag_words = {"on fire": ["violence"]}
    harness = await _openai_policy(tmp_path, openai_fake)
    try:
        await harness.imagine("a lighthouse")
        [v1] = await harness.wait_generations(1)
        await harness.wait_state(v1.id, S.POSTED)
        thread_ts = await harness.thread_of(v1.id)
        _ts, delivery = await harness.emulator.post_user_message(
            BOB, CHANNEL, "set the keeper on fire", thread_ts=thread_ts
        )
        assert delivery is not None
        await harness.emulator.wait_for(lambda: harness.emulator.ephemerals_for(BOB))
        [note] = harness.emulator.ephemerals_for(BOB)
        assert "violence" in note.text and "Nothing was queued" in note.text
        sent = openai_fake.calls("moderations")[-1].json["input"][0]["text"]
        assert sent.startswith("a lighthouse.") and "set the keeper on fire" in sent
        assert len(await harness.generations()) == 1
    finally:
        await harness.close()


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_moderation_unavailable(tmp_path: Path, openai_fake: FakeOpenAI, mode: str) -> None:
    openai_fake.enqueue("moderations", *[FakeResponse.html(503)] * 10)
    harness = await _openai_policy(tmp_path, openai_fake, moderation_fail=mode)
    try:
        started = time.monotonic()
        answer = await harness.imagine("a lighthouse")
        assert time.monotonic() - started < 3.0  # Slack's ack budget holds
        assert len(openai_fake.calls("moderations")) > 1  # retried with backoff
        if mode == "closed":
            assert "couldn't check this request" in answer.json()["text"]
            await _nothing_queued(harness)
            [event] = await _audit(harness, "moderation_refused")
            assert event["detail"]["categories"] == ["unavailable"]
        else:
            assert not answer.text
            [row] = await harness.wait_generations(1)
            await harness.wait_state(row.id, S.POSTED)
    finally:
        await harness.close()


async def test_repeated_failures_open_the_moderation_breaker(openai_fake: FakeOpenAI) -> None:
    """Like the image calls: consecutive retryable failures open the breaker; while it is
    open OpenAI is not asked and the fail mode answers at once; after the cool-off one
    probe that works closes it."""
    now = [0.0]
    breaker = CircuitBreaker(3, 30.0, clock=lambda: now[0])
    openai_fake.enqueue("moderations", *[FakeResponse.html(503)] * 3)
    client = OpenAIModeration(OPENAI_KEY, openai_fake.root_url + "/v1", breaker=breaker)
    policy = Moderator(Blocklist([]), client)
    try:
        with pytest.raises(ModerationRefused) as first:
            await policy.review("a lighthouse")
        assert first.value.unavailable and breaker.state == "open"
        assert len(openai_fake.calls("moderations")) == 3  # retried, then the breaker opened
        started = time.monotonic()
        with pytest.raises(ModerationRefused) as second:
            await policy.review("a lighthouse")
        assert second.value.unavailable and second.value.retry_after == 30.0
        assert time.monotonic() - started < 0.5 and len(openai_fake.calls("moderations")) == 3
        policy.fail_open = True  # MODERATION_FAIL=open: through, still without asking
        assert not (await policy.review("a lighthouse")).flagged
        assert len(openai_fake.calls("moderations")) == 3
        now[0] = 31.0  # the cool-off is over: one probe, which answers, closes it
        openai_fake.flag_words = {"knife": ["violence"]}
        assert (await policy.review("a knife")).categories == ("violence",)
        assert len(openai_fake.calls("moderations")) == 4 and breaker.state == "closed"
    finally:
        await policy.aclose()


async def test_an_open_moderation_breaker_refuses_slash_commands_at_once(
    tmp_path: Path, openai_fake: FakeOpenAI
) -> None:
    openai_fake.enqueue("moderations", *[FakeResponse.html(503)] * 2)
    harness = await _openai_policy(
        tmp_path,
        openai_fake,
        provider_breaker_failures=2,
        provider_breaker_cooloff_seconds=600,
    )
    try:
        first = (await harness.imagine("a lighthouse")).json()["text"]
        assert "couldn't check this request" in first
        assert len(openai_fake.calls("moderations")) == 2
        started = time.monotonic()
        second = (await harness.imagine("a harbour")).json()["text"]
        assert time.monotonic() - started < 1.0 and "try again in about 10 minutes" in second
        assert len(openai_fake.calls("moderations")) == 2  # not asked while the breaker is open
        await _nothing_queued(harness)
        assert len(await _audit(harness, "moderation_refused")) == 2
    finally:
        await harness.close()


async def test_reference_images_are_moderated_when_asked(openai_fake: FakeOpenAI) -> None:
    openai_fake.flag_images = ["sexual"]
    base = openai_fake.root_url + "/v1"
    policy = Moderator(Blocklist([]), OpenAIModeration(OPENAI_KEY, base), images=True)
    try:
        verdict = await policy.review("a portrait", [png_bytes(8, 8)])
        assert verdict.flagged and verdict.categories == ("sexual",)
        image_call = openai_fake.calls("moderations")[-1].json["input"][0]
        assert image_call["image_url"]["url"].startswith("data:image/png;base64,")
        policy.images = False
        assert not (await policy.review("a portrait", [png_bytes(8, 8)])).flagged
    finally:
        await policy.aclose()


async def test_a_flagged_result_is_withheld(tmp_path: Path, openai_fake: FakeOpenAI) -> None:
    openai_fake.flag_images = ["violence/graphic"]
    harness = await _openai_policy(
        tmp_path, openai_fake, image_provider="openai", moderation_results=True
    )
    try:
        await harness.imagine("a quiet harbour")
        [row] = await harness.wait_generations(1)
        failed = await harness.wait_state(row.id, S.FAILED)
        assert failed.error_kind == "withheld"
        thread_ts = await harness.thread_of(row.id)
        said = "\n".join(block_text(m) for m in harness.thread(thread_ts))
        assert "withheld" in said
        assert harness.emulator.calls_to("files.completeUploadExternal") == []
        assert not any(m.files for m in harness.thread(thread_ts))
        [event] = await _audit(harness, "result_withheld")
        assert event["detail"]["categories"] == ["violence/graphic"]
        assert not list((tmp_path / "images").rglob("*.png"))  # the withheld file is gone
        async with harness.sm() as db:
            assert (await db.scalars(select(GenerationRow.id))).all() == [row.id]
    finally:
        await harness.close()
