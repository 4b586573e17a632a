"""the installation's id, on every instance it creates (cloud labels); a machine's
machine-type catalogue choice (GCP machine type, zone, Spot)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 03:30:00
"""

import secrets

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    table = op.create_table(
        "installation",
        sa.Column("id", _TEXT(length=32), primary_key=True),
    )
    # A letter first: valid as a GCE label value and inside an instance name.
    op.bulk_insert(table, [{"id": "i" + secrets.token_hex(4)}])
    with op.batch_alter_table("machines") as batch:
        batch.add_column(sa.Column("machine_type", _TEXT(length=64), nullable=True))
        batch.add_column(sa.Column("zone", _TEXT(length=64), nullable=True))
        batch.add_column(
            sa.Column("spot", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("machines") as batch:
        for column in ("spot", "zone", "machine_type"):
            batch.drop_column(column)
    op.drop_table("installation")
