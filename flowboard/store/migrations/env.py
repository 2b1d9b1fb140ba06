"""Alembic's environment for Flowboard: always online, on the connection `flowboard.store.migrate` hands over.

SQLite alters tables by copying them (`render_as_batch`), so one revision file serves SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from flowboard.store import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
