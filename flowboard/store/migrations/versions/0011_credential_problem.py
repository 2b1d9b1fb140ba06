"""Credentials: a problem to show on the credentials page (an OAuth2 sign-in whose renewal failed).

Revision ID: 0011_credential_problem
Revises: 0010_connectors
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_credential_problem"
down_revision = "0010_connectors"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("problem", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.drop_column("problem")
