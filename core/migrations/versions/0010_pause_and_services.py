"""pause/resume bookkeeping, the paused machine's hibernate limit, schedules that pause, and
machines that run a service (declared ports, env names, on-start, public port addresses)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 17:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("paused_since", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("paused_seconds", sa.Float(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("paused_cost_avoided", sa.Float(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("paused_price_per_hour", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("paused_disk_cost", sa.Float(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("disk_price_per_hour", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column(
                "hibernate_paused_after_minutes",
                sa.Integer(),
                server_default="1440",
                nullable=False,
            )
        )
        batch.add_column(
            sa.Column(
                "schedule_action", _TEXT(length=16), server_default="hibernate", nullable=False
            )
        )
        batch.add_column(sa.Column("declared_ports", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("env_names", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("on_start", _TEXT(length=8192), nullable=True))
        batch.add_column(sa.Column("ports", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        for name in (
            "ports",
            "on_start",
            "env_names",
            "declared_ports",
            "schedule_action",
            "hibernate_paused_after_minutes",
            "disk_price_per_hour",
            "paused_disk_cost",
            "paused_price_per_hour",
            "paused_cost_avoided",
            "paused_seconds",
            "paused_since",
        ):
            batch.drop_column(name)
