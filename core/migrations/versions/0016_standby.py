"""GPU -> CPU failover: owners' standby defaults and each machine's standby projection

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 10:00:00
"""

from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def _config_columns(*, server_defaults: bool) -> list[sa.Column[Any]]:
    """`StandbyConfig`'s fields but `enabled`, as both tables hold them."""
    true = sa.true() if server_defaults else None
    return [
        sa.Column("provider", _TEXT(length=16), nullable=False),
        sa.Column("machine_type", _TEXT(length=64), nullable=True),
        sa.Column("zone", _TEXT(length=64), nullable=True),
        sa.Column("spot", sa.Boolean(), nullable=False, server_default=true),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("max_price", sa.Float(), nullable=True),
        sa.Column("sync_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("excludes", sa.JSON(), nullable=False),
        sa.Column("auto_migrate", sa.Boolean(), nullable=False, server_default=true),
        sa.Column("idle_migrate_minutes", sa.Integer(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "standby_settings",
        sa.Column("owner_id", _TEXT(length=64), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("auto_standby", sa.Boolean(), server_default=sa.false(), nullable=False),
        *_config_columns(server_defaults=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "machine_standby",
        sa.Column("machine_id", _TEXT(length=64), sa.ForeignKey("machines.id"), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        *_config_columns(server_defaults=False),
        sa.Column("instance_id", _TEXT(length=128), nullable=True),
        sa.Column("instance_provider", _TEXT(length=32), nullable=True),
        sa.Column("instance_zone", _TEXT(length=64), nullable=True),
        sa.Column("instance_type", _TEXT(length=64), nullable=True),
        sa.Column("price_per_hour", sa.Float(), nullable=True),
        sa.Column("ssh_host", _TEXT(length=255), nullable=True),
        sa.Column("ssh_port", sa.Integer(), nullable=True),
        sa.Column("ssh_user", _TEXT(length=64), nullable=True),
        sa.Column("side", _TEXT(length=8), nullable=False),
        sa.Column("reason", _TEXT(length=16), nullable=True),
        sa.Column("health", _TEXT(length=16), nullable=False),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sync_error", _TEXT(length=2000), nullable=True),
        sa.Column("problem", _TEXT(length=2000), nullable=True),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("machine_standby")
    op.drop_table("standby_settings")
