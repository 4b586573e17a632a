"""interruptible (bid) machines on vast: `interruptible` (false on every row before it) and
`bid_price` (null: each offer's minimum bid)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(
            sa.Column("interruptible", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("bid_price", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("bid_price")
        batch.drop_column("interruptible")
