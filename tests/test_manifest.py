"""manifest.json matches what the code does: scopes cover every Web API method the bot calls
(and nothing unused), the slash command and the bot events reach a listener, and every
request URL is the one path the app serves."""

from __future__ import annotations

import ast
import inspect
import json
import re
import time
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from bot.app import web_app
from bot.emulator import delivery as dl
from bot.scopes import BOT_SCOPES, EVENT_SCOPES, METHOD_SCOPES, PRIVATE_FILE_SCOPE
from tests.harness import ALICE, CHANNEL, Harness

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = json.loads((ROOT / "manifest.json").read_text())
# The modules that call Slack's Web API with the bot token.
CALLERS = [
    "bot/publisher.py",
    "bot/uploads.py",
    "bot/files.py",
    "bot/doctor.py",
    "bot/app.py",
    "bot/listeners",
]


def _sdk_methods(name: str, seen: set[str] | None = None) -> set[str]:
    """The Slack methods a slack_sdk AsyncWebClient method calls (read from its source)."""
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    source = inspect.getsource(getattr(AsyncWebClient, name))
    found = set(re.findall(r'api_call\(\s*"([\w.]+)"', source))
    for other in re.findall(r"self\.(\w+)\(", source):
        if other != "api_call" and callable(getattr(AsyncWebClient, other, None)):
            found |= _sdk_methods(other, seen)
    return found


def methods_called() -> set[str]:
    """Every Web API method named in the caller modules: `api_call("x.y")`/`_call("x.y")`
    string arguments and slack_sdk typed methods (`client.chat_postMessage(...)`)."""
    files: list[Path] = []
    for entry in CALLERS:
        path = ROOT / entry
        files.extend(sorted(path.glob("*.py")) if path.is_dir() else [path])
    methods: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            attr = node.func.attr
            if attr in ("api_call", "_call") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    methods.add(first.value)
            elif attr != "api_call" and callable(getattr(AsyncWebClient, attr, None)):
                methods |= _sdk_methods(attr)
    return methods


def manifest_scopes() -> set[str]:
    return set(MANIFEST["oauth_config"]["scopes"]["bot"])


def test_the_code_calls_what_the_table_knows() -> None:
    called = methods_called()
    # Sanity: the scan sees the calls everyone knows the bot makes.
    assert {"chat.postMessage", "files.completeUploadExternal", "auth.test"} <= called
    unknown = called - set(METHOD_SCOPES)
    assert not unknown, f"add these methods' scopes to bot/scopes.py: {sorted(unknown)}"


def test_manifest_scopes_cover_every_call_and_no_more() -> None:
    scopes = manifest_scopes()
    assert scopes == set(BOT_SCOPES)
    used = {"commands", PRIVATE_FILE_SCOPE}  # the slash command; url_private downloads
    for method in methods_called():
        needed = METHOD_SCOPES[method]
        if needed:
            assert needed & scopes, f"{method} needs one of {sorted(needed)}"
            used |= needed & scopes
    for event in MANIFEST["settings"]["event_subscriptions"]["bot_events"]:
        needed_scope = EVENT_SCOPES[event]
        if needed_scope is None:  # app_home_opened needs no scope
            continue
        assert needed_scope in scopes, f"{event} needs {needed_scope}"
        used.add(needed_scope)
    assert scopes == used, f"scopes nothing uses: {sorted(scopes - used)}"


def test_manifest_shape() -> None:
    settings = MANIFEST["settings"]
    assert MANIFEST["display_information"]["name"]
    assert 174 <= len(MANIFEST["display_information"]["long_description"]) <= 4000
    assert MANIFEST["features"]["bot_user"]["display_name"]
    assert settings["socket_mode_enabled"] is False
    assert settings["interactivity"]["is_enabled"] is True
    assert MANIFEST["features"]["app_home"]["home_tab_enabled"] is True
    commands = MANIFEST["features"]["slash_commands"]
    assert [c["command"] for c in commands] == ["/imagine"]
    assert all(c["should_escape"] is True for c in commands)
    urls = [c["url"] for c in commands]
    urls += [
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert all(url.startswith("https://") and url.endswith("/slack/events") for url in urls)


async def test_request_urls_commands_and_events_reach_the_app(harness: Harness) -> None:
    assert harness.runtime is not None
    routes = {(r.method, r.resource.canonical) for r in web_app(harness.runtime).router.routes()}
    assert ("POST", "/slack/events") in routes

    for command in MANIFEST["features"]["slash_commands"]:
        answer = await harness.emulator.send_slash_command(
            ALICE, CHANNEL, "help", command=command["command"]
        )
        assert answer.status == 200 and "--ar" in answer.text
    # An unregistered command is refused, so the check above can fail.
    other = await harness.emulator.send_slash_command(ALICE, CHANNEL, "x", command="/other")
    assert other.status == 404

    harness.emulator.add_channel("C0GROUP", "group", members=[ALICE], is_private=True)
    channels = {"message.channels": CHANNEL, "message.groups": "C0GROUP"}
    for event in MANIFEST["settings"]["event_subscriptions"]["bot_events"]:
        if event.startswith("message."):
            _, delivery = await harness.emulator.post_user_message(ALICE, channels[event], "hi")
            assert delivery is not None and delivery.status == 200, event
            continue
        if event == "app_home_opened":
            answer = await harness.emulator.open_app_home(ALICE)
            assert answer.status == 200
            await harness.emulator.wait_for(lambda: harness.emulator.home(ALICE))
            continue
        assert event == "app_mention", f"no delivery written for {event}"
        answer = await _deliver_mention(harness)
        assert answer.status == 200


async def _deliver_mention(harness: Harness) -> dl.Delivery:
    ws = harness.emulator.ws
    ts = ws.clock.next()
    event = {
        "type": "app_mention",
        "user": ALICE,
        "text": f"<@{ws.bot_user_id}> a lighthouse",
        "ts": ts,
        "channel": CHANNEL,
        "event_ts": ts,
    }
    body = json.dumps(dl.event_callback(ws, event, f"Ev0MENTION{int(time.time())}"))
    return await harness.emulator.send_raw(body.encode(), "application/json", kind="event")
