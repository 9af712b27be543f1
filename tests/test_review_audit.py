"""Team review, issue 10: `imagine-bot audit` prints the trail (policy changes, approvals,
publishes) as CSV or JSONL, filtered by date and channel."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

from tests.harness import BOB, CHANNEL
from tests.review_support import OLIVE, posted, result_of, review_bot, set_command
from tests.test_cli import run_cli


async def test_audit_export_as_csv_and_jsonl(tmp_path: Path) -> None:
    bot = await review_bot(tmp_path)
    try:
        emu = bot.emulator
        await emu.send_slash_command(
            OLIVE, CHANNEL, set_command(bot, rest="--gallery #design-gallery")
        )
        v1 = await posted(bot)
        result = await result_of(bot, v1.id)
        await emu.click_button(BOB, CHANNEL, result.ts, "approve", f"{v1.id}:0")
        await emu.wait_for(lambda: emu.messages("C0GALLERY"))
        await emu.wait_idle()
        assert bot.settings is not None
        env = {"DATABASE_URL": bot.settings.database_url, "SLACK_BOT_TOKEN": "xoxb-1"}
        jsonl = await asyncio.to_thread(run_cli, tmp_path, env, "audit", "--format", "jsonl")
        other = await asyncio.to_thread(run_cli, tmp_path, env, "audit", "--channel", "C0OTHER")
        later = await asyncio.to_thread(run_cli, tmp_path, env, "audit", "--since", "2999-01-01")
        table = await asyncio.to_thread(run_cli, tmp_path, env, "audit", "--since", "2000-01-01")
        bad = await asyncio.to_thread(run_cli, tmp_path, env, "audit", "--since", "yesterday")
    finally:
        await bot.close()
    assert jsonl.returncode == 0, jsonl.stderr
    rows = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [(r["action"], r["user_id"]) for r in rows] == [
        ("policy_set", OLIVE),
        ("approve", BOB),
        ("approved", BOB),
        ("published", BOB),
    ]
    assert rows[1]["generation_id"] == v1.id and rows[1]["image_id"] is not None
    assert rows[1]["policy"]["gallery_channel_id"] == "C0GALLERY"
    assert rows[0]["at"].endswith("+00:00")
    parsed = list(csv.DictReader(io.StringIO(table.stdout)))
    assert [r["action"] for r in parsed] == [r["action"] for r in rows]
    assert json.loads(parsed[3]["detail"])["gallery"] == "C0GALLERY"
    header = "at,team_id,channel_id,user_id,action,generation_id,image_id,detail,policy\n"
    assert other.stdout == later.stdout == header
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
