"""Table-change triggers: where each one is in the change log.

Revision ID: 0004_table_trigger_state
Revises: 0003_step_logs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_table_trigger_state"
down_revision = "0003_step_logs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('table_trigger_state',
    sa.Column('flow_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('last_change', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('flow_id', 'node_id')
    )


def downgrade() -> None:
    op.drop_table('table_trigger_state')
