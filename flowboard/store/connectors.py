"""OpenAPI connectors as rows: the document (JSON), where it came from, the server address given at import.
Methods are synchronous (the store's style): async callers run them in a thread."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .tables import connectors_t


@dataclass(slots=True)
class ConnectorRecord:
    name: str
    title: str
    source: str
    server: str
    document: dict[str, Any]
    created: float
    updated: float


class ConnectorStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def all(self) -> list[ConnectorRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(connectors_t).order_by(connectors_t.c.title, connectors_t.c.name))
            return [ConnectorRecord(**row._mapping) for row in rows]

    def get(self, name: str) -> ConnectorRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(connectors_t).where(connectors_t.c.name == name)).first()
        return None if row is None else ConnectorRecord(**row._mapping)

    def put(self, name: str, title: str, document: dict[str, Any], source: str = "", server: str = "") -> None:
        """Create or replace the connector `name`."""
        now = time.time()
        values = {"title": title[:200], "document": document, "source": source, "server": server, "updated": now}
        with self.engine.begin() as conn:
            if conn.execute(connectors_t.update().where(connectors_t.c.name == name).values(**values)).rowcount == 0:
                conn.execute(connectors_t.insert().values(name=name, created=now, **values))

    def delete(self, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(connectors_t.delete().where(connectors_t.c.name == name)).rowcount)
