"""Where the database is and how to connect to it: SQLite in the data dir by default, PostgreSQL by URL.

SQLite runs in WAL mode with `synchronous=NORMAL`: a commit survives the process being killed (SIGKILL, OOM, a crash),
because the WAL is in the OS page cache; a power loss or kernel crash may lose the last few commits (never corrupt the
file). That is the usual trade for a local tool; set `FLOWBOARD_DATABASE_URL` to PostgreSQL for more.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

SQLITE_PRAGMAS = (
    "PRAGMA busy_timeout=5000",  # first: switching to WAL below waits for another process's lock instead of failing
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
)


def resolve_data_dir(path: Path | str | None = None) -> Path:
    """The data dir: `path`, else env `FLOWBOARD_DATA_DIR`, else `~/.flowboard`. Created if missing, and kept
    owner-only (0700): it holds every run's data and the key that decrypts the credentials."""
    chosen = Path(path or os.environ.get("FLOWBOARD_DATA_DIR") or Path.home() / ".flowboard").expanduser()
    chosen.mkdir(mode=0o700, parents=True, exist_ok=True)
    owner_only(chosen, 0o700)
    return chosen


def owner_only(path: Path, mode: int) -> None:
    """Take group and other permissions off `path` if it has any and is ours (a folder made under a loose umask, a
    database from an older version). Never fails: a file we may not change is left as it is."""
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(mode)
    except OSError:
        pass


def _private_sqlite_file(database: str) -> None:
    """Create the database file owner-only (0600) before SQLite does (it would use the umask, usually 0644). SQLite
    gives its -wal and -shm files the database file's permissions; ones left by an older version are tightened."""
    path = Path(database)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError:
        return  # SQLite will say what is wrong with the path
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists():
            owner_only(file, 0o600)


def database_url(data_dir: Path | str | None = None) -> str:
    """Env `FLOWBOARD_DATABASE_URL` if set, else SQLite at `<data dir>/flowboard.db`."""
    url = os.environ.get("FLOWBOARD_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{resolve_data_dir(data_dir) / 'flowboard.db'}"


def normalize_url(url: str) -> str:
    """PostgreSQL goes through psycopg 3: `postgresql://` and `postgres://` become `postgresql+psycopg://`."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, *, connect_args: dict[str, Any] | None = None, **kwargs: Any) -> sa.Engine:
    """A SQLAlchemy engine for `url`, tuned for Flowboard (see the module docstring for SQLite's durability)."""
    url = normalize_url(url)
    args = dict(connect_args or {})
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        args.setdefault("check_same_thread", False)
        database = sa.make_url(url).database
        if not database or database == ":memory:":  # one shared connection, or every checkout is a new empty db
            kwargs.setdefault("poolclass", StaticPool)
        elif not database.startswith("file:"):
            _private_sqlite_file(database)
        engine = sa.create_engine(url, connect_args=args, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(url, connect_args=args, **kwargs)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    """The pragmas of every new connection. Switching to WAL can be refused at once with 'database is locked' while
    another process opening the same new database switches it (SQLite does not always call the busy handler there):
    that pragma is tried again for up to 30 s."""
    cursor = dbapi_conn.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            deadline = time.monotonic() + 30
            while True:
                try:
                    cursor.execute(pragma)
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
    finally:
        cursor.close()


def init_db(engine: sa.Engine) -> None:
    """Create a new database's tables, or upgrade an existing one to this release's schema (see `migrate`)."""
    from .migrate import upgrade

    upgrade(engine)


@contextlib.contextmanager
def write_transaction(engine: sa.Engine, *, pg_lock: int | None = None) -> Iterator[sa.Connection]:
    """One transaction that holds the write lock from its first statement, committed at the end and rolled back on
    any exception. SQLite: `BEGIN IMMEDIATE`, so two writers never both read and then fail to write. PostgreSQL: the
    advisory lock `pg_lock` when given, so writers of one kind take turns (row locks otherwise)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif pg_lock is not None and conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": pg_lock})
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        if conn.in_transaction():
            conn.commit()
