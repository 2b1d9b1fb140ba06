"""Approval reminders: when an open task's assignees are reminded next (`remind_at`, indexed with the status for
the deadline timer).

Revision ID: 0009_approval_reminders
Revises: 0008_accounts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_approval_reminders'
down_revision = '0008_accounts'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('approval_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('remind_at', sa.Double(), nullable=True))
        batch_op.create_index('ix_approval_tasks_status_remind', ['status', 'remind_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('approval_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_approval_tasks_status_remind')
        batch_op.drop_column('remind_at')
