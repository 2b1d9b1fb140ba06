"""What an outside database holds, for the editor's pickers: its tables, and a table's columns (the SQL node).

The database is the one a node's config names: its `url`, or the `url` field of its `credential`. The answer is names
only; an error is a plain sentence that never repeats the URL's password.

Also how an engine is let go of (`dispose`), for the SQL nodes' engines and Flowboard's own database alike.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

CONNECT_TIMEOUT = 5  # seconds: a picker must not hang on a database that does not answer


class DatabaseUnreadable(ValueError):
    """The database could not be read; the message says why, in words, without secrets."""


def database_of(config: dict[str, Any], credential: Any) -> str:
    """The URL a node's config names. `credential(name)` gives a credential's fields (or None)."""
    url = config.get("url")
    if isinstance(url, str) and url.strip() and "{{" not in url:
        return url.strip()
    name = config.get("credential")
    if isinstance(name, str) and name:
        fields = credential(name) or {}
        value = fields.get("url")
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise DatabaseUnreadable(f"the credential {name!r} has no database URL (its field `url`)")
    raise DatabaseUnreadable("choose the database first: a credential (or a URL) above")


def names_in(url: str, table: str | None = None) -> list[str]:
    """The database's tables (with views), or the columns of `table` ("schema.table" for another schema)."""
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise DatabaseUnreadable("the database URL is not valid") from None
    shown = parsed.render_as_string(hide_password=True)
    args: dict[str, Any] = {}
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "mysql", "mariadb"):
        args["connect_timeout"] = CONNECT_TIMEOUT
    elif backend == "sqlite":  # read only: a mistyped path must not make a new empty database file
        args["timeout"] = CONNECT_TIMEOUT
        if parsed.database and not parsed.database.startswith("file:"):
            parsed = parsed.set(database=f"file:{parsed.database}").update_query_dict({"mode": "ro", "uri": "true"})
    try:
        engine = sqlalchemy.create_engine(parsed, poolclass=NullPool, connect_args=args)
    except Exception as exc:  # unknown driver, missing package
        raise DatabaseUnreadable(f"cannot use {shown}: {_short(exc)}") from None
    try:
        inspector = sqlalchemy.inspect(engine)
        if table is None:
            return sorted(inspector.get_table_names()) + sorted(inspector.get_view_names())
        schema, _, plain = table.rpartition(".")
        return [str(c["name"]) for c in inspector.get_columns(plain, schema=schema or None)]
    except sqlalchemy.exc.NoSuchTableError:
        raise DatabaseUnreadable(f"the database has no table {table!r}") from None
    except Exception as exc:
        raise DatabaseUnreadable(f"could not read {shown}: {_short(exc)}") from None
    finally:
        engine.dispose()


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().split("\n", 1)[0] or type(orig).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def dispose(engine: sqlalchemy.Engine) -> None:
    """Close every connection of `engine`: those idle in its pool now, and each one still in use (a query running in
    a thread while the app stops) as soon as it is given back. SQLAlchemy's own `dispose()` leaves those to the garbage
    collector, which closes them at some later moment, and psycopg warns of each one then. The engine stays usable:
    it opens new connections."""
    old = engine.pool
    engine.dispose()  # the engine gets a new pool; the old one closes what it holds
    sqlalchemy.event.listen(old, "checkin", _close_given_back)
    old.dispose()  # any given back before the listener was there


def _close_given_back(_dbapi_connection: Any, record: Any) -> None:
    record.invalidate()  # closes the connection; the pool it goes back to is never used again
