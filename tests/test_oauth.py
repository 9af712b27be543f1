"""One deployment, many workspaces: Bolt's OAuth install over loopback HTTP, then a
session in each workspace, each Web API call and download made with its own token; an
Enterprise Grid org-wide install and its event envelope (`authorizations[].team_id: null`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import bound_port
from core.config import SettingsError, load_settings
from core.models import GenerationState, SessionRow
from tests.fakes import png_bytes
from tests.harness import ALICE, CHANNEL, Harness

S = GenerationState
CAROL, OTHER, GRID = "U0CAROL", "C0OTHER", "C0GRID"


@pytest.fixture
async def multi(tmp_path: Path) -> AsyncIterator[Harness]:
    """A bot with only OAuth settings (no SLACK_BOT_TOKEN) and three channels in three
    workspaces: C0DESIGN in T0TEAM, C0OTHER in T0OTHER, C0GRID in T0GRIDA of org E0GRID."""
    harness = Harness(tmp_path, slack_bot_token=None)
    emu = harness.emulator
    harness.overrides.update(
        slack_client_id=emu.installs.client_id,
        slack_client_secret=emu.installs.client_secret,
        slack_state_secret=secrets.token_hex(16),
    )
    emu.add_user(CAROL, "carol")
    emu.add_channel(OTHER, "other", members=[CAROL])
    emu.add_channel(GRID, "grid", members=[ALICE])
    emu.installs.place(CHANNEL, "T0TEAM")
    emu.installs.place(OTHER, "T0OTHER")
    emu.installs.place(GRID, "T0GRIDA", "E0GRID")
    await harness.start()
    try:
        yield harness
    finally:
        await harness.close()


async def install(harness: Harness, team_id: str | None, **how: object) -> None:
    """/slack/install → (Slack's authorize page, where the person clicks Allow) →
    /slack/oauth_redirect with the code and the state from the install's cookie."""
    assert harness.runner
    base = f"http://127.0.0.1:{bound_port(harness.runner)}"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(f"{base}/slack/install", allow_redirects=False) as res:
            assert res.status == 302
            location = res.headers["Location"]
            cookie = res.cookies["slack-app-oauth-state"].value
        query = parse_qs(urlsplit(location).query)
        assert "app_mentions:read" in query["scope"][0].split(",")
        code = harness.emulator.installs.authorize(team_id, **how)  # type: ignore[arg-type]
        params = {"code": code, "state": query["state"][0]}
        headers = {"Cookie": f"slack-app-oauth-state={cookie}"}
        async with http.get(f"{base}/slack/oauth_redirect", params=params, headers=headers) as res:
            assert res.status == 200, await res.text()


async def _posted(harness: Harness, count: int) -> list:  # type: ignore[type-arg]
    rows = await harness.wait_generations(count)
    return [await harness.wait_state(row.id, S.POSTED) for row in rows]


def _teams_by_channel(harness: Harness) -> dict[str, set[tuple[str | None, str | None]]]:
    found: dict[str, set[tuple[str | None, str | None]]] = {}
    for use in harness.emulator.installs.uses:
        if use.channel:
            found.setdefault(use.channel, set()).add((use.team_id, use.enterprise_id))
    return found


async def test_two_workspaces_each_use_their_own_token(multi: Harness) -> None:
    emu = multi.emulator
    await install(multi, "T0TEAM")
    await install(multi, "T0OTHER")
    assert len(emu.installs.tokens) == 2
    await multi.imagine("a lighthouse", user=ALICE, channel=CHANNEL)
    await _posted(multi, 1)
    await multi.imagine("a cat", user=CAROL, channel=OTHER)
    [_, v2] = await _posted(multi, 2)
    other_thread = await multi.thread_of(v2.id)
    red = png_bytes(8, 8, (255, 0, 0, 255))
    await emu.post_user_message(
        CAROL, OTHER, "", thread_ts=other_thread, files=[("red.png", red, "image/png")]
    )
    await emu.wait_for(lambda: [m for m in multi.thread(other_thread, OTHER) if "Got" in m.text])

    by_channel = _teams_by_channel(multi)
    assert by_channel[CHANNEL] == {("T0TEAM", None)}
    assert by_channel[OTHER] == {("T0OTHER", None)}
    methods = {(u.method, u.team_id) for u in emu.installs.uses}
    for team in ("T0TEAM", "T0OTHER"):
        assert {("chat.postMessage", team), ("files.completeUploadExternal", team)} <= methods
    assert ("download", "T0OTHER") in methods  # the reference came down with its token
    assert not [c for c in emu.calls if c.error in ("invalid_auth", "channel_not_found")]
    async with multi.sm() as s:
        teams = (await s.scalars(select(SessionRow.team_id).order_by(SessionRow.id))).all()
    assert teams == ["T0TEAM", "T0OTHER"]


async def test_an_org_wide_grid_install_serves_its_workspaces(multi: Harness) -> None:
    emu = multi.emulator
    await install(multi, None, enterprise_id="E0GRID", org_wide=True)
    [installed] = emu.installs.tokens.values()
    assert installed.org_wide and installed.team_id is None
    ts, _message, mention = await emu.mention_bot(ALICE, GRID, "<@U0BOT> a glacier")
    assert mention is not None and mention.status == 200
    sent = emu.events[emu.last_event_id()]
    assert b'"team_id": null' in sent and b'"is_enterprise_install": true' in sent
    [v1] = await _posted(multi, 1)
    assert await multi.thread_of(v1.id) == ts
    assert _teams_by_channel(multi)[GRID] == {(None, "E0GRID")}
    async with multi.sm() as s:
        session = await s.scalar(select(SessionRow))
    assert session is not None and (session.team_id, session.enterprise_id) == (
        "T0GRIDA",
        "E0GRID",
    )


async def test_a_workspace_without_an_installation_gets_nothing(multi: Harness) -> None:
    await install(multi, "T0TEAM")
    delivery = await multi.imagine("a cat", user=CAROL, channel=OTHER)
    assert delivery.status != 500
    assert await multi.generations() == []
    assert _teams_by_channel(multi).get(OTHER) is None


def test_oauth_settings_come_all_three_or_none() -> None:
    with pytest.raises(SettingsError, match="SLACK_STATE_SECRET"):
        load_settings(slack_client_id="1.2", slack_client_secret="s", _env_file=None)
    settings = load_settings(
        slack_client_id="1.2", slack_client_secret="s", slack_state_secret="t", _env_file=None
    )
    assert settings.oauth and "s" in settings.secrets() and "t" in settings.secrets()
    assert not load_settings(_env_file=None).oauth
