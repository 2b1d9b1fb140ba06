"""Approval tasks (one row per decision asked of people) and their decision log, append-only and hash-chained.

Revision ID: 0005_approval_tasks
Revises: 0004_table_trigger_state
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005_approval_tasks'
down_revision = '0004_table_trigger_state'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('approval_log',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('task_id', sa.String(length=32), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.Double(), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('approval_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_log_task_id'), ['task_id'], unique=False)

    op.create_table('approval_tasks',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('flow_id', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('item_index', sa.Integer(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('data', sa.Text(), nullable=True),
    sa.Column('outcomes', sa.Text(), nullable=False),
    sa.Column('assignees', sa.Text(), nullable=False),
    sa.Column('requester', sa.String(length=200), nullable=True),
    sa.Column('due', sa.Double(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decision', sa.String(length=64), nullable=True),
    sa.Column('responder', sa.String(length=200), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.Column('decided', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('approval_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approval_tasks_created'), ['created'], unique=False)
        batch_op.create_index(batch_op.f('ix_approval_tasks_flow_id'), ['flow_id'], unique=False)
        batch_op.create_index('ix_approval_tasks_run', ['run_id', 'node_id'], unique=False)
        batch_op.create_index('ix_approval_tasks_status_due', ['status', 'due'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('approval_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_tasks_status_due')
        batch_op.drop_index('ix_approval_tasks_run')
        batch_op.drop_index(batch_op.f('ix_approval_tasks_flow_id'))
        batch_op.drop_index(batch_op.f('ix_approval_tasks_created'))

    op.drop_table('approval_tasks')
    with op.batch_alter_table('approval_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approval_log_task_id'))

    op.drop_table('approval_log')
