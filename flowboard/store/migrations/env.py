"""Alembic's environment for Flowboard: always online, on the connection `flowboard.store.migrate` hands over.

SQLite alters tables by copying them (`render_as_batch`), so one revision file serves SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from alembic import context

from flowboard.store.tables import metadata

connection = context.config.attributes["connection"]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Data tables' own SQL tables (`dt_<id>`) hold users' rows, not Flowboard's schema: migrations never see them."""
    return not (type_ == "table" and name is not None and name.startswith("dt_"))


context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True, include_name=include_name)
with context.begin_transaction():
    context.run_migrations()
