"""command_inbox: new-session requests stored before their ack, started after (issue 13)

Revision ID: 0018_command_inbox
Revises: 0017_home_seen
Create Date: 2026-12-07 21:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_command_inbox"
down_revision: str | None = "0017_home_seen"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "command_inbox",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("token", name="uq_command_inbox_token"),
    )


def downgrade() -> None:
    op.drop_table("command_inbox")
