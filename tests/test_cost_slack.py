"""Cost control over loopback HTTP (issue 11): a refused `/imagine` says which limit and
when it resets and queues nothing, admins get the 80 % DM once, `/imagine usage` for a
person and an admin, `/imagine quota` for admins only, a duplicate gets *Generate anyway*,
and the `imagine-bot usage` export."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.__main__ import main
from core.models import GenerationRow, GenerationState
from tests.harness import ALICE, BOB, CHANNEL, Harness

S = GenerationState
ADMIN = "U0ADMIN"
PRICED_LOCAL = {"local": {"*": {"*": 0.25}}}  # the local renderer at $0.25 an image


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(
        tmp_path,
        local_render_seconds=0.1,
        imagine_admins=ADMIN,
        image_prices=PRICED_LOCAL,
        quota_user_daily_images=3,
        quota_team_monthly_usd=1.5,
    )
    harness.emulator.add_user(ADMIN, "admin")
    harness.emulator.add_channel("C0OTHER", "other", members=[ALICE, BOB, ADMIN])
    harness.emulator.ws.channels[CHANNEL].members.add(ADMIN)
    await harness.start()
    yield harness
    await harness.close()


def _dms(bot: Harness, user: str) -> list[str]:
    return [m.text for m in bot.emulator.messages("D" + user[1:])]


async def _ask(bot: Harness, text: str, user: str = ALICE, channel: str = CHANNEL) -> str:
    return await bot.ask(text, user=user, channel=channel)


async def test_quota_refusals_queue_nothing_and_admins_hear_of_80_percent_once(
    bot: Harness,
) -> None:
    assert await _ask(bot, "a red fox --n 2") == ""  # $0.50
    refused = await _ask(bot, "a blue fox --n 2")  # 2 + 2 > 3 images today
    assert "You've used 2 of 3 images today (this request needs 2); resets at 00:00 UTC" in (
        refused
    )
    assert "Nothing was queued" in refused
    assert len(await bot.generations()) == 1
    assert await _ask(bot, "a green fox", user=BOB) == ""  # $0.75: 50 %
    assert _dms(bot, ADMIN) == []
    assert await _ask(bot, "a grey fox --n 2", user=BOB) == ""  # $1.25: 83 %
    dms = await bot.emulator.wait_for(lambda: _dms(bot, ADMIN))
    assert len(dms) == 1 and "$1.25" in dms[0] and "83 %" in dms[0]
    budget = await _ask(bot, "a white fox --n 2", user=ADMIN)  # admins: no user quota
    assert "The workspace has spent $1.25 of its $1.50 monthly image budget" in budget
    assert "resets on 1 " in budget and "Nothing was queued" in budget
    assert await _ask(bot, "a small fox", user=ADMIN) == ""  # $1.50: still within
    rows = await bot.generations()
    assert len(rows) == 4
    for row in rows:
        await bot.wait_state(row.id, S.POSTED)
    await bot.emulator.wait_idle()
    assert len(_dms(bot, ADMIN)) == 1  # once a month, whatever happens after


async def test_usage_for_a_person_and_for_an_admin(bot: Harness) -> None:
    await _ask(bot, "a red fox --n 2")
    await _ask(bot, "a kite", user=BOB, channel="C0OTHER")
    for row in await bot.generations():
        await bot.wait_state(row.id, S.POSTED)
    mine = await _ask(bot, "usage")
    assert "Today: 2 images, $0.50" in mine
    assert "1 of 3 images left today" in mine
    assert "Workspace" not in mine  # not an admin
    admin = await _ask(bot, "usage", user=ADMIN)
    assert "none for you (you are an admin)" in admin
    assert "Total: 3 images, $0.75 of $1.50 budget" in admin
    assert f"<@{ALICE}>: 2 images, $0.50" in admin and f"<@{BOB}>: 1 image, $0.25" in admin
    assert f"<#{CHANNEL}>: 2 images" in admin and "<#C0OTHER>: 1 image" in admin
    assert "`local`: 3 images, $0.75" in admin
    assert "Cache hits: 0 of 2 generations" in admin


async def test_quota_overrides_are_for_admins(bot: Harness) -> None:
    refused = await _ask(bot, "quota set --user-daily 10")
    assert "Only admins can change quotas" in refused
    shown = await _ask(bot, "quota set --user-daily 10", user=ADMIN)
    assert "Images per person per day: 10 (channel override)" in shown
    assert "Workspace budget per month: $1.50" in shown
    bad = await _ask(bot, "quota set --user-daily lots", user=ADMIN)
    assert "`--user-daily` needs a whole number" in bad
    assert await _ask(bot, "a fox --n 4") == ""  # 4 > 3, allowed by the override
    off = await _ask(bot, "quota off", user=ADMIN)
    assert "Images per person per day: 3\n" in off
    assert "Only admins" not in await _ask(bot, "quota")  # anyone may look


async def test_a_duplicate_offers_generate_anyway(tmp_path: Path) -> None:
    bot = await Harness(tmp_path, local_render_seconds=0.1).start()
    try:
        assert await _ask(bot, "a lighthouse --ar 3:2") == ""
        first = (await bot.wait_generations(1))[0]
        await bot.wait_state(first.id, S.POSTED)
        said = await _ask(bot, "a lighthouse --ar 3:2")  # acked; the note follows
        assert "You asked for this" in said
        notes = await bot.emulator.wait_for(lambda: bot.emulator.ephemerals_for(ALICE))
        note = notes[-1]
        assert "You asked for this" in note.text and "s ago" in note.text
        assert "that thread" in note.text and "Nothing new was queued" in note.text
        assert len(await bot.generations()) == 1
        delivery = await bot.emulator.click_ephemeral_button(note, "generate_anyway")
        assert delivery.status == 200
        rows = await bot.wait_generations(2)
        second = await bot.wait_state(rows[1].id, S.POSTED)
        assert (second.prompt, second.params) == (first.prompt, first.params)
        assert second.session_id != first.session_id
    finally:
        await bot.close()


async def test_usage_export_columns_and_totals(
    bot: Harness, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await _ask(bot, "a red fox --n 2")
    await _ask(bot, "a kite", user=BOB, channel="C0OTHER")
    await _ask(bot, "a blue fox")
    rows: list[GenerationRow] = await bot.generations()
    for row in rows:
        await bot.wait_state(row.id, S.POSTED)
    assert bot.settings is not None
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)
    monkeypatch.setenv("IMAGE_PRICES", json.dumps(PRICED_LOCAL))
    assert await asyncio.to_thread(main, ["usage", "--format", "csv"]) == 0
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(table[0]) == [
        "month",
        "team_id",
        "user_id",
        "channel_id",
        "provider",
        "model",
        "generations",
        "images",
        "usd",
        "unpriced_generations",
        "reused_generations",
    ]
    by_user = {(r["user_id"], r["channel_id"]): r for r in table}
    assert by_user[(ALICE, CHANNEL)]["images"] == "3"
    assert by_user[(ALICE, CHANNEL)]["generations"] == "2"
    assert float(by_user[(ALICE, CHANNEL)]["usd"]) == pytest.approx(0.75)
    assert float(by_user[(BOB, "C0OTHER")]["usd"]) == pytest.approx(0.25)
    assert sum(float(r["usd"]) for r in table) == pytest.approx(1.0)
    month = table[0]["month"]
    assert await asyncio.to_thread(main, ["usage", "--format", "jsonl", "--month", month]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sum(line["images"] for line in lines) == 4
    assert await asyncio.to_thread(main, ["usage", "--month", "2026-13"]) == 2
    assert "not a month" in capsys.readouterr().err
