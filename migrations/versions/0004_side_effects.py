"""side_effects: every Slack side effect recorded before it is made (exactly once)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now() -> sa.TextClause:
    """The database clock as UTC epoch seconds (same SQL as core.models.db_now)."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("extract(epoch from clock_timestamp())")
    return sa.text("((julianday('now') - 2440587.5) * 86400.0)")


def upgrade() -> None:
    op.create_table(
        "side_effects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation_id", sa.Integer(), nullable=False),
        sa.Column("effect", sa.String(length=16), nullable=False),
        sa.Column("attempted_at", sa.Float(), server_default=_now(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("file_ids", sa.JSON(), nullable=True),
        sa.Column("ref", sa.String(length=32), nullable=True),
        sa.Column("done_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["generation_id"], ["generations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("generation_id", "effect", name="uq_side_effects_effect"),
    )


def downgrade() -> None:
    op.drop_table("side_effects")
