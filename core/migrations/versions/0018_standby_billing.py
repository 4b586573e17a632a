"""the standby in a machine's cost and savings: the `standby` periods' bookkeeping (as
hibernation's: the open period, the closed ones' seconds and the GPU cost they avoided, the GPU
price a standby hour does not bill) and the machine's cost ledger (what it billed up to
`billed_since`, and at what rate since); all null on rows before it (nothing counted yet)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_TIMES = ("standby_since", "billed_since")
_FLOATS = (
    "standby_seconds",
    "standby_cost_avoided",
    "standby_price_per_hour",
    "billed_usd",
    "billed_per_hour",
)


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        for name in _TIMES:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
        for name in _FLOATS:
            batch.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        for name in reversed(_TIMES + _FLOATS):
            batch.drop_column(name)
