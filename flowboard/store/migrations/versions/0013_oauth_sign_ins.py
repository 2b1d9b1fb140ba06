"""OAuth2 sign-ins between Connect and the provider's redirect, kept in the database (any server finishes them).

Revision ID: 0013_oauth_sign_ins
Revises: 0012_blobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_oauth_sign_ins"
down_revision = "0012_blobs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_sign_ins",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("credential", sa.String(length=200), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("created", sa.Double(), nullable=False),
        sa.Column("expires", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("state"),
    )
    op.create_index(op.f("ix_oauth_sign_ins_expires"), "oauth_sign_ins", ["expires"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_oauth_sign_ins_expires"), table_name="oauth_sign_ins")
    op.drop_table("oauth_sign_ins")
