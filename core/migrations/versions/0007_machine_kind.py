"""machine kind (gpu or cpu): a CPU machine has no GPU name

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(
            sa.Column("kind", sa.String(length=8), nullable=False, server_default="gpu")
        )
        batch.alter_column("gpu_name", existing_type=sa.String(length=100), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.alter_column("gpu_name", existing_type=sa.String(length=100), nullable=False)
        batch.drop_column("kind")
