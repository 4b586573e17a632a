"""serverless endpoints (the gateway's per-machine configuration and hashed keys) and the cold
starts the gateways measured

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 14:30:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "serverless_endpoints",
        sa.Column("machine_id", _TEXT(length=64), sa.ForeignKey("machines.id"), primary_key=True),
        sa.Column("owner_id", _TEXT(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("port", _TEXT(length=16), nullable=False),
        sa.Column("readiness_path", _TEXT(length=1024), nullable=True),
        sa.Column("keep_alive_paths", sa.JSON(), nullable=False),
        sa.Column("idle_timeout_minutes", sa.Float(), nullable=False),
        sa.Column("max_pending_requests", sa.Integer(), nullable=False),
        sa.Column("resume_timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("via_ssh", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("key_hash", _TEXT(length=64), nullable=False),
        sa.Column("key_prefix", _TEXT(length=16), nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_request_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_serverless_endpoints_owner_id", "serverless_endpoints", ["owner_id"], unique=False
    )
    op.create_table(
        "serverless_cold_starts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("machine_id", _TEXT(length=64), sa.ForeignKey("machines.id"), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", _TEXT(length=16), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("resume_ms", sa.Float(), nullable=True),
        sa.Column("ready_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=True),
        sa.Column("reason", _TEXT(length=2000), nullable=True),
    )
    op.create_index(
        "ix_serverless_cold_starts_machine_id",
        "serverless_cold_starts",
        ["machine_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_serverless_cold_starts_machine_id", table_name="serverless_cold_starts")
    op.drop_table("serverless_cold_starts")
    op.drop_index("ix_serverless_endpoints_owner_id", table_name="serverless_endpoints")
    op.drop_table("serverless_endpoints")
