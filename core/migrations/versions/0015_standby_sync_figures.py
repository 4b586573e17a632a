"""the standby sync's newest figures on each machine, as its agent reports them in heartbeats
(last completed sync, its seconds and bytes sent, consecutive failures, the error), and the
sync health the machine workflow was last told (`standby_sync` goes on transitions only)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 09:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_COLUMNS = (
    "sync_last_success_at",
    "sync_seconds",
    "sync_bytes",
    "sync_failures",
    "sync_error",
    "sync_health",
)


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(
            sa.Column("sync_last_success_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.add_column(sa.Column("sync_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("sync_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("sync_failures", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("sync_error", _TEXT(length=2000), nullable=True))
        batch.add_column(sa.Column("sync_health", _TEXT(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)
