"""Files' bytes in the database (PostgreSQL): the same store as `flowboard.blobs.BlobStore`, shared by every server
and worker of one database, where a data folder is each machine's own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..blobs import FILE_KEY, checked_sha, guess_mime, is_file_ref
from .tables import blobs_t


class DatabaseBlobs:
    """Content-addressed bytes in the `blobs` table (PostgreSQL)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    def put(self, data: bytes, name: str, mime_type: str | None = None) -> dict[str, Any]:
        from sqlalchemy.dialects.postgresql import insert  # only here: a server on SQLite never loads the dialect

        sha = checked_sha(data, name)
        now = time.time()
        with self.engine.begin() as conn:
            # made again: only younger (the sweep spares it), the bytes are the same
            conn.execute(insert(blobs_t).values(id=sha, data=data, size=len(data), created=now)
                         .on_conflict_do_update(index_elements=[blobs_t.c.id], set_={"created": now}))
        return {FILE_KEY: sha, "name": name, "mime_type": mime_type or guess_mime(name), "size": len(data)}

    def get(self, ref: dict[str, Any]) -> bytes:
        if not is_file_ref(ref):
            raise ValueError("this is not a file: a file is an item field like {\"$file\": ..., \"name\": ...}")
        with self.engine.connect() as conn:
            data = conn.execute(sa.select(blobs_t.c.data).where(blobs_t.c.id == ref[FILE_KEY])).scalar()
        if data is None:
            raise FileNotFoundError(f"the file {ref.get('name')!r} is no longer kept (its run was deleted)")
        return bytes(data)

    def local_path(self, sha: str) -> Path | None:
        return None  # the bytes are in the database: read them with `get`

    def exists(self, sha: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(blobs_t.c.id).where(blobs_t.c.id == sha)).first() is not None

    def all(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(blobs_t.c.id)).scalars())

    def age(self, sha: str) -> float:
        with self.engine.connect() as conn:
            created = conn.execute(sa.select(blobs_t.c.created).where(blobs_t.c.id == sha)).scalar()
        return 0.0 if created is None else time.time() - created

    def delete(self, sha: str, older_than: float | None = None) -> None:
        """Delete it; with `older_than`, only while it is at least that many seconds old, checked in the statement:
        a server or worker that makes the same file again meanwhile keeps it."""
        doomed = blobs_t.delete().where(blobs_t.c.id == sha)
        if older_than is not None:
            doomed = doomed.where(blobs_t.c.created <= time.time() - older_than)
        with self.engine.begin() as conn:
            conn.execute(doomed)
