"""serverless idle timeout in fractional minutes (the API takes any number in 5-60; tests lower
the floor below a minute)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 15:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("serverless_endpoints") as batch:
        batch.alter_column(
            "idle_timeout_minutes", existing_type=sa.Integer(), type_=sa.Float(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("serverless_endpoints") as batch:
        batch.alter_column(
            "idle_timeout_minutes", existing_type=sa.Float(), type_=sa.Integer(), nullable=False
        )
