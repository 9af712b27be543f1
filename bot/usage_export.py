"""`imagine-bot usage [--month 2026-11] [--format csv|jsonl] [--out FILE]`: the month's usage
per workspace, user, channel, provider and model (columns: `core.usage.EXPORT_COLUMNS`),
written to standard output or a file. A row whose generations are all unpriced has an
empty `usd` (CSV) or null (JSONL), never 0."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time

from core import db, usage
from core.config import load_settings
from core.quotas import month_name


def render(rows: list[dict[str, object]], fmt: str) -> str:
    """The rows as CSV (header first) or JSON Lines."""
    if fmt == "jsonl":
        return "".join(json.dumps(row, sort_keys=False) + "\n" for row in rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=usage.EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


async def export(month: str, fmt: str) -> str:
    """The export of `month` from DATABASE_URL (migrated to head first). Raises ValueError
    for a malformed month."""
    settings = load_settings()
    await db.upgrade_to_head(settings.database_url)
    engine = db.create_engine(settings.database_url)
    try:
        rows = await usage.export_rows(db.sessionmaker(engine), month)
    finally:
        await engine.dispose()
    return render(rows, fmt)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register the `usage` subcommand."""
    parser = sub.add_parser(
        "usage",
        help="export a month's usage per user, channel, provider and model (CSV or JSONL)",
    )
    parser.add_argument("--month", default=None, help="YYYY-MM (default: this month, UTC)")
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--out", default=None, help="write to this file instead of stdout")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the export; exit 2 with one line for a malformed --month."""
    import asyncio

    month = args.month or month_name(time.time())
    try:
        text = asyncio.run(export(month, args.format))
    except ValueError:
        print(f"imagine-bot: --month {month!r} is not a month; use YYYY-MM", file=sys.stderr)
        return 2
    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0
