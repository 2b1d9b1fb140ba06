"""Runs: the steps of a run that ended within one write, packed in one column (`runs.steps`) instead of a row each.

Revision ID: 0014_packed_steps
Revises: 0013_oauth_sign_ins
"""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0014_packed_steps"
down_revision = "0013_oauth_sign_ins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("steps", sa.Text(), nullable=True))


def downgrade() -> None:
    # Packed steps become rows again first, so going back loses nothing.
    bind = op.get_bind()
    runs = sa.table("runs", sa.column("id", sa.String), sa.column("steps", sa.Text))
    packed = ("node_id", "status", "attempt", "started", "finished", "inputs", "outputs", "error", "logs", "lineage")
    steps = sa.table("steps", *[sa.column(c) for c in ("run_id", *packed)])
    json = ("inputs", "outputs", "error", "logs", "lineage")  # stored as JSON text in the steps table
    for run_id, text in bind.execute(sa.select(runs.c.id, runs.c.steps).where(runs.c.steps.is_not(None))).all():
        values = []
        for entry in orjson.loads(text):
            row = dict(zip(packed, entry, strict=True))
            values.append({"run_id": run_id, **{k: None if v is None or k not in json else orjson.dumps(v).decode()
                                                  for k, v in row.items() if k in json},
                           **{k: v for k, v in row.items() if k not in json}})
        if values:
            bind.execute(steps.insert(), values)
    # Not batch mode: on SQLite that copies `runs` into a new table and drops the old one, whose foreign key
    # cascade deletes every step. ALTER TABLE ... DROP COLUMN: SQLite 3.35 and later, PostgreSQL.
    op.execute("ALTER TABLE runs DROP COLUMN steps")
