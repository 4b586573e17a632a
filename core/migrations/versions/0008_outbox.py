"""the machine workflow's outbox: up to which record number a machine's row is written

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(
            sa.Column("records_applied", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("records_applied")
