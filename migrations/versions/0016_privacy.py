"""pending_deletions: the bot's Slack messages and files to delete after forget-me (issue 12)

Revision ID: 0016_privacy
Revises: 0015_home
Create Date: 2026-11-25 17:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_privacy"
down_revision: str | None = "0015_home"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    """The database clock as UTC epoch seconds (same SQL as core.models.db_now)."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("extract(epoch from clock_timestamp())")
    return sa.text("((julianday('now') - 2440587.5) * 86400.0)")


def upgrade() -> None:
    op.create_table(
        "pending_deletions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.Float(), server_default=_now(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("done_at", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "team_id", "kind", "channel_id", "ref", name="uq_pending_deletions_ref"
        ),
    )
    op.create_index("ix_pending_deletions_team_id", "pending_deletions", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_deletions_team_id", table_name="pending_deletions")
    op.drop_table("pending_deletions")
