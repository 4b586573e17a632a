"""offers reserved by provisions in flight, shared by every worker

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offer_reservations",
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("offer_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("reserved_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "offer_id"),
    )
    op.create_index(
        "ix_offer_reservations_reserved_until", "offer_reservations", ["reserved_until"]
    )


def downgrade() -> None:
    op.drop_index("ix_offer_reservations_reserved_until", table_name="offer_reservations")
    op.drop_table("offer_reservations")
