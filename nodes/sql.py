"""SQL query: run a statement against SQLite, PostgreSQL or MySQL/MariaDB, values always bound as parameters."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import math
import threading
import uuid
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, Self

import sqlalchemy
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url

from flowboard.sdk import Category, Context, Inputs, Item, NodeError, NodeType, Outputs

_URL_HELP = "e.g. sqlite:///data.db, postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"


class SqlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description=f"SQLAlchemy database URL ({_URL_HELP}). A URL with a password "
                            "belongs in a credential instead.", json_schema_extra={"widget": "text",
                                                                                  "placeholder": "sqlite:///data.db"})
    credential: str | None = Field(None, description="Credential holding the database URL in its field `url` "
                                   "(use instead of `url`).", json_schema_extra={"widget": "credential",
                                                                                 "credential_types": ["database"]})
    query: str = Field(min_length=1, description="One SQL statement. Write values as named parameters (`:email`) "
                       "and set them under `parameters`; they are sent apart from the SQL, so they can never change "
                       "it. For a PostgreSQL cast write CAST(:x AS int), not :x::int.",
                       json_schema_extra={"widget": "code", "language": "sql", "expressions": False,
                                          "instead": "put values in `parameters` as `:name`, e.g. {{ item.email }} "
                                                     "there"})
    parameters: dict[str, Any] = Field(default_factory=dict, description="Value of each `:name` in the query; "
                                       "expressions are evaluated per item, e.g. `{{ item.email }}`.",
                                       json_schema_extra={"widget": "key_value"})
    mode: Literal["per_item", "once"] = Field(
        "per_item", title="Run the query", description="For each item: all in one transaction, so one failure undoes "
        "every item. Once: with the first item's parameters, e.g. to create a table.",
        json_schema_extra={"widget": "select", "enum_labels": ["for each item", "once"]})
    output: Literal["rows", "first_row", "summary"] = Field(
        "rows", title="Give back", description="What comes out: the rows the query returns, only the first row, or "
        "how many rows it changed. A query that returns no rows always gives how many rows it changed.",
        json_schema_extra={"widget": "select", "enum_labels": ["every row", "the first row",
                                                               "how many rows changed"]})

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str | None) -> str | None:
        if value is None or "{{" in value or "{%" in value:
            return value
        check_url(value.strip())
        return value.strip()

    @model_validator(mode="after")
    def _url_or_credential(self) -> Self:
        if not self.url and not self.credential:
            raise ValueError("set `url` (a database URL) or `credential` (a credential holding one)")
        if self.url and self.credential:
            raise ValueError("set either `url` or `credential`, not both")
        if "{{" not in self.query and "{%" not in self.query:
            used = bind_names(self.query)
            missing = [name for name in used if name not in self.parameters]
            if missing:
                raise ValueError(f"the query uses :{missing[0]}, but `parameters` has no value for it")
            unused = [name for name in self.parameters if name not in used]
            if unused:
                have = ", ".join(f":{n}" for n in used) or "none"
                raise ValueError(f"parameters.{unused[0]} is not used by the query (its parameters: {have})")
        return self


def check_url(value: str) -> None:
    """Check a database URL; a ValueError names what is wrong without repeating the URL (it may hold a password)."""
    problem = _url_problem(value)
    if problem:
        raise ValueError(problem)


@lru_cache(maxsize=64)
def _url_problem(value: str) -> str | None:
    try:
        url = make_url(value)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return f"is not a database URL ({_URL_HELP})"
    try:
        dialect = url.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        return f"names an unknown database or driver {url.drivername!r} ({_URL_HELP})"
    if url.get_backend_name() == "sqlite" and (url.database in (None, "", ":memory:") or "memory" in str(url.query)):
        return "is an in-memory SQLite database, which would not outlive one statement; use a file: sqlite:///data.db"
    if getattr(dialect, "is_async", False):
        return f"names the asynchronous driver {url.drivername!r}; use a synchronous one ({_URL_HELP})"
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        return f"needs the Python package {exc.name or exc}, which is not installed ({_URL_HELP})"
    return None


@lru_cache(maxsize=256)
def bind_names(query: str) -> tuple[str, ...]:
    """The `:name` parameters of a query, as SQLAlchemy's text() reads them."""
    return tuple(sqlalchemy.text(query).compile().params)


@lru_cache(maxsize=256)
def _statement(query: str) -> sqlalchemy.TextClause:
    return sqlalchemy.text(query)


class SqlQuery(NodeType):
    """Runs one SQL statement, once per item or once in all, and returns the rows as items.

    Values go in as bound parameters (`:email` in the query, `email: "{{ item.email }}"` under `parameters`), never
    pasted into the SQL, so a value like `'; DROP TABLE x; --` is stored as that text. In `per_item` mode every
    item's statement runs in one transaction: if one fails, none of them is kept.

    Rows become JSON: dates and times as ISO 8601 text, a DECIMAL/NUMERIC value as a whole number when it has no
    fractional digits (SUM, COUNT) and as exact text otherwise ("12.50": use `| float` to calculate with it),
    durations as seconds, UUIDs as text, bytes as base64 text. Works with SQLite, PostgreSQL (psycopg) and
    MySQL/MariaDB (pymysql)."""

    type = "sql.query"
    title = "SQL query"
    category = Category.integration
    icon = "storage"
    description = "Run a SQL statement on SQLite, PostgreSQL or MySQL/MariaDB, with values as bound parameters."
    Config = SqlConfig
    side_effects = True

    async def run(self, ctx: Context, config: SqlConfig, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        configs = [cfg for _, _, cfg in ctx.each(items)] if items and config.mode == "per_item" else [config]
        for index, cfg in enumerate(configs):
            if (cfg.url, cfg.credential) != (config.url, config.credential):
                raise NodeError("the database must be the same for every item (one transaction)", item_index=index,
                                field="url" if cfg.url != config.url else "credential")
        url = await _database_url(ctx, config)
        engine = ctx.database(url)
        jobs = [(_statement(cfg.query), cfg.parameters) for cfg in configs]
        running = Running()
        work = asyncio.ensure_future(asyncio.to_thread(_execute, engine, jobs, config.output,
                                                       config.mode == "per_item", running))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:  # the node timed out or the run was cancelled: stop the statement itself
            await asyncio.to_thread(running.cancel, engine)
            await asyncio.wait({work}, timeout=CANCEL_WAIT)
            if work.done() and not work.cancelled():
                work.exception()  # retrieved: the statement's "interrupted" error is the expected end
            raise


#: Seconds to wait for a cancelled statement's thread to come back before the step ends anyway.
CANCEL_WAIT = 10.0


class Running:
    """The connection a statement runs on, so that another thread can cancel the statement in the database: a
    statement that outlives its step would hold locks and keep working after the run has moved on.

    PostgreSQL: psycopg's cancel request (what pg_cancel_backend does); MySQL/MariaDB: `KILL QUERY <id>` from a
    second connection; SQLite: `interrupt()`. A cancel that comes before the connection exists stops the worker
    before its first statement."""

    __slots__ = ("cancelled", "dbapi", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dbapi: Any = None
        self.cancelled = False

    def started(self, dbapi: Any) -> None:
        with self.lock:
            self.dbapi = dbapi
            if self.cancelled:
                raise NodeError("the step was stopped before its statement started")

    def cancel(self, engine: sqlalchemy.Engine) -> None:
        with self.lock:
            self.cancelled = True
            dbapi = self.dbapi
        if dbapi is None:
            return
        backend = engine.dialect.name
        try:
            if backend == "sqlite":
                dbapi.interrupt()
            elif backend == "postgresql":
                cancel = getattr(dbapi, "cancel_safe", None) or dbapi.cancel
                cancel()
            elif backend in ("mysql", "mariadb"):
                thread_id = int(dbapi.thread_id())
                with engine.connect() as killer:
                    killer.exec_driver_sql(f"KILL QUERY {thread_id}")
        except Exception as exc:  # the statement may have ended meanwhile; nothing else to do
            logging.getLogger("flowboard.node").warning("could not cancel a SQL statement on %s: %s", backend,
                                                        driver_message(exc))


async def _database_url(ctx: Context, config: SqlConfig) -> str:
    if config.url:
        return config.url
    assert config.credential is not None
    try:
        fields = await ctx.credential(config.credential)
    except NodeError as exc:
        exc.field = exc.field or "credential"
        raise
    value = fields.get("url")
    if not isinstance(value, str) or not value.strip():
        raise NodeError(f"credential {config.credential!r} has no field `url` with a database URL",
                        field="credential")
    try:
        check_url(value.strip())
    except ValueError as exc:
        raise NodeError(f"the URL in credential {config.credential!r} {exc}", field="credential") from None
    return value.strip()


def _execute(engine: sqlalchemy.Engine, jobs: list[tuple[sqlalchemy.TextClause, dict[str, Any]]],
             output: str, per_item: bool, running: Running | None = None) -> list[Item]:
    """Runs in a worker thread: every statement in one transaction, rows converted to JSON-safe items."""
    try:
        conn = engine.connect()
    except sqlalchemy.exc.SQLAlchemyError as exc:
        shown = engine.url.render_as_string(hide_password=True)
        raise NodeError(f"could not connect to {shown}: {driver_message(exc)}", field="url") from None
    if running is not None:
        try:
            running.started(conn.connection.dbapi_connection)
        except NodeError:
            conn.close()
            raise
    out: list[Item] = []
    index = 0  # the statement running; the ones before it succeeded
    with conn:
        try:
            with conn.begin():
                for statement, params in jobs:
                    result = conn.execute(statement, params)
                    if not result.returns_rows:
                        out.append({"rows_affected": max(result.rowcount, 0)})
                    elif output == "first_row":
                        row = result.mappings().first()
                        if row is not None:
                            out.append(json_row(row))
                    elif output == "summary":
                        out.append({"rows_affected": len(result.all())})
                    else:
                        out.extend(json_row(row) for row in result.mappings())
                    index += 1
        except sqlalchemy.exc.SQLAlchemyError as exc:
            message = driver_message(exc)
            if index > 0:
                message += f"; the statements of items 0 to {index - 1} were rolled back, nothing was saved"
            raise NodeError(message, item_index=index if per_item else None) from None
    return out


def driver_message(exc: BaseException) -> str:
    """The database's own words, short: no SQL echo, no parameters, no SQLAlchemy boilerplate."""
    orig = getattr(exc, "orig", None)
    if orig is None:
        text = str(exc).split("\n", 1)[0]
        return _shorten(text.split(" [SQL:", 1)[0] or type(exc).__name__)
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) >= 2 and isinstance(args[0], int) and isinstance(args[1], str):  # pymysql: (code, message)
        text = args[1]
    else:
        text = str(orig).strip().split("\n", 1)[0]
    detail = getattr(getattr(orig, "diag", None), "message_detail", None)  # psycopg: "Key (id)=(1) already exists."
    if detail:
        text = f"{text} ({detail})"
    return _shorten(text or type(orig).__name__)


def json_row(row: Any) -> Item:
    return {str(key): json_value(value) for key, value in row.items()}


def json_value(value: Any) -> Any:
    """One database value as JSON; see the node's documentation for the choices."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_value(v) for v in value]
    return str(value)


def _shorten(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
