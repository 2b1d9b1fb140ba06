"""Steps keep the lines their node printed (the Code node's print() output).

Revision ID: 0003_step_logs
Revises: 0002_data_tables
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_step_logs"
down_revision = "0002_data_tables"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("logs", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("logs")
