"""waits: runs parked until a deadline or a resume call

Revision ID: 0007_waits
Revises: 0006_step_lineage
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_waits'
down_revision = '0006_step_lineage'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('waits',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('resume_at', sa.Double(), nullable=True),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('resumed', sa.Double(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('who', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'node_id')
    )
    with op.batch_alter_table('waits', schema=None) as batch_op:
        batch_op.create_index('ix_waits_due', ['resumed', 'resume_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('waits', schema=None) as batch_op:
        batch_op.drop_index('ix_waits_due')

    op.drop_table('waits')
