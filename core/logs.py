"""Logging set-up for the processes: one handler on the root logger, secrets redacted.

:class:`SecretRedactor` is a ``logging.Filter`` that replaces every configured secret
(bot and app tokens, signing and client secrets, provider API keys: every ``SecretStr``
setting) with ``[redacted]`` in a record's message, arguments, exception text and stack
text. :func:`configure_logging` installs it on every handler of the root logger, so it
sees the records of every logger that propagates (a filter on a *logger* would only see
that logger's own records). Code that logs should still keep secrets out at the source.

Log context (issue 13): :func:`bind` puts a session id and a generation id into a
``contextvars.ContextVar`` for the current task (the engine's step and the listeners call
it); with ``LOG_FORMAT=json`` every line written in that task carries them
(``session_id``, ``generation_id``). Tasks created afterwards inherit the values; other
tasks do not see them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from contextvars import ContextVar
from typing import IO

from core.config import Settings

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 6
"""Shorter values are not redacted (they would mangle ordinary words); real secrets are
far longer (tokens, 32-hex signing secrets, provider keys)."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_CONTEXT: ContextVar[tuple[tuple[str, int], ...]] = ContextVar("imagine_log_context", default=())


def bind(*, session_id: int | None = None, generation_id: int | None = None) -> None:
    """Name the session and generation the current task works on, for every log line it
    writes from now on (JSON format). None leaves a value as it was."""
    values = dict(_CONTEXT.get())
    if session_id is not None:
        values["session_id"] = session_id
    if generation_id is not None:
        values["generation_id"] = generation_id
    _CONTEXT.set(tuple(values.items()))


def context() -> dict[str, int]:
    """The ids :func:`bind` set for the current task (a copy; empty when none)."""
    return dict(_CONTEXT.get())


class SecretRedactor(logging.Filter):
    """Replace each of ``secrets`` with ``[redacted]`` in every record that passes.

    The record is rewritten in place: ``msg`` becomes the formatted, redacted message and
    ``args`` is emptied; ``exc_text`` (the formatted traceback) and ``stack_info`` are
    redacted too. Never drops a record (always returns True).
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        unique = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        self.secrets = sorted(unique, key=len, reverse=True)  # longest first: no partial leaks

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # malformed %-args: keep what there is, still redacted
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, ``session_id`` and ``generation_id`` when the task bound them
    (:func:`bind`), and ``exc`` (the traceback text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **dict(_CONTEXT.get()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False)


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler configure_logging installs (so a second call replaces it)."""


def configure_logging(
    settings: Settings, *, level: int | str | None = None, stream: IO[str] | None = None
) -> SecretRedactor:
    """Log to ``stream`` (stderr by default) at ``LOG_LEVEL`` in ``LOG_FORMAT``, redacted.

    ``level`` overrides ``settings.log_level`` (the CLI's demo stays quiet). Replaces a
    handler installed by an earlier call, then adds the :class:`SecretRedactor` for
    ``settings.secrets()`` to every root handler (also ones others installed). Returns
    the redactor.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _OurHandler):
            root.removeHandler(handler)
    handler = _OurHandler(stream or sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level if level is not None else settings.log_level)
    redactor = SecretRedactor(settings.secrets())
    for each in root.handlers:
        for old in [f for f in each.filters if isinstance(f, SecretRedactor)]:
            each.removeFilter(old)
        each.addFilter(redactor)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return redactor
