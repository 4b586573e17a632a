"""auto-hibernation: pre-hibernate hook, hibernation bookkeeping, wake/sleep schedule

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 10:00:00
"""

import sqlalchemy as sa
from alembic import op


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("pre_hibernate_command", sa.String(length=4000), nullable=True),
        sa.Column(
            "pre_hibernate_timeout_seconds", sa.Integer(), server_default="300", nullable=False
        ),
        sa.Column(
            "pre_hibernate_on_failure", sa.String(length=16), server_default="abort", nullable=False
        ),
        sa.Column("idle_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hibernated_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hibernated_seconds", sa.Float(), server_default="0", nullable=False),
        sa.Column("hibernated_cost_avoided", sa.Float(), server_default="0", nullable=False),
        sa.Column("hibernated_price_per_hour", sa.Float(), nullable=True),
        sa.Column("snapshot_id", sa.String(length=64), nullable=True),
        sa.Column("wake_time", sa.String(length=5), nullable=True),
        sa.Column("sleep_time", sa.String(length=5), nullable=True),
        sa.Column("schedule_timezone", sa.String(length=64), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("machines", schema=None) as batch_op:
        for column in _columns():
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("machines", schema=None) as batch_op:
        for column in reversed(_columns()):
            batch_op.drop_column(column.name)
