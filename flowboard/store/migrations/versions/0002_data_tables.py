"""Data tables: their definitions, and the outbox of row changes that the table-change trigger reads.

Revision ID: 0002_data_tables
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_data_tables"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_tables',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('storage', sa.String(length=64), nullable=False),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('table_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('table_id', sa.String(length=32), nullable=False),
    sa.Column('row_id', sa.BigInteger(), nullable=False),
    sa.Column('op', sa.String(length=8), nullable=False),
    sa.Column('old', sa.Text(), nullable=True),
    sa.Column('new', sa.Text(), nullable=True),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('table_changes', schema=None) as batch_op:
        batch_op.create_index('ix_table_changes_table', ['table_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('table_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_table_changes_table')

    op.drop_table('table_changes')
    op.drop_table('data_tables')
