"""OpenAPI connectors: each imported document, where it came from and its server address.

Revision ID: 0010_connectors
Revises: 0009_approval_reminders
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_connectors'
down_revision = '0009_approval_reminders'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('connectors',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('server', sa.Text(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('created', sa.Double(), nullable=False),
    sa.Column('updated', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('connectors')
