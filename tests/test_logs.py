"""core.logs: every configured secret is redacted from what the process logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from core.config import load_settings
from core.logs import REDACTED, SecretRedactor, configure_logging

BOT = "xoxb-1111-2222-abcdefSECRET"
APP = "xapp-1-A0-3333-appSECRET"
SIGNING = "0123456789abcdef0123456789abcdef"
OPENAI = "sk-proj-openaiSECRETkey"
TOAPIS = "toapis-SECRET-key-42"


@pytest.fixture
def root_state() -> Iterator[None]:
    """Put the root logger's handlers, filters and level back after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    filters = {h: list(h.filters) for h in handlers}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler, kept in filters.items():
        handler.filters[:] = kept
    root.setLevel(level)


def _settings(**extra: object):  # type: ignore[no-untyped-def]
    return load_settings(
        slack_bot_token=BOT,
        slack_app_token=APP,
        slack_signing_secret=SIGNING,
        openai_api_key=OPENAI,
        toapis_api_key=TOAPIS,
        **extra,
    )


def _emit_everything(log: logging.Logger) -> None:
    log.warning("gateway answered 200 with <html>Authorization: Bearer %s</html>", OPENAI)
    log.info("toapis said %r and slack %s", {"key": TOAPIS}, BOT)
    log.error("signing secret " + SIGNING + " and app token %s", APP)
    try:
        raise RuntimeError(f"request failed: Authorization: Bearer {BOT}")
    except RuntimeError:
        log.exception("while calling with %s", OPENAI)
    log.warning("stack", stack_info=True, extra={"token": BOT})


@pytest.mark.usefixtures("root_state")
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_secrets_are_redacted_through_the_real_logging_config(fmt: str) -> None:
    out = io.StringIO()
    configure_logging(_settings(log_format=fmt, log_level="DEBUG"), stream=out)
    _emit_everything(logging.getLogger("core.providers.openai"))  # a child logger: propagates
    text = out.getvalue()
    for secret in (BOT, APP, SIGNING, OPENAI, TOAPIS):
        assert secret not in text
    assert text.count(REDACTED) >= 7
    assert "request failed" in text and "RuntimeError" in text  # the traceback is kept
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines()]
        assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "core.providers.openai"
        assert any("exc" in line for line in lines)


@pytest.mark.usefixtures("root_state")
def test_other_root_handlers_are_covered_and_level_applies() -> None:
    other = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(other))
    ours = io.StringIO()
    configure_logging(_settings(log_level="WARNING"), stream=ours)
    configure_logging(_settings(log_level="WARNING"), stream=ours)  # twice: one handler
    log = logging.getLogger("bot.listeners.events")
    log.info("not shown %s", BOT)
    log.warning("shown %s", BOT)
    assert ours.getvalue().count("shown") == 1 and "not shown" not in ours.getvalue()
    assert BOT not in ours.getvalue() and BOT not in other.getvalue()
    assert f"shown {REDACTED}" in other.getvalue()


def test_short_values_and_longest_first() -> None:
    redactor = SecretRedactor(["abc", "", "secret-value", "secret-value-longer"])
    assert redactor.redact("abc secret-value-longer secret-value") == (f"abc {REDACTED} {REDACTED}")


def test_malformed_args_are_still_redacted() -> None:
    redactor = SecretRedactor([BOT])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d items " + BOT, ("a",), None)
    assert redactor.filter(record)
    assert BOT not in record.getMessage()


def test_settings_list_every_secret_and_log_settings_are_checked() -> None:
    assert set(_settings().secrets()) == {BOT, APP, SIGNING, OPENAI, TOAPIS}
    with pytest.raises(Exception, match="LOG_LEVEL"):
        load_settings(log_level="chatty")
    with pytest.raises(Exception, match="LOG_FORMAT"):
        load_settings(log_format="xml")
