"""cost control: generation_costs, channel_quotas, quota_locks, budget_alerts (issue 11)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    """The database clock as UTC epoch seconds (same SQL as core.models.db_now)."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("extract(epoch from clock_timestamp())")
    return sa.text("((julianday('now') - 2440587.5) * 86400.0)")


def upgrade() -> None:
    now = _now()
    op.create_table(
        "generation_costs",
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("estimated_usd", sa.Float(), nullable=True),
        sa.Column("request_key", sa.String(length=64), nullable=False),
        sa.Column("seed_fixed", sa.Boolean(), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("reused_from_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["generation_id"], ["generations.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reused_from_id"], ["generations.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("generation_id"),
    )
    for column in ("team_id", "request_key", "cache_key", "created_at"):
        op.create_index(f"ix_generation_costs_{column}", "generation_costs", [column])
    op.create_table(
        "channel_quotas",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("user_daily_images", sa.Integer(), nullable=True),
        sa.Column("monthly_usd", sa.Float(), nullable=True),
        sa.Column("set_by", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.Float(), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("team_id", "channel_id"),
    )
    op.create_table(
        "quota_locks",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("touched_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("team_id"),
    )
    op.create_table(
        "budget_alerts",
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("limit_usd", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), server_default=now, nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("team_id", "month"),
    )


def downgrade() -> None:
    op.drop_table("budget_alerts")
    op.drop_table("quota_locks")
    op.drop_table("channel_quotas")
    for column in ("team_id", "request_key", "cache_key", "created_at"):
        op.drop_index(f"ix_generation_costs_{column}", table_name="generation_costs")
    op.drop_table("generation_costs")
