"""`imagine-bot audit [--since DATE] [--channel C…] [--format csv|jsonl]`: the team review
audit trail (approvals, change requests, publishes, policy changes) from the database.

Each row: when (ISO 8601, UTC), team, channel, user, action, generation and image ids, the
action's details and the policy in force (both as JSON).
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

from core import db, review
from core.config import Settings
from core.db.review import AuditEntry

FIELDS = (
    "at",
    "team_id",
    "channel_id",
    "user_id",
    "action",
    "generation_id",
    "image_id",
    "detail",
    "policy",
)


class AuditArgumentError(ValueError):
    """A malformed `--since`; the message says what is accepted."""


def parse_since(text: str | None) -> float | None:
    """`--since` as UTC epoch seconds: a date (2026-11-27, midnight UTC) or an ISO 8601
    time (2026-11-27T09:30, UTC unless it names an offset). Raises AuditArgumentError."""
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise AuditArgumentError(
            f"--since {text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _row(entry: AuditEntry) -> dict[str, object]:
    return {
        "at": datetime.fromtimestamp(entry.at, UTC).isoformat(timespec="seconds"),
        "team_id": entry.team_id,
        "channel_id": entry.channel_id,
        "user_id": entry.user_id,
        "action": entry.action,
        "generation_id": entry.generation_id,
        "image_id": entry.image_id,
        "detail": entry.detail,
        "policy": entry.policy,
    }


def render(entries: list[AuditEntry], fmt: str) -> str:
    """The entries as CSV (header row; JSON in the detail and policy columns) or JSONL."""
    if fmt == "jsonl":
        return "".join(json.dumps(_row(e), sort_keys=True) + "\n" for e in entries)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for entry in entries:
        row = _row(entry)
        row["detail"] = json.dumps(row["detail"], sort_keys=True)
        row["policy"] = json.dumps(row["policy"], sort_keys=True)
        writer.writerow(row)
    return out.getvalue()


async def export(settings: Settings, since: float | None, channel: str | None, fmt: str) -> str:
    """Read the audit trail (migrating SQLite first, so a fresh install prints a header)."""
    await db.upgrade_to_head(settings.database_url)
    engine = db.create_engine(settings.database_url)
    try:
        entries = await review.audit_export(
            db.sessionmaker(engine), since=since, channel_id=channel
        )
    finally:
        await engine.dispose()
    return render(entries, fmt)
