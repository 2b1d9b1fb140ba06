"""Schema migrations: every schema change is an Alembic revision in `migrations/versions/`, and a data folder or
database of any earlier release upgrades itself when a Store opens it.

What `upgrade(engine)` does, by what it finds:
- the newest revision recorded (`alembic_version` holds `HEAD`): nothing, after one small query (every start, every
  test store; Alembic itself is not even imported);
- no Flowboard table at all: a new database. The tables are created from the models in one go and stamped `HEAD`
  (Alembic's own advice for new databases: faster than replaying every revision). A test checks that replaying
  the revisions gives exactly the models' schema, so both roads lead to the same tables;
- Flowboard's tables but no `alembic_version`: a database of 0.1.0, the last release before Alembic. It is stamped
  with the baseline revision and upgraded from there;
- an older revision: upgraded to `HEAD`, every step in one transaction (PostgreSQL and SQLite both have
  transactional DDL), so a failed upgrade leaves the database as it was.
A newer revision than this code knows (a downgrade of Flowboard) is refused with a message rather than guessed at.

Two processes starting on one database at once take turns: PostgreSQL through an advisory lock, SQLite through its
write lock (`BEGIN IMMEDIATE`).

Writing a revision: change `tables.py`, then `python -m flowboard.store.migrate new "what changed"` writes a
revision file compared against the models (check it by eye; keep plain SQLAlchemy types in it, never model classes),
and set `HEAD` below to its id. The tests fail while `HEAD` is not Alembic's head or the revisions and the models
disagree.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .db import write_transaction

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0014_packed_steps"  # the newest revision in migrations/versions/ (a test checks it is Alembic's head)
BASELINE = "0001_baseline"  # the schema of 0.1.0, which had no alembic_version table
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 0x466C6F77  # PostgreSQL advisory lock key: "Flow"

version_t = sa.Table("alembic_version", sa.MetaData(),
                     sa.Column("version_num", sa.String(32), primary_key=True))


class SchemaTooNew(RuntimeError):
    """The database was upgraded by a newer Flowboard than this one."""


def upgrade(engine: sa.Engine) -> None:
    """Bring the database to `HEAD` (see the module docstring). Processes starting at once take turns; on SQLite one
    that waits longer than the busy timeout for another's upgrade tries again (for up to a minute)."""
    with engine.connect() as conn:
        if _current(conn) == HEAD:
            return
    deadline = time.monotonic() + 60
    while True:
        try:
            _upgrade(engine)
            return
        except sa.exc.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _upgrade(engine: sa.Engine) -> None:
    with write_transaction(engine, pg_lock=_LOCK_ID) as conn:
        current = _current(conn)  # again, under the lock: another process may have done it meanwhile
        if current == HEAD:
            return
        if current is None:
            if not _has_flowboard_tables(conn):
                _create_new(conn)
                return
            _stamp(conn, BASELINE)  # 0.1.0
            current = BASELINE
        _run_alembic(conn, current)


def _current(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.select(version_t.c.version_num)).scalar()


def _has_flowboard_tables(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table("flows")


def _create_new(conn: sa.Connection) -> None:
    from .tables import metadata

    metadata.create_all(conn)
    _stamp(conn, HEAD)


def _stamp(conn: sa.Connection, revision: str) -> None:
    version_t.create(conn, checkfirst=True)
    conn.execute(version_t.delete())
    conn.execute(version_t.insert().values(version_num=revision))


def _config(conn: sa.Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(rev)s")  # rev ids are already 0002_what_changed
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


def _run_alembic(conn: sa.Connection, current: str) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _config(conn)
    known = {rev.revision for rev in ScriptDirectory.from_config(cfg).walk_revisions()}
    if current not in known:
        raise SchemaTooNew(f"The database was upgraded by a newer Flowboard (its schema revision {current!r} is "
                           "unknown here). Install that version again, or point Flowboard at another database.")
    command.upgrade(cfg, "head")


def alembic_head() -> str | None:
    """Alembic's own idea of the newest revision (for the tests and `new`)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def _new_revision(message: str) -> None:
    """Write a revision compared against the models, on a scratch SQLite database upgraded to HEAD."""
    import re
    import tempfile

    from alembic import command

    with tempfile.TemporaryDirectory() as tmp:
        engine = sa.create_engine(f"sqlite:///{tmp}/scratch.db")
        with engine.begin() as conn:
            cfg = _config(conn)
            command.upgrade(cfg, "head")
            number = int(re.match(r"\d+", HEAD).group()) + 1  # type: ignore[union-attr]
            slug = re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")[:40]
            script = command.revision(cfg, message=message, autogenerate=True, rev_id=f"{number:04d}_{slug}")
        engine.dispose()
    for one in script if isinstance(script, list) else [script]:
        if one is not None:
            _plain_types(Path(one.path))
    print("Now check the new file in flowboard/store/migrations/versions/ and set HEAD in flowboard/store/migrate.py.")


def _plain_types(path: Path) -> None:
    """A revision must not depend on today's model classes: write their SQL types as plain SQLAlchemy ones."""
    import re

    text = path.read_text()
    text = re.sub(r"sqlmodel\.sql\.sqltypes\.AutoString\(", "sa.String(", text)
    text = text.replace("flowboard.store.tables.JSONText()", "sa.Text()")
    text = re.sub(r"\n *# ### (commands auto generated by Alembic - please adjust!|end Alembic commands) ###", "", text)
    text = re.sub(r"Created: .*\n", "", text)
    path.write_text(text)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "new":
        _new_revision(sys.argv[2])
    else:
        print('usage: python -m flowboard.store.migrate new "what changed"')
        sys.exit(2)
