"""Steps keep their items' lineage: which input item each output item came from (engine/lineage.py).

Revision ID: 0006_step_lineage
Revises: 0005_approval_tasks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_step_lineage"
down_revision = "0005_approval_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lineage", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_column("lineage")
