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
from typing import Annotated, Any, Literal, Self

import sqlalchemy
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy.engine import make_url

from flowboard.sdk import Category, Context, Inputs, Item, NodeError, NodeType, Outputs, TableOp

_URL_HELP = "e.g. sqlite:///data.db, postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"


class SqlConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description=f"SQLAlchemy database URL ({_URL_HELP}). A URL with a password "
                            "belongs in a credential instead.", json_schema_extra={"widget": "text",
                                                                                  "placeholder": "sqlite:///data.db"})
    credential: str | None = Field(None, description="Credential of the database (use it instead of a URL): a database "
                                   "connection (PostgreSQL, MariaDB or SQLite) or a database URL.",
                                   json_schema_extra={"widget": "credential", "credential_types": ["db", "database"]})
    query: str = Field(min_length=1, description="One SQL statement. Write values as named parameters (:email) "
                       "and set them under Parameters; they are sent apart from the SQL, so they can never change "
                       "it. For a PostgreSQL cast write CAST(:x AS int), not :x::int.",
                       json_schema_extra={"widget": "code", "language": "sql", "expressions": False,
                                          "instead": "put values in `parameters` as `:name`, e.g. {{ item.email }} "
                                                     "there"})
    parameters: dict[str, Any] = Field(default_factory=dict, description="Value of each :name in the query; "
                                       "expressions are evaluated per item, e.g. {{ item.email }}.",
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
        _check_parameters(self.query, self.parameters)
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
        engine = ctx.database(await _database_url(ctx, config))
        jobs: list[Job] = [(_statement(cfg.query), cfg.parameters) for cfg in configs]
        return await _guarded(engine, lambda _conn: jobs, config.output, config.mode == "per_item")


#: One statement to run, with its bound values (None: they are in the statement).
Job = tuple[Any, dict[str, Any] | None]


async def _guarded(engine: sqlalchemy.Engine, build: Any, output: str, per_item: bool) -> list[Item]:
    """`_execute` in a worker thread; a cancelled step (timeout, Stop) stops the statement in the database too."""
    running = Running()
    work = asyncio.ensure_future(asyncio.to_thread(_execute, engine, build, output, per_item, running))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
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
        raise NodeError(f"credential {config.credential!r} is not a database connection or a database URL",
                        field="credential")
    try:
        check_url(value.strip())
    except ValueError as exc:
        raise NodeError(f"the URL in credential {config.credential!r} {exc}", field="credential") from None
    return value.strip()


def _execute(engine: sqlalchemy.Engine, build: Any, output: str, per_item: bool,
             running: Running | None = None) -> list[Item]:
    """Runs in a worker thread: `build(connection)` gives the statements (it may read the table's columns first);
    every statement in one transaction, rows converted to JSON-safe items."""
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
                for statement, params in build(conn):
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


# -- version 2: the statement written from the table's columns (find, add, change, add or change, remove), or yours --

SQL_TABLE = {"widget": "sql_table", "expressions": False}  # the editor offers the database's tables ...
SQL_COLUMN = {"widget": "sql_column", "table_field": "table", "expressions": False}  # ... and the table's columns


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqlCondition(_Strict):
    model_config = ConfigDict(extra="forbid", title="Condition")

    column: str = Field(min_length=1, description="The column to look at", json_schema_extra=SQL_COLUMN)
    op: TableOp = Field(default=TableOp.eq, title="Comparison", description="How to compare")
    value: Any = Field(default=None, description="What to compare with, e.g. {{ item.email }} (a list for 'is one "
                       "of')")


class SqlValue(_Strict):
    model_config = ConfigDict(extra="forbid", title="Column value")

    column: str = Field(min_length=1, description="The column to fill", json_schema_extra=SQL_COLUMN)
    value: Any = Field(default=None, description="Its value, e.g. {{ item.email }}")


class SqlSort(_Strict):
    model_config = ConfigDict(extra="forbid", title="Sort key")

    column: str = Field(min_length=1, description="The column to sort by", json_schema_extra=SQL_COLUMN)
    descending: bool = False


Match = Annotated[Literal["all", "any"], Field(
    "all", description="all: a row must meet every condition. any: meeting one is enough.",
    json_schema_extra={"widget": "select", "labels": {"all": "every condition", "any": "any condition"}})]
ColumnName = Annotated[str, Field(min_length=1, json_schema_extra=SQL_COLUMN)]
ROW_VALUES = "The row's values. Leave empty to take every field of the item whose name is a column of the table."


class Find(_Strict):
    operation: Literal["find"] = Field(title="Find", description="Find rows")
    columns: list[ColumnName] = Field(default_factory=list, description="The columns to give back, picked from the "
                                      "table (none: all of them)")
    conditions: list[SqlCondition] = Field(default_factory=list, description="Which rows: each condition compares a "
                                           "column with a value, e.g. email is {{ item.email }}. None: every row.")
    match: Match
    sort: list[SqlSort] = Field(default_factory=list, description="The order of the rows found")
    limit: int = Field(50, ge=1, le=100_000, description="At most this many rows per item")


class Insert(_Strict):
    operation: Literal["insert"] = Field(title="Add", description="Add a row for each item")
    values: list[SqlValue] = Field(default_factory=list, description=ROW_VALUES)


class Update(_Strict):
    operation: Literal["update"] = Field(title="Change", description="Change rows")
    conditions: list[SqlCondition] = Field(min_length=1, description="Which rows to change, e.g. id is "
                                           "{{ item.id }}")
    match: Match
    values: list[SqlValue] = Field(min_length=1, description="The new values of the rows found")


class Upsert(_Strict):
    operation: Literal["upsert"] = Field(title="Add or change",
                                         description="Add a row, or change the row that has the same key")
    keys: list[ColumnName] = Field(min_length=1, title="Key columns", description="The columns that say which row "
                                   "it is: the primary key or columns with a unique index, e.g. email")
    values: list[SqlValue] = Field(default_factory=list, description=ROW_VALUES)


class Delete(_Strict):
    operation: Literal["delete"] = Field(title="Remove", description="Remove rows")
    conditions: list[SqlCondition] = Field(min_length=1, description="Which rows to remove, e.g. id is "
                                           "{{ item.id }}")
    match: Match


class OwnSql(_Strict):
    operation: Literal["query"] = Field(title="Your own SQL", description="Run a statement you write")
    query: str = SqlConfig.model_fields["query"]  # type: ignore[assignment]
    parameters: dict[str, Any] = SqlConfig.model_fields["parameters"]  # type: ignore[assignment]
    mode: Literal["per_item", "once"] = SqlConfig.model_fields["mode"]  # type: ignore[assignment]
    output: Literal["rows", "first_row", "summary"] = SqlConfig.model_fields["output"]  # type: ignore[assignment]

    @model_validator(mode="after")
    def _parameters_match(self) -> Self:
        _check_parameters(self.query, self.parameters)
        return self


Operation = Annotated[Find | Insert | Update | Upsert | Delete | OwnSql, Field(discriminator="operation")]


class SqlConfigV2(_Strict):
    url: str | None = SqlConfig.model_fields["url"]  # type: ignore[assignment]
    credential: str | None = SqlConfig.model_fields["credential"]  # type: ignore[assignment]
    table: str | None = Field(None, description="The table, picked from the database (schema.table for one in "
                              "another schema). Not needed for your own SQL.", json_schema_extra=SQL_TABLE)
    action: Operation = Field(default_factory=lambda: Find(operation="find"), title="Operation",
                              json_schema_extra={"widget": "union"})

    @field_validator("url")
    @classmethod
    def _known_url(cls, value: str | None) -> str | None:
        return SqlConfig._known_url(value)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.url and not self.credential:
            raise ValueError("set `url` (a database URL) or `credential` (a credential holding one)")
        if self.url and self.credential:
            raise ValueError("set either `url` or `credential`, not both")
        if not isinstance(self.action, OwnSql) and not (self.table or "").strip():
            raise ValueError("pick the table (`table`) to find, add, change or remove rows in")
        return self


class SqlTable(SqlQuery):
    """Finds, adds, changes or removes rows of a table picked from the database, or runs your own SQL.

    Pick the database (a credential holding its URL), the table and its columns, and the node writes the statement
    from the table's real columns (the editor shows it under the form) and sends every value as a bound parameter,
    never pasted into the SQL. One statement per item, all in one transaction: if one fails, none is kept. Find gives
    the rows found; Add, Change, Add or change and Remove give `{"rows_affected": n}` per item. Add or change is the
    database's own upsert (`ON CONFLICT` on SQLite and PostgreSQL, `ON DUPLICATE KEY` on MySQL/MariaDB), so its key
    columns need a primary key or a unique index. Values for date, time and exact-number columns may be ISO text
and numbers. Rows become JSON as in version 1 (dates as ISO 8601 text, exact decimals as text, bytes as base64).
Your own SQL works as in version 1."""

    type = "sql.query"
    version = 2
    description = "Find, add, change or remove rows of a database table (SQLite, PostgreSQL, MySQL/MariaDB) " \
                  "without writing SQL, or run your own statement."
    Config = SqlConfigV2  # type: ignore[assignment]

    async def run(self, ctx: Context, config: SqlConfigV2, inputs: Inputs) -> Outputs:  # type: ignore[override]
        items = inputs.get("main") or []
        action = config.action
        each = list(ctx.each(items)) if items else [(0, {}, config)]
        if isinstance(action, OwnSql) and action.mode == "once":
            each = each[:1]
        for index, _, cfg in each:
            if (cfg.url, cfg.credential, cfg.table) != (config.url, config.credential, config.table):
                raise NodeError("the database and the table must be the same for every item (one transaction)",
                                item_index=index, field="table")
        engine = ctx.database(await _database_url(ctx, config))  # type: ignore[arg-type]
        if isinstance(action, OwnSql):
            jobs: list[Job] = [(_statement(cfg.action.query), cfg.action.parameters) for _, _, cfg in each]
            return await _guarded(engine, lambda _conn: jobs, action.output, action.mode == "per_item")
        table = (config.table or "").strip()
        wanted = [(index, item, cfg.action) for index, item, cfg in each]
        return await _guarded(engine, lambda conn: _written(conn, table, wanted), "rows", True)

    @classmethod
    def explain(cls, config: SqlConfigV2, dialect: str | None = None) -> str | None:
        """The statement the node writes for one item, values shown as `:column` parameters (`dialect`: sqlite,
        postgresql, mysql; by default that of the config's URL, else PostgreSQL's). None for your own SQL (the
        form shows it already)."""
        action = config.action
        if isinstance(action, OwnSql):
            return None
        name = dialect or (_dialect_name(config.url) if config.url else None) or "postgresql"
        columns = {c: sqlalchemy.column(c) for c in _named_columns(action)}
        schema, _, plain = (config.table or "table").rpartition(".")
        table = sqlalchemy.table(plain, *columns.values(), schema=schema or None)
        row = _sample_row(action)
        if isinstance(action, Insert) and not row:  # the item's own fields, known only when it runs
            return f"INSERT INTO {config.table} (…) VALUES (…)\n-- every field of the item whose name is a column"
        statement = _statement_for(table, action, row, name)
        text = str(statement.compile(dialect=_dialect(name), compile_kwargs={"render_postcompile": True}))
        if isinstance(action, Upsert) and not action.values:
            text += "\n-- and every other field of the item whose name is a column"
        return text


def _check_parameters(query: str, parameters: dict[str, Any]) -> None:
    if "{{" not in query and "{%" not in query:
        used = bind_names(query)
        missing = [name for name in used if name not in parameters]
        if missing:
            raise ValueError(f"the query uses :{missing[0]}, but `parameters` has no value for it")
        unused = [name for name in parameters if name not in used]
        if unused:
            have = ", ".join(f":{n}" for n in used) or "none"
            raise ValueError(f"parameters.{unused[0]} is not used by the query (its parameters: {have})")


def _written(conn: sqlalchemy.Connection, name: str, wanted: list[tuple[int, Item, Any]]) -> list[Job]:
    """The statements for each item, written from the table's real columns (read from the database first)."""
    table = _reflect(conn, name)
    order = list(table.columns.keys())
    known = set(order)
    jobs: list[Job] = []
    for index, item, action in wanted:
        unknown = [c for c in _named_columns(action) if c not in known]
        if unknown:
            raise NodeError(f"the table {name!r} has no column {unknown[0]!r} (its columns: {', '.join(order)})",
                            item_index=index)
        row = _row_values(item, action, known)
        if isinstance(action, Insert | Upsert) and not row:
            raise NodeError(f"item {index + 1} has no field named like a column of {name!r}, so there is nothing to "
                            f"add (its columns: {', '.join(order)})", item_index=index)
        try:
            row = {k: typed(table.c[k], v) for k, v in row.items()}
            statement = _statement_for(table, action, row, conn.dialect.name)
            jobs.append((statement.execution_options(preserve_rowcount=True), None))  # rowcount on every driver
        except ValueError as exc:
            raise NodeError(f"item {index + 1}: {exc}", item_index=index) from None
    return jobs


def _reflect(conn: sqlalchemy.Connection, name: str) -> sqlalchemy.Table:
    schema, _, plain = name.rpartition(".")
    try:
        return sqlalchemy.Table(plain, sqlalchemy.MetaData(), autoload_with=conn, schema=schema or None)
    except sqlalchemy.exc.NoSuchTableError:
        have = sqlalchemy.inspect(conn).get_table_names(schema=schema or None)
        listed = ", ".join(sorted(have)[:20]) + (" …" if len(have) > 20 else "") if have else "none"
        raise NodeError(f"the database has no table {name!r} (its tables: {listed})", field="table") from None


def _named_columns(action: Any) -> list[str]:
    names: list[str] = []
    for attr in ("columns", "keys"):
        names += list(getattr(action, attr, None) or [])
    for attr in ("conditions", "values", "sort"):
        names += [part.column for part in getattr(action, attr, None) or []]
    return list(dict.fromkeys(names))


def _row_values(item: Item, action: Any, known: set[str]) -> dict[str, Any]:
    values = getattr(action, "values", None)
    if values is None:
        return {}
    if values:
        return {v.column: v.value for v in values}
    return {k: v for k, v in item.items() if k in known}  # left empty: the item's fields that are columns


def _sample_row(action: Any) -> dict[str, Any]:
    values = getattr(action, "values", None) or []
    return {v.column: None for v in values} or {k: None for k in getattr(action, "keys", None) or []}


_PARSERS: dict[type, tuple[Any, str]] = {
    dt.datetime: (dt.datetime.fromisoformat, "a date and time (YYYY-MM-DD HH:MM:SS)"),
    dt.date: (lambda v: dt.date.fromisoformat(v[:10]) if len(v) > 10 and v[10] in "T " else dt.date.fromisoformat(v),
              "a date (YYYY-MM-DD)"),
    dt.time: (dt.time.fromisoformat, "a time (HH:MM:SS)"),
    Decimal: (lambda v: Decimal(v.strip()), "a number"),
}


def typed(column: Any, value: Any) -> Any:
    """A JSON value as the column's Python type where the driver needs it (dates and times from ISO text, exact
    numbers); anything else is left to the database. ValueError says what the column wants."""
    try:
        kind = column.type.python_type
    except (NotImplementedError, AttributeError):
        return value
    if isinstance(value, list):
        return [typed(column, v) for v in value]
    if kind is Decimal and isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    parser = _PARSERS.get(kind)
    if parser is None or not isinstance(value, str):
        return value
    try:
        return parser[0](value)
    except (ValueError, ArithmeticError):
        raise ValueError(f"{column.name}: {value!r} is not {parser[1]}") from None


def _condition(table: Any, cond: SqlCondition) -> Any:
    column, op = table.c[cond.column], cond.op
    value = cond.value if op in (TableOp.contains, TableOp.starts, TableOp.ends) else typed(column, cond.value)
    if op is TableOp.eq:
        return column.is_(None) if value is None else column == value
    if op is TableOp.ne:
        return column.is_not(None) if value is None else column != value
    if op is TableOp.gt:
        return column > value
    if op is TableOp.ge:
        return column >= value
    if op is TableOp.lt:
        return column < value
    if op is TableOp.le:
        return column <= value
    if op is TableOp.contains:
        return column.contains(str(value), autoescape=True)
    if op is TableOp.starts:
        return column.startswith(str(value), autoescape=True)
    if op is TableOp.ends:
        return column.endswith(str(value), autoescape=True)
    if op is TableOp.empty:
        return sqlalchemy.or_(column.is_(None), sqlalchemy.cast(column, sqlalchemy.String) == "")
    if op is TableOp.not_empty:
        return sqlalchemy.and_(column.is_not(None), sqlalchemy.cast(column, sqlalchemy.String) != "")
    if op is TableOp.one_of:
        choices = value if isinstance(value, list) else [v.strip() for v in str(value or "").split(",") if v.strip()]
        return column.in_(choices)
    raise NodeError(f"the comparison {op.value!r} is not known")


def _where(table: Any, action: Any) -> Any:
    parts = [_condition(table, c) for c in getattr(action, "conditions", [])]
    if not parts:
        return sqlalchemy.true()
    return sqlalchemy.and_(*parts) if action.match == "all" else sqlalchemy.or_(*parts)


def _statement_for(table: Any, action: Any, row: dict[str, Any], dialect: str) -> Any:
    if isinstance(action, Find):
        everything = [table] if isinstance(table, sqlalchemy.Table) else [sqlalchemy.literal_column("*")]
        shown = [table.c[c] for c in action.columns] or everything
        query = sqlalchemy.select(*shown).select_from(table).limit(action.limit)
        if action.conditions:
            query = query.where(_where(table, action))
        return query.order_by(*[table.c[s.column].desc() if s.descending else table.c[s.column]
                                for s in action.sort])
    if isinstance(action, Insert):
        return sqlalchemy.insert(table).values(row)
    if isinstance(action, Update):
        return sqlalchemy.update(table).where(_where(table, action)).values(row)
    if isinstance(action, Delete):
        return sqlalchemy.delete(table).where(_where(table, action))
    if isinstance(action, Upsert):
        changed = {k: v for k, v in row.items() if k not in action.keys}
        if dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            statement = mysql.insert(table).values(row)
            key = action.keys[0]  # nothing else to change: setting the key to itself makes it "add if missing"
            return statement.on_duplicate_key_update(
                {k: statement.inserted[k] for k in changed} or {key: statement.inserted[key]})
        from sqlalchemy.dialects import postgresql, sqlite

        module: Any = postgresql if dialect == "postgresql" else sqlite
        statement = module.insert(table).values(row)
        if not changed:
            return statement.on_conflict_do_nothing(index_elements=action.keys)
        return statement.on_conflict_do_update(index_elements=action.keys,
                                               set_={k: statement.excluded[k] for k in changed})
    raise NodeError("this operation cannot be written as SQL")


def _dialect_name(url: str) -> str | None:
    try:
        return make_url(url).get_backend_name()
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None


def _dialect(name: str | None) -> Any:
    """A dialect that shows parameters as `:name` (for reading, not for running)."""
    from sqlalchemy.dialects.mysql.base import MySQLDialect
    from sqlalchemy.dialects.postgresql.base import PGDialect
    from sqlalchemy.dialects.sqlite.base import SQLiteDialect

    known: dict[str, Any] = {"postgresql": PGDialect, "sqlite": SQLiteDialect, "mysql": MySQLDialect,
                             "mariadb": MySQLDialect}
    return known.get(name or "", PGDialect)(paramstyle="named")
