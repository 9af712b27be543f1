"""gallery_posts: attempts, next_attempt_at, last_error (retried gallery posts, issue 10)

Revision ID: 0015_home
Revises: 0014
Create Date: 2026-11-25 17:20:00.000000

A gallery post that Slack refused (not_in_channel, channel_not_found, rate limits, the
network) goes back to "pending" with a due time and is tried again with backoff.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_home"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("gallery_posts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_attempt_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("last_error", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gallery_posts", schema=None) as batch_op:
        batch_op.drop_column("last_error")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("attempts")
