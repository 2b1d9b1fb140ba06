"""Flowboard 0.1.0's schema: the tables as `create_all` made them before Alembic.

A database from 0.1.0 has these tables and no `alembic_version`; `flowboard.store.migrate` stamps it with this
revision and upgrades it from here.

Revision ID: 0001_baseline
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('last_used', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('hash')
    )
    op.create_table('credentials',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('flows',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('runs',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('flow_id', sa.String(length=64), nullable=False),
    sa.Column('flow_version', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('trigger', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=32), nullable=True),
    sa.Column('input', sa.Text(), nullable=True),
    sa.Column('output', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('started', sa.Double(), nullable=True),
    sa.Column('finished', sa.Double(), nullable=True),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('heartbeat', sa.Double(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_runs_created'), ['created'], unique=False)
        batch_op.create_index('ix_runs_flow_created', ['flow_id', 'created'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)

    op.create_table('schedule_fires',
    sa.Column('flow_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('fire_time', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('claimed', sa.Double(), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.Column('missed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('flow_id', 'node_id', 'fire_time')
    )
    with op.batch_alter_table('schedule_fires', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_fires_claimed'), ['claimed'], unique=False)

    op.create_table('schedule_state',
    sa.Column('flow_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('last_fire', sa.BigInteger(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('flow_id', 'node_id')
    )
    op.create_table('settings',
    sa.Column('key', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('flow_versions',
    sa.Column('flow_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['flow_id'], ['flows.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('flow_id', 'version')
    )
    op.create_table('steps',
    sa.Column('run_id', sa.String(length=64), nullable=False),
    sa.Column('node_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started', sa.Double(), nullable=False),
    sa.Column('finished', sa.Double(), nullable=False),
    sa.Column('inputs', sa.Text(), nullable=True),
    sa.Column('outputs', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'node_id')
    )


def downgrade() -> None:
    op.drop_table('steps')
    op.drop_table('flow_versions')
    op.drop_table('settings')
    op.drop_table('schedule_state')
    with op.batch_alter_table('schedule_fires', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_fires_claimed'))

    op.drop_table('schedule_fires')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_status'))
        batch_op.drop_index('ix_runs_flow_created')
        batch_op.drop_index(batch_op.f('ix_runs_created'))

    op.drop_table('runs')
    op.drop_table('flows')
    op.drop_table('credentials')
    op.drop_table('api_keys')
