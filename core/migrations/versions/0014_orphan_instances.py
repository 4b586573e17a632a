"""orphan instances the fleet reconciler found: when each was first seen, and destroyed

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 04:30:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "orphan_instances",
        sa.Column("provider", _TEXT(length=32), primary_key=True),
        sa.Column("instance_id", _TEXT(length=128), primary_key=True),
        sa.Column("label", _TEXT(length=200), nullable=False),
        sa.Column("machine_id", _TEXT(length=64), nullable=True),
        sa.Column("reason", _TEXT(length=500), nullable=False),
        sa.Column("price_per_hour", sa.Float(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("orphan_instances")
