"""Files in items: their bytes in the database when it is PostgreSQL.

Revision ID: 0012_blobs
Revises: 0011_credential_problem
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_blobs"
down_revision = "0011_credential_problem"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("blobs")
