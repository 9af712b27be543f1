"""generations.seed as BIGINT: seeds go up to 2**32 - 1, past PostgreSQL's INTEGER

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 10:00:00.000000

SQLite stores any integer in an INTEGER column, so this changes nothing there; on
PostgreSQL an INTEGER is 32-bit signed and refuses seeds above 2147483647.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.alter_column(
            "seed", existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False
        )


def downgrade() -> None:
    # Seeds above 2**31 - 1 do not fit back into a 32-bit column on PostgreSQL: fold them
    # into range (the image for such a seed is then no longer reproducible).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE generations SET seed = seed % 2147483648")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.alter_column(
            "seed", existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=False
        )
