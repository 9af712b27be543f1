"""`imagine-bot doctor`: a ✓/✗ checklist of what a new install needs, each ✗ with its fix;
and `preflight`, the cheap part of it that `serve` runs before it starts.

Order: settings parse → database reachable and migrated → image store writable →
`auth.test` accepts SLACK_BOT_TOKEN → the token's scopes cover the manifest's → the
provider answers → (with `--channel C…`) the bot is a member of each channel. A check that
depends on an earlier failed one is not run. Slack protocol used:

- `auth.test` (https://docs.slack.dev/reference/methods/auth.test): who the token is;
  `invalid_auth`, `not_authed`, `account_inactive`, `token_revoked` mean a bad token.
- Every Web API answer to a valid token carries the token's scopes, comma-separated, in
  the `x-oauth-scopes` response header (https://docs.slack.dev/authentication/tokens).
- `conversations.info` (https://docs.slack.dev/reference/methods/conversations.info):
  `channel.is_member` says whether the bot is in the channel; a private channel it is not
  in answers `channel_not_found`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.scopes import BOT_SCOPES, missing_scopes
from core.checks import Check, check_database, check_image_store, check_prices, check_provider
from core.config import Settings, SettingsError, load_settings

BAD_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
TOKEN_FIX = (
    "copy the Bot User OAuth Token (xoxb-…) from your app's OAuth & Permissions page into "
    "SLACK_BOT_TOKEN (reinstall the app if it was revoked)"
)
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


class StartupError(Exception):
    """`serve` cannot start; `str(err)` is one line saying why and what to do."""


def slack_client(settings: Settings) -> AsyncWebClient:
    """A Web API client with SLACK_BOT_TOKEN at SLACK_API_URL (requires the token)."""
    settings.require("slack_bot_token")
    assert settings.slack_bot_token is not None
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=15,
    )


async def check_auth(
    client: AsyncWebClient, api_url: str
) -> tuple[Check, AsyncSlackResponse | None]:
    """`auth.test` with the client's token: the check, and Slack's answer when it passed."""
    name = "Slack accepts SLACK_BOT_TOKEN (auth.test)"
    try:
        response = await client.auth_test()
    except SlackApiError as err:
        code = str(err.response.get("error") or err.response.status_code)
        fix = TOKEN_FIX if code in BAD_TOKEN else "check SLACK_BOT_TOKEN and SLACK_API_URL"
        return Check(name, False, f"Slack refused the token ({code})", fix), None
    except NETWORK_ERRORS as err:
        return (
            Check(
                name,
                False,
                f"Slack could not be reached at {api_url} ({type(err).__name__})",
                "check this machine's network access to Slack (and SLACK_API_URL)",
            ),
            None,
        )
    who = f"bot @{response.get('user')} in {response.get('team')} ({response.get('team_id')})"
    return Check(name, True, who), response


def check_scopes(response: AsyncSlackResponse) -> Check:
    """Compare the `x-oauth-scopes` header of `response` with the manifest's bot scopes."""
    name = "the token has the manifest's scopes"
    headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
    missing = missing_scopes(headers.get("x-oauth-scopes"))
    if not missing:
        return Check(name, True, ", ".join(sorted(BOT_SCOPES)))
    why = "; ".join(f"{scope} ({BOT_SCOPES[scope]})" for scope in missing)
    return Check(
        name,
        False,
        f"missing {why}",
        "add them under OAuth & Permissions → Bot Token Scopes (or recreate the app from "
        "manifest.json), reinstall the app, and copy the new token",
    )


async def check_channel(client: AsyncWebClient, channel: str) -> Check:
    """`conversations.info` of `channel`: passes when the bot is a member."""
    name = f"the bot is in {channel}"
    invite = f"invite it: type `/invite @imagine` in {channel}"
    try:
        response = await client.conversations_info(channel=channel)
    except SlackApiError as err:
        code = str(err.response.get("error") or err.response.status_code)
        if code == "channel_not_found":
            return Check(name, False, "Slack does not show the bot this channel", invite)
        return Check(name, False, f"conversations.info answered {code}", "check the channel id")
    except NETWORK_ERRORS as err:
        return Check(name, False, f"Slack could not be reached ({type(err).__name__})", "")
    info = response.get("channel") or {}
    label = f"#{info.get('name')}" if info.get("name") else channel
    if not info.get("is_member"):
        return Check(name, False, f"the bot is not a member of {label}", invite)
    return Check(name, True, f"member of {label}")


def _settings_check() -> tuple[Check, Settings | None]:
    name = "settings parse"
    try:
        settings = load_settings()
        if not settings.oauth:
            settings.require("slack_bot_token")
    except SettingsError as err:
        return Check(name, False, str(err).replace("\n", "; "), "fix the variables named"), None
    return Check(name, True, f"provider {settings.image_provider}"), settings


async def run_checks(channels: list[str]) -> list[Check]:
    """Every check, in order (see the module docstring); dependent checks are left out
    when what they need failed."""
    first, settings = _settings_check()
    if settings is None:
        return [first]
    checks = [first, await check_database(settings), await check_image_store(settings)]
    if settings.oauth:
        # Many workspaces: each installation brings its own token (and the scopes Slack
        # granted at install), so there is no one token to test here.
        note = "OAuth mode: each workspace's token comes from its installation (/slack/install)"
        checks.append(Check("Slack token", True, note))
        checks.append(await check_provider(settings))
        return checks
    client = slack_client(settings)
    auth, response = await check_auth(client, settings.slack_api_url)
    checks.append(auth)
    if response is not None:
        checks.append(check_scopes(response))
    checks.append(await check_provider(settings))
    checks.append(check_prices(settings))  # issue 11
    if response is not None:
        checks.extend([await check_channel(client, channel) for channel in channels])
    return checks


def render(checks: list[Check]) -> str:
    """The checklist as text: `✓ name: detail`, and under each ✗ its `fix:`."""
    lines = []
    for check in checks:
        mark = ("!" if check.warn else "✓") if check.ok else "✗"
        lines.append(f"{mark} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
    return "\n".join(lines)


def doctor(channels: list[str], out: Callable[[str], object] = print) -> int:
    """Run the checks, print the checklist with `out`; 0 when all passed, else 1."""
    checks = asyncio.run(run_checks(channels))
    out(render(checks))
    failed = sum(not check.ok for check in checks)
    out("All checks passed." if not failed else f"{failed} check(s) failed.")
    return 0 if not failed else 1


async def preflight(settings: Settings) -> AsyncSlackResponse | None:
    """What `serve` checks before it starts: the database (reachable, migrated) and
    `auth.test`. Returns Slack's `auth.test` answer for Bolt's authorization (None in OAuth
    mode, where each installation has its own token); raises StartupError with one line
    (what failed and what to do) otherwise."""
    database = await check_database(settings)
    if not database.ok:
        raise StartupError(f"{database.detail}; {database.fix}")
    if settings.oauth:
        return None
    auth, response = await check_auth(slack_client(settings), settings.slack_api_url)
    if response is None:
        raise StartupError(f"{auth.detail}; {auth.fix}")
    return response
