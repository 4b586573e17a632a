"""per-owner snapshot retention: overrides of the global keep_last / deleted_retention_days

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_retention",
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("keep_last", sa.Integer(), nullable=True),
        sa.Column("deleted_retention_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("owner_id"),
    )


def downgrade() -> None:
    op.drop_table("snapshot_retention")
