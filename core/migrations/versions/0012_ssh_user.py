"""the login user of each machine's instance (`ssh_user`: root on vast, the metadata's user on
GCE); rows written before it stay null, which reads as root

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("ssh_user", _TEXT(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        batch.drop_column("ssh_user")
