"""The `imagine-bot` command line: `serve`, `worker`, `demo`, `doctor`, `audit` and `usage`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.doctor import StartupError
from core.config import SettingsError, load_settings
from core.logs import configure_logging


async def _upgrade_sqlite(database_url: str) -> None:
    """Bring a SQLite database to the newest schema at start (PostgreSQL is migrated by the
    operator: `alembic upgrade head`)."""
    from sqlalchemy.engine import make_url

    from core import db

    if make_url(database_url).get_backend_name() == "sqlite":
        await db.upgrade_to_head(database_url)


def _serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    # Socket Mode: deliveries come over a WebSocket opened with the app-level token;
    # nothing is signed, so SLACK_SIGNING_SECRET is not needed.
    token = None if settings.oauth else "slack_bot_token"  # OAuth: each install's token
    settings.require(
        *filter(None, [token, "slack_app_token" if args.socket_mode else "slack_signing_secret"])
    )
    from bot.app import build_runtime, start_server, start_socket_mode
    from bot.doctor import preflight

    async def main() -> None:
        await _upgrade_sqlite(settings.database_url)
        auth_test = await preflight(settings)
        runtime = build_runtime(
            settings,
            socket_mode=args.socket_mode,
            auth_test=auth_test,
            run_jobs=not args.no_worker,
        )
        log = logging.getLogger("imagine")
        if args.socket_mode:
            try:
                runner = await start_socket_mode(runtime, "0.0.0.0", settings.port)
            except BaseException:
                await runtime.aclose()
                raise
            log.info(
                "connected over Socket Mode; /healthz on :%s (provider: %s)",
                settings.port,
                runtime.provider.label,
            )
        else:
            runner = await start_server(runtime, "0.0.0.0", settings.port)
            log.info("listening on :%s (provider: %s)", settings.port, runtime.provider.label)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
    return 0


def _worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    configure_logging(settings)
    if not settings.oauth:
        settings.require("slack_bot_token")
    from bot.worker import run_worker

    async def main() -> None:
        await _upgrade_sqlite(settings.database_url)
        await run_worker(settings)

    asyncio.run(main())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    settings = load_settings()  # fail early, with one line, on a malformed environment
    # The transcript is the demo's output: only warnings unless -v asks for LOG_LEVEL.
    configure_logging(settings, level=None if args.verbose else logging.WARNING)
    return asyncio.run(
        run_demo(
            " ".join(args.prompt),
            Path(args.out),
            args.reply,
            wait_seconds=args.timeout,
            review=args.review,
        )
    )


def _doctor(args: argparse.Namespace) -> int:
    from bot.doctor import doctor

    return doctor(args.channel)


def _audit(args: argparse.Namespace) -> int:
    from bot.audit import AuditArgumentError, export, parse_since

    settings = load_settings()
    try:
        since = parse_since(args.since)
    except AuditArgumentError as err:
        print(f"imagine-bot: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(asyncio.run(export(settings, since, args.channel, args.format)))
    return 0


REQUIRED = {
    "slack_bot_token": "required",
    "slack_signing_secret": "required over HTTP",
    "slack_app_token": "required with --socket-mode",
}


def _settings_help() -> str:
    """The environment variables `serve` reads, one a line, from the Settings model."""
    from core.config import Settings

    lines = ["settings (environment variables, or a .env file in the working folder):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else str(default)
        shown = REQUIRED.get(name, shown)
        lines.append(f"  {name.upper():34} {shown}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    """The command line: one sub-command per job (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="imagine-bot", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="demo: log at LOG_LEVEL (default INFO)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_worker(sub)
    _add_demo(sub)
    _add_doctor(sub)
    _add_audit(sub)
    from bot.usage_export import add_parser as add_usage

    add_usage(sub)  # imagine-bot usage (cost control)
    return parser


def _command(
    sub: Any, name: str, run: Callable[[argparse.Namespace], int], **options: Any
) -> argparse.ArgumentParser:
    """The sub-command `name` (`options`: argparse's `add_parser` keywords), run by
    `run(args)`, which returns the exit code."""
    command: argparse.ArgumentParser = sub.add_parser(name, **options)
    command.set_defaults(run=run)
    return command


def _add_serve(sub: Any) -> None:
    serve = _command(
        sub,
        "serve",
        _serve,
        help="run the Slack app (HTTP, or Socket Mode)",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--socket-mode",
        action="store_true",
        help="connect over Socket Mode with SLACK_APP_TOKEN instead of serving POST /slack/events",
    )
    serve.add_argument(
        "--no-worker",
        action="store_true",
        help="do not run the job engine here (run `imagine-bot worker` processes beside it)",
    )


def _add_worker(sub: Any) -> None:
    _command(
        sub,
        "worker",
        _worker,
        help="run the job engine alone (scale-out beside `serve --no-worker`)",
        description="Run queued generations: submit, poll, post to Slack. Needs "
        "SLACK_BOT_TOKEN (or the OAuth settings) and DATABASE_URL; no HTTP port.",
    )


def _add_demo(sub: Any) -> None:
    demo = _command(sub, "demo", _demo, help="run /imagine offline against a local Slack stand-in")
    demo.add_argument("prompt", nargs="+", help='the /imagine text, e.g. "a lighthouse --ar 3:2"')
    demo.add_argument("--out", default="imagine-demo", help="folder for the images")
    demo.add_argument(
        "--reply",
        action="append",
        default=[],
        metavar="TEXT",
        help='a reply in the thread refining the latest image (repeatable): "make it blue"',
    )
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    demo.add_argument(
        "--review",
        action="store_true",
        help="show team review: rules set in the settings modal, a refused self-approval, "
        "the reviewer approving from App Home, the gallery post",
    )


def _add_doctor(sub: Any) -> None:
    doctor = _command(
        sub,
        "doctor",
        _doctor,
        help="check settings, database, image store, Slack token and scopes, provider",
        description="Print a checklist; exit 0 only when every check passes.",
    )
    doctor.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="C…",
        help="also check that the bot is a member of this channel id (repeatable)",
    )


def _add_audit(sub: Any) -> None:
    audit = _command(
        sub,
        "audit",
        _audit,
        help="print the audit trail (review decisions, publishes, policy changes, refusals)",
    )
    audit.add_argument("--since", metavar="DATE", help="from this UTC date or ISO 8601 time")
    audit.add_argument("--channel", metavar="C…", help="only this channel id")
    audit.add_argument("--format", choices=("csv", "jsonl"), default="csv")


def main(argv: list[str] | None = None) -> int:
    """Entry point of `imagine-bot` / `python -m bot`; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except SettingsError as err:
        for line in str(err).splitlines():
            print(f"imagine-bot: configuration error: {line}", file=sys.stderr)
        return 2
    except StartupError as err:
        print(f"imagine-bot: cannot start: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
