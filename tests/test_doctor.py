"""`imagine-bot doctor` and the checks `serve` makes at start, run as a newcomer runs them:
the console script in a subprocess, against the Slack stand-in and the provider fakes."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.app import bound_port, build_runtime, start_server
from bot.doctor import preflight
from bot.emulator import SlackEmulator
from core import db
from core.checks import check_database, check_provider
from core.config import load_settings
from tests.conftest import OPENAI_KEY
from tests.fakes.openai_server import FakeOpenAI

SECRET = "doctor-signing-secret"


class Setup:
    """A migrated database, the stand-in and the environment a newcomer would set."""

    def __init__(self, tmp: Path, emulator: SlackEmulator, token: str) -> None:
        self.tmp = tmp
        self.emulator = emulator
        self.token = token
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp),
            "SLACK_BOT_TOKEN": token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": emulator.api_url,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/imagine.db",
            "IMAGE_STORE_DIR": str(tmp / "images"),
        }

    async def run(self, *args: str, **env: str) -> tuple[int, str, str]:
        """`python -m bot <args>` with the environment (plus `env`); (code, stdout, stderr)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env={**self.env, **env},
            cwd=self.tmp,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    token = f"xoxb-doctor-{secrets.token_hex(6)}"
    async with SlackEmulator(SECRET, token) as emulator:
        await db.upgrade_to_head(f"sqlite+aiosqlite:///{tmp_path}/imagine.db")
        yield Setup(tmp_path, emulator, token)


def openai_env(fake: FakeOpenAI, base: str | None = None) -> dict[str, str]:
    return {
        "IMAGE_PROVIDER": "openai",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": base or fake.root_url + "/v1",
    }


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lines_of(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(("✓", "✗"))]


async def test_all_checks_pass(setup: Setup, openai_fake: FakeOpenAI) -> None:
    code, out, _ = await setup.run("doctor", "--channel", "C0DESIGN", **openai_env(openai_fake))
    assert code == 0, out
    names = [line.split(":")[0] for line in lines_of(out)]
    assert names == [
        "✓ settings parse",
        "✓ database reachable and migrated",
        "✓ image store writable",
        "✓ Slack accepts SLACK_BOT_TOKEN (auth.test)",
        "✓ the token has the manifest's scopes",
        "✓ provider answers (OpenAI, model gpt-image-1)",
        "✓ price table",
        "✓ the bot is in C0DESIGN",
    ]
    assert "All checks passed." in out
    assert [r.path for r in openai_fake.calls("model")] == ["/v1/models/gpt-image-1"]


async def test_an_unpriced_model_is_a_warning_and_fails_with_a_budget(
    setup: Setup, openai_fake: FakeOpenAI
) -> None:
    env = {**openai_env(openai_fake), "IMAGE_MODEL": "dall-e-3"}
    code, out, _ = await setup.run("doctor", **env)
    assert code == 0, out
    assert "! price table: dall-e-3 has no price: usage shows its images as unpriced" in out
    assert "IMAGE_PRICES" in out
    code, out, _ = await setup.run("doctor", **env, QUOTA_TEAM_MONTHLY_USD="5")
    assert code == 1
    assert "✗ price table: dall-e-3 has no price, so QUOTA_TEAM_MONTHLY_USD refuses" in out


async def test_a_bad_token_is_named_with_its_fix(setup: Setup) -> None:
    code, out, _ = await setup.run("doctor", SLACK_BOT_TOKEN="xoxb-wrong")
    assert code == 1
    assert (
        "✗ Slack accepts SLACK_BOT_TOKEN (auth.test): Slack refused the token (invalid_auth)" in out
    )
    assert "fix: copy the Bot User OAuth Token" in out
    assert "scopes" not in out  # not checked without a working token
    assert "xoxb-wrong" not in out


async def test_a_missing_scope_is_named(setup: Setup) -> None:
    setup.emulator.scopes[setup.token].remove("files:read")
    code, out, _ = await setup.run("doctor")
    assert code == 1
    assert "✗ the token has the manifest's scopes: missing files:read (download the images" in out
    assert "reinstall the app" in out


async def test_an_unreachable_provider(setup: Setup, openai_fake: FakeOpenAI) -> None:
    base = f"http://127.0.0.1:{closed_port()}/v1"
    code, out, _ = await setup.run("doctor", **openai_env(openai_fake, base))
    assert code == 1
    assert f"✗ provider answers (OpenAI, model gpt-image-1): {base}/models/gpt-image-1 could" in out
    assert "fix: check OPENAI_BASE_URL" in out


async def test_a_shut_down_model(setup: Setup, openai_fake: FakeOpenAI) -> None:
    openai_fake.models["dall-e-2"] = {"shutdown_date": "2025-01-15"}
    code, out, _ = await setup.run("doctor", IMAGE_MODEL="dall-e-2", **openai_env(openai_fake))
    assert code == 1
    assert "`dall-e-2` was shut down on 2025-01-15" in out
    assert "fix: set IMAGE_MODEL to a current model" in out


async def test_the_bot_is_not_in_the_channel(setup: Setup) -> None:
    code, out, _ = await setup.run("doctor", "--channel", "C0PRIVATE", "--channel", "C0NOPE")
    assert code == 1
    assert "✗ the bot is in C0PRIVATE: the bot is not a member of #secret" in out
    assert "✗ the bot is in C0NOPE: Slack does not show the bot this channel" in out
    assert "/invite @imagine" in out


async def test_bad_settings_stop_the_checklist(setup: Setup) -> None:
    code, out, _ = await setup.run("doctor", PORT="abc", DATABASE_URL="sqlite:///x.db")
    assert code == 1
    assert lines_of(out)[0].startswith("✗ settings parse: ")
    assert "DATABASE_URL: needs the async driver aiosqlite" in out and "PORT:" in out
    assert not (setup.tmp / "x.db").exists()


async def test_model_checks_in_process(openai_fake: FakeOpenAI, tmp_path: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    settings = load_settings(
        slack_bot_token="xoxb-x",
        image_provider="openai",
        openai_api_key=OPENAI_KEY,
        openai_base_url=openai_fake.root_url + "/v1",
        image_model="dall-e-3",
        _env_file=None,
    )
    soon = int((now + timedelta(days=10)).timestamp())
    openai_fake.models["dall-e-3"] = {"shutdown_date": soon}
    check = await check_provider(settings, now=now)
    assert not check.ok and "shuts down on 2026-01-11" in check.detail
    openai_fake.models["dall-e-3"] = {"shutdown_date": int((now + timedelta(days=90)).timestamp())}
    assert (await check_provider(settings, now=now)).ok
    missing = settings.model_copy(update={"image_model": "gpt-nope"})
    check = await check_provider(missing, now=now)
    assert not check.ok and "does not offer the model `gpt-nope`" in check.detail
    refused = load_settings(**{**settings.model_dump(), "openai_api_key": "sk-bad"})
    check = await check_provider(refused, now=now)
    assert not check.ok and "refused (HTTP 401)" in check.detail and "sk-bad" not in str(check)


async def test_toapis_key_is_checked(toapis_fake, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = dict(slack_bot_token="xoxb-x", image_provider="toapis", _env_file=None)
    good = load_settings(
        **base, toapis_api_key="toapis-test-key", toapis_base_url=toapis_fake.root_url
    )
    assert (await check_provider(good)).ok
    bad = load_settings(**base, toapis_api_key="nope", toapis_base_url=toapis_fake.root_url)
    check = await check_provider(bad)
    assert not check.ok and "refused (HTTP 401)" in check.detail
    assert [r.path for r in toapis_fake.calls("models")] == ["/v1/models", "/v1/models"]


async def test_database_not_migrated_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/none/imagine.db"
    check = await check_database(load_settings(database_url=url, _env_file=None))
    assert not check.ok and "does not exist yet" in check.detail and "alembic" in check.fix
    assert not (tmp_path / "none").exists()


# -- serve at start ----------------------------------------------------------------------


@pytest.mark.parametrize("case", ["bad token", "unreachable"])
async def test_serve_stops_with_one_line_when_slack_says_no(setup: Setup, case: str) -> None:
    env = (
        {"SLACK_BOT_TOKEN": "xoxb-wrong"}
        if case == "bad token"
        else {"SLACK_API_URL": f"http://127.0.0.1:{closed_port()}/api/"}
    )
    code, _, err = await setup.run("serve", PORT=str(closed_port()), **env)
    assert code == 1
    # serve logs its start at INFO (migrations); the error itself is one line, the last.
    said = [line for line in err.splitlines() if line.startswith("imagine-bot:")]
    assert len(said) == 1 and err.strip().endswith(said[0]) and "Traceback" not in err, err
    says = "invalid_auth" if case == "bad token" else "Slack could not be reached"
    assert said[0].startswith("imagine-bot: cannot start: ") and says in said[0]


async def test_serve_starts_without_bolt_warnings(setup: Setup) -> None:
    port = closed_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "serve",
        env={**setup.env, "PORT": str(port)},
        cwd=setup.tmp,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("serve did not answer /healthz")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 60)
    assert "will be unused" not in err.decode() and "Traceback" not in err.decode()
    assert [c.method for c in setup.emulator.calls] == ["auth.test"]


async def test_requests_are_authorized_without_auth_test(setup: Setup) -> None:
    """With the start-up auth.test answer, Bolt never calls auth.test itself: a failing
    auth.test (or an unreachable Slack) cannot turn a signed request into a 500."""
    settings = load_settings(
        slack_bot_token=setup.token,
        slack_signing_secret=SECRET,
        slack_api_url=setup.emulator.api_url,
        database_url=setup.env["DATABASE_URL"],
        image_store_dir=setup.tmp / "images",
        _env_file=None,
    )
    runtime = build_runtime(settings, auth_test=await preflight(settings))
    runner = await start_server(runtime, "127.0.0.1", 0)
    try:
        setup.emulator.request_url = f"http://127.0.0.1:{bound_port(runner)}/slack/events"
        setup.emulator.fail_next("auth.test", "internal_error", status=500, times=5)
        answer = await setup.emulator.send_slash_command("U0ALICE", "C0DESIGN", "help")
        assert answer.status == 200 and "--ar" in answer.text
        assert len(setup.emulator.calls_to("auth.test")) == 1  # the one at start
    finally:
        await runner.cleanup()


async def test_oauth_mode_needs_no_bot_token(setup: Setup) -> None:
    """With the three OAuth settings each installation brings its own token: doctor says so
    instead of failing on a missing SLACK_BOT_TOKEN, and makes no auth.test."""
    del setup.env["SLACK_BOT_TOKEN"]
    env = {
        "SLACK_CLIENT_ID": "1111.2222",
        "SLACK_CLIENT_SECRET": "client-secret",
        "SLACK_STATE_SECRET": "state-secret",
    }
    code, out, _ = await setup.run("doctor", **env)
    assert code == 0, out
    assert "✓ Slack token: OAuth mode" in out
    assert not setup.emulator.calls_to("auth.test")
