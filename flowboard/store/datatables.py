"""Data tables in Flowboard's own database: each table is a real SQL table (`dt_<id>`), so finds use real indexes and a
conditional update is one atomic statement on SQLite and PostgreSQL alike.

- Column names people see live in the table's definition (`data_tables.definition`); the SQL columns have stable
  names of their own (`c_<hex>`), so renaming a column touches no row, and retyping one fills a new SQL column with
  the converted values (every row is checked first; one that cannot convert refuses the whole change, named).
- Every change of a row (grid, API, nodes, CSV import) writes an entry to `table_changes` in the SAME transaction:
  the outbox that the table-change trigger reads, so a change can neither be lost nor delivered without having
  happened. An entry carries the run that made the change and its depth, which is how a flow that changes its own
  table is stopped from looping forever.
- Writes take the database's write lock first (SQLite `BEGIN IMMEDIATE`; PostgreSQL row locks via
  `SELECT ... FOR UPDATE`), so concurrent conditional updates never both see the old balance.

Methods are synchronous (the store's style): async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import csv
import io
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import ValidationError

from ..datatables import (
    RESERVED,
    Change,
    Column,
    ColumnType,
    Condition,
    Op,
    Sort,
    TableSchema,
    ValueInvalid,
    check_conditions,
    convert,
    convert_row,
    plain_errors,
)
from ..errors import FlowboardError
from .db import write_transaction
from .store import flow_idle
from .tables import data_tables_t, flows_t, runs_t, table_changes_t, table_trigger_state_t

MAX_PAGE = 10_000  # rows one find returns at most


#: From this offset on, a page's row ids are found first and only those rows read (see `find`).
DEEP = 1_000


class TableError(FlowboardError):
    """A table operation was refused; the message says why and what to do."""


class TableNotFound(TableError, LookupError):
    pass


@dataclass(slots=True)
class TableInfo:
    id: str
    schema: TableSchema
    storage: str
    created: float
    updated: float
    version: int

    @property
    def name(self) -> str:
        return self.schema.name


@dataclass(slots=True)
class ChangeSource:
    """Who changes rows: a run (its id and how many table-change triggers deep it is), the grid, the API, an import."""

    via: str = "api"  # grid, api, node, import
    run_id: str | None = None
    depth: int = 0


@dataclass(slots=True)
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    problems: list[str] = field(default_factory=list)  # "row 7: days_left: 'lots' is not a number"
    committed: bool = False


_SQL_TYPES: dict[ColumnType, Any] = {
    ColumnType.text: sa.Text, ColumnType.user: sa.Text, ColumnType.choice: sa.Text, ColumnType.json: sa.Text,
    ColumnType.number: sa.Double, ColumnType.boolean: sa.Boolean, ColumnType.date: lambda: sa.String(10),
    ColumnType.datetime: lambda: sa.String(40),
}
_SYSTEM = {"id": "_id", "created_at": "_created", "updated_at": "_updated"}


class DataTables:
    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self._sql: dict[tuple[str, int], sa.Table] = {}

    # -- tables -----------------------------------------------------------------------------------------------------

    def list_tables(self) -> list[TableInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(data_tables_t).order_by(data_tables_t.c.name)).all()
        return [_info(r) for r in rows]

    def get(self, name_or_id: str) -> TableInfo:
        with self.engine.connect() as conn:
            return self._get(conn, name_or_id)

    def _get(self, conn: sa.Connection, name_or_id: str, lock: bool = False) -> TableInfo:
        query = sa.select(data_tables_t).where(sa.or_(data_tables_t.c.id == name_or_id,
                                                      data_tables_t.c.name == name_or_id))
        if lock and conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise TableNotFound(f"there is no data table called {name_or_id!r}; create it on the Tables page")
        return _info(row)

    def create(self, schema: TableSchema) -> TableInfo:
        table_id = uuid.uuid4().hex[:12]
        schema = schema.model_copy(deep=True)
        for column in schema.columns:
            column.storage = _new_storage()
        info = TableInfo(table_id, schema, f"dt_{table_id}", time.time(), time.time(), 1)
        with self._write() as conn:
            if conn.execute(sa.select(data_tables_t.c.id).where(data_tables_t.c.name == schema.name)).first():
                raise TableError(f"a data table called {schema.name!r} exists already; choose another name")
            conn.execute(data_tables_t.insert().values(id=table_id, name=schema.name, definition=_dump(schema),
                                                       storage=info.storage, created=info.created,
                                                       updated=info.updated, version=1))
            table = self._table(info)
            table.create(conn)
        return info

    def rename(self, name_or_id: str, new_name: str) -> TableInfo:
        with self._write() as conn:
            info = self._get(conn, name_or_id, lock=True)
            schema = _schema({**info.schema.model_dump(), "name": new_name})
            other = conn.execute(sa.select(data_tables_t.c.id).where(data_tables_t.c.name == schema.name,
                                                                     data_tables_t.c.id != info.id)).first()
            if other:
                raise TableError(f"a data table called {schema.name!r} exists already; choose another name")
            return self._save_schema(conn, info, schema)

    def drop(self, name_or_id: str) -> None:
        with self._write() as conn:
            info = self._get(conn, name_or_id, lock=True)
            self._table(info).drop(conn)
            conn.execute(data_tables_t.delete().where(data_tables_t.c.id == info.id))
            conn.execute(table_changes_t.delete().where(table_changes_t.c.table_id == info.id))

    # -- columns ----------------------------------------------------------------------------------------------------

    def add_column(self, name_or_id: str, column: Column) -> TableInfo:
        with self._write() as conn:
            info = self._get(conn, name_or_id, lock=True)
            column = column.model_copy(update={"storage": _new_storage()})
            schema = _schema({**info.schema.model_dump(),
                              "columns": [*info.schema.model_dump()["columns"], column.model_dump()]})
            if column.required and column.default is None and self._count(conn, info) > 0:
                raise TableError(f"{column.name}: the table has rows, so a required column needs a default value "
                                 "for them")
            new = self._save_schema(conn, info, schema)
            table = self._table(new)
            sql_column = table.c[column.storage]
            _add_sql_column(conn, info.storage, sql_column)
            if column.default is not None:
                conn.execute(table.update().values({column.storage: _to_sql(column.default, column)}))
            for index in table.indexes:
                if column.storage in index.columns:
                    index.create(conn)
        return new

    def rename_column(self, name_or_id: str, old: str, new_name: str) -> TableInfo:
        with self._write() as conn:
            info = self._get(conn, name_or_id, lock=True)
            data = info.schema.model_dump()
            if info.schema.column(old) is None:
                raise TableError(f"there is no column {old!r} in {info.name}")
            for column in data["columns"]:
                if column["name"] == old:
                    column["name"] = new_name
            if data["key"] == old:
                data["key"] = new_name
            return self._save_schema(conn, info, _schema(data))

    def change_column(self, name_or_id: str, name: str, column: Column) -> TableInfo:
        """Retype or reconfigure column `name` as `column` (which may rename it too). Every row is converted first;
        if any cannot be, nothing changes and the message names those rows."""
        with self._write() as conn:
            info = self._get(conn, name_or_id, lock=True)
            old = info.schema.column(name)
            if old is None:
                raise TableError(f"there is no column {name!r} in {info.name}")
            table = self._table(info)
            column = column.model_copy(update={"storage": _new_storage()})
            converted: list[tuple[int, Any]] = []
            problems: list[str] = []
            for row_id, value in conn.execute(sa.select(table.c._id, table.c[old.storage])):
                try:
                    value = convert(_from_sql(value, old), column)
                except ValueInvalid as exc:
                    problems.append(f"row {row_id}: {exc}")
                    continue
                if value is None and column.required:
                    problems.append(f"row {row_id}: {column.name}: a value is required")
                converted.append((row_id, value))
            if column.unique:
                seen: dict[Any, int] = {}
                for row_id, value in converted:
                    if value is not None and value in seen:
                        problems.append(f"row {row_id}: {column.name}: {value!r} is also in row {seen[value]}")
                    seen.setdefault(value, row_id)
            if problems:
                shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
                raise TableError(f"{len(problems)} row(s) would not fit the changed column: {shown}. Nothing was "
                                 "changed: fix those rows first, or change the column differently.")
            data = info.schema.model_dump()
            data["columns"] = [column.model_dump() if c["name"] == name else c for c in data["columns"]]
            if data["key"] == name:
                data["key"] = column.name
            new = self._save_schema(conn, info, _schema(data))
            new_table = self._table(new)
            sql_column = new_table.c[column.storage]
            _add_sql_column(conn, info.storage, sql_column)
            for row_id, value in converted:
                conn.execute(new_table.update().where(new_table.c._id == row_id)
                             .values({column.storage: _to_sql(value, column)}))
            self._drop_sql_column(conn, table, old.storage)
            for index in new_table.indexes:
                if column.storage in index.columns:
                    index.create(conn)
        return new

    def drop_column(self, name_or_id: str, name: str) -> TableInfo:
        with self._write() as conn:
            info = self._get(conn, name_or_id, lock=True)
            old = info.schema.column(name)
            if old is None:
                raise TableError(f"there is no column {name!r} in {info.name}")
            if info.schema.key == name:
                raise TableError(f"{name} is the table's key column; choose another key before removing it")
            table = self._table(info)
            data = info.schema.model_dump()
            data["columns"] = [c for c in data["columns"] if c["name"] != name]
            new = self._save_schema(conn, info, _schema(data))
            self._drop_sql_column(conn, table, old.storage)
        return new

    def _drop_sql_column(self, conn: sa.Connection, table: sa.Table, storage: str) -> None:
        for index in table.indexes:
            if storage in index.columns:
                index.drop(conn)
        conn.execute(sa.text(f"ALTER TABLE {_q(conn, table.name)} DROP COLUMN {_q(conn, storage)}"))

    def _save_schema(self, conn: sa.Connection, info: TableInfo, schema: TableSchema) -> TableInfo:
        version = info.version + 1
        now = time.time()
        done = conn.execute(data_tables_t.update().where(data_tables_t.c.id == info.id,
                                                         data_tables_t.c.version == info.version)
                            .values(name=schema.name, definition=_dump(schema), updated=now, version=version))
        if done.rowcount != 1:
            raise TableError(f"{info.name} was changed meanwhile by someone else; reload it and try again")
        return TableInfo(info.id, schema, info.storage, info.created, now, version)

    # -- rows -------------------------------------------------------------------------------------------------------

    def find(self, name_or_id: str, conditions: Sequence[Condition] = (), sort: Sequence[Sort] = (),
             limit: int | None = 100, offset: int = 0, match: str = "all") -> list[dict[str, Any]]:
        """Rows matching every condition (`match="all"`) or any (`"any"`), sorted, one page."""
        with self.engine.connect() as conn:
            info = self._get(conn, name_or_id)
            table = self._table(info)
            order = self._order(info, table, sort)
            query = sa.select(table).where(self._where(info, table, conditions, match))
            if offset > DEEP and limit is not None:  # a deep page: its row ids first (an index has them), then
                ids = sa.select(table.c._id).where(self._where(info, table, conditions, match))  # only its rows
                ids = ids.order_by(*order).offset(offset).limit(max(0, min(limit, MAX_PAGE)))
                query = sa.select(table).where(table.c._id.in_(ids.scalar_subquery()))
                return [self._row(info, r) for r in conn.execute(query.order_by(*order))]
            query = query.order_by(*order).offset(max(0, offset))
            if limit is not None:
                query = query.limit(max(0, min(limit, MAX_PAGE)))
            return [self._row(info, r) for r in conn.execute(query)]

    def count(self, name_or_id: str, conditions: Sequence[Condition] = (), match: str = "all") -> int:
        with self.engine.connect() as conn:
            info = self._get(conn, name_or_id)
            table = self._table(info)
            return conn.execute(sa.select(sa.func.count()).select_from(table)
                                .where(self._where(info, table, conditions, match))).scalar() or 0

    def _count(self, conn: sa.Connection, info: TableInfo) -> int:
        return conn.execute(sa.select(sa.func.count()).select_from(self._table(info))).scalar() or 0

    def get_row(self, name_or_id: str, row_id: int) -> dict[str, Any]:
        rows = self.find(name_or_id, [Condition(column="id", value=row_id)], limit=1)
        if not rows:
            raise TableNotFound(f"there is no row {row_id} in {name_or_id}")
        return rows[0]

    def insert(self, name_or_id: str, rows: Sequence[dict[str, Any]], source: ChangeSource | None = None
               ) -> list[dict[str, Any]]:
        """Insert every row or none; returns them as stored (with their ids)."""
        with self._write() as conn:
            info = self._get(conn, name_or_id)
            return self._insert(conn, info, rows, source or ChangeSource())

    def _insert(self, conn: sa.Connection, info: TableInfo, rows: Sequence[dict[str, Any]],
                source: ChangeSource) -> list[dict[str, Any]]:
        table = self._table(info)
        values = self._checked(info, rows)
        now = time.time()
        sql_rows = [{**self._to_sql_row(info, row), "_created": now, "_updated": now} for row in values]
        if not sql_rows:
            return []
        try:  # all rows in one statement; on a refusal, find the row that caused it, one by one
            with conn.begin_nested():
                ids = list(conn.execute(table.insert().returning(table.c._id, sort_by_parameter_order=True),
                                        sql_rows).scalars())
        except sa.exc.IntegrityError:
            ids = []
            for row, sql in zip(values, sql_rows, strict=True):
                try:
                    ids.append(conn.execute(table.insert().values(sql).returning(table.c._id)).scalar_one())
                except sa.exc.IntegrityError as exc:
                    raise TableError(self._integrity_message(info, conn, table, row, exc)) from None
        out = [{"id": row_id, **row, "created_at": now, "updated_at": now}
               for row_id, row in zip(ids, values, strict=True)]
        self._log_many(conn, info, [(r["id"], "insert", None, r) for r in out], source)
        return out

    def update(self, name_or_id: str, conditions: Sequence[Condition], values: dict[str, Any],
               source: ChangeSource | None = None, match: str = "all") -> list[dict[str, Any]]:
        """Set `values` on every row matching the conditions; returns the rows as they are now."""
        with self._write() as conn:
            info = self._get(conn, name_or_id)
            try:
                changes = convert_row(values, info.schema, partial=True)
            except ValueInvalid as exc:
                raise TableError(str(exc)) from None
            return self._update(conn, info, conditions, match, lambda row: changes, source or ChangeSource())

    def update_row(self, name_or_id: str, row_id: int, values: dict[str, Any], source: ChangeSource | None = None
                   ) -> dict[str, Any]:
        rows = self.update(name_or_id, [Condition(column="id", value=row_id)], values, source)
        if not rows:
            raise TableNotFound(f"there is no row {row_id} in {name_or_id}; it may have been deleted meanwhile")
        return rows[0]

    def conditional_update(self, name_or_id: str, conditions: Sequence[Condition], changes: Sequence[Change],
                           source: ChangeSource | None = None, match: str = "all") -> list[dict[str, Any]]:
        """Change the rows that match, atomically: `decrease days_left by 3 where employee is ada and days_left is
        greater than or equal to 3`. Returns the changed rows (empty: the condition did not hold, nothing changed).
        Two concurrent calls can never both see the old value."""
        with self._write() as conn:
            info = self._get(conn, name_or_id)
            checked = []
            for change in changes:
                column = info.schema.column(change.column)
                if column is None:
                    raise TableError(f"there is no column {change.column!r} in {info.name}")
                if change.action != "set" and column.type is not ColumnType.number:
                    raise TableError(f"{column.name}: '{change.action}' works on number columns only")
                try:
                    value = convert(change.value, column)
                except ValueInvalid as exc:
                    raise TableError(str(exc)) from None
                if change.action != "set" and value is None:
                    raise TableError(f"{column.name}: say by how much to {change.action.split()[0]} it")
                checked.append((column, change.action, value))

            def apply(row: dict[str, Any]) -> dict[str, Any]:
                out = {}
                for column, action, value in checked:
                    current = row.get(column.name) or 0
                    out[column.name] = (value if action == "set" else
                                        _number(current + value if action == "increase by" else current - value))
                return out

            return self._update(conn, info, conditions, match, apply, source or ChangeSource())

    def _update(self, conn: sa.Connection, info: TableInfo, conditions: Sequence[Condition], match: str,
                changes_for: Any, source: ChangeSource) -> list[dict[str, Any]]:
        table = self._table(info)
        query = sa.select(table).where(self._where(info, table, conditions, match)).order_by(table.c._id)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        now = time.time()
        done: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []  # (old, new, changes)
        for sql_row in conn.execute(query).all():
            old = self._row(info, sql_row)
            changes = changes_for(old)
            new = {**old, **changes, "updated_at": now}
            try:
                convert_row({k: v for k, v in new.items() if k not in _SYSTEM}, info.schema)
            except ValueInvalid as exc:
                raise TableError(f"row {old['id']}: {exc}") from None
            done.append((old, new, changes))
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # rows changing the same columns: one statement
        for old, _, changes in done:
            sql = self._to_sql_row(info, changes)
            groups.setdefault(tuple(sorted(sql)), []).append(
                {"row_": old["id"], "updated_": now, **{f"v_{k}": v for k, v in sql.items()}})
        for columns, params in groups.items():
            statement = table.update().where(table.c._id == sa.bindparam("row_")).values(
                {"_updated": sa.bindparam("updated_"), **{c: sa.bindparam(f"v_{c}") for c in columns}})
            try:
                with conn.begin_nested():
                    conn.execute(statement, params)
            except sa.exc.IntegrityError as exc:
                changed = next(ch for _, _, ch in done if tuple(sorted(self._to_sql_row(info, ch))) == columns)
                raise TableError(self._integrity_message(info, conn, table, changed, exc)) from None
        self._log_many(conn, info, [(old["id"], "update", old, new) for old, new, _ in done], source)
        return [new for _, new, _ in done]

    def upsert(self, name_or_id: str, rows: Sequence[dict[str, Any]], source: ChangeSource | None = None
               ) -> list[dict[str, Any]]:
        """Insert each row, or update the row with the same key value. Needs a key column."""
        with self._write() as conn:
            info = self._get(conn, name_or_id)
            return self._upsert(conn, info, rows, source or ChangeSource())

    def _upsert(self, conn: sa.Connection, info: TableInfo, rows: Sequence[dict[str, Any]],
                source: ChangeSource) -> list[dict[str, Any]]:
        key = info.schema.key
        if key is None:
            raise TableError(f"{info.name} has no key column, so rows cannot be matched; choose a key column in the "
                             "table's settings, or insert instead")
        out = []
        for row in rows:
            try:
                key_value = convert(row.get(key), info.schema.column(key))  # type: ignore[arg-type]
                changes = convert_row(row, info.schema, partial=True)
            except ValueInvalid as exc:
                raise TableError(str(exc)) from None
            if key_value is None:
                raise TableError(f"{key}: every row needs a value in the key column to be upserted")
            done = self._update(conn, info, [Condition(column=key, value=key_value)], "all", lambda r, c=changes: c,
                                source)
            out += done or self._insert(conn, info, [row], source)
        return out

    def delete(self, name_or_id: str, conditions: Sequence[Condition], source: ChangeSource | None = None,
               match: str = "all") -> list[dict[str, Any]]:
        """Delete the matching rows; returns them as they were. No condition deletes nothing (use `clear`)."""
        if not conditions:
            raise TableError("say which rows to delete: with no condition nothing is deleted")
        with self._write() as conn:
            info = self._get(conn, name_or_id)
            return self._delete(conn, info, conditions, match, source or ChangeSource())

    def _delete(self, conn: sa.Connection, info: TableInfo, conditions: Sequence[Condition], match: str,
                source: ChangeSource) -> list[dict[str, Any]]:
        table = self._table(info)
        query = sa.select(table).where(self._where(info, table, conditions, match))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        out = [self._row(info, r) for r in conn.execute(query).all()]
        if out:
            conn.execute(table.delete().where(table.c._id.in_([r["id"] for r in out])))
        self._log_many(conn, info, [(row["id"], "delete", row, None) for row in out], source)
        return out

    def delete_rows(self, name_or_id: str, row_ids: Sequence[int], source: ChangeSource | None = None
                    ) -> list[dict[str, Any]]:
        return self.delete(name_or_id, [Condition(column="id", op=Op.one_of, value=list(row_ids))], source)

    # -- CSV --------------------------------------------------------------------------------------------------------

    def import_csv(self, name_or_id: str, text: str, *, mapping: dict[str, str] | None = None, dry_run: bool = True,
                   mode: str = "insert", source: ChangeSource | None = None) -> ImportReport:
        """Read CSV `text` (header row first) into the table. `mapping`: CSV header -> column (default: same name;
        an empty target skips that CSV column). `mode`: insert, or upsert by the key column.

        Every line is tried for real inside one transaction, so the report lists every line that would fail and why,
        unique values included; then the transaction is rolled back (`dry_run`, or any problem: all or nothing) or
        committed."""
        source = source or ChangeSource(via="import")
        report = ImportReport()
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        try:
            headers = reader.fieldnames or []
        except csv.Error as exc:
            report.problems.append(f"the file is not readable as CSV: {exc}")
            return report
        if not headers:
            report.problems.append("the file is empty: the first line should name the columns")
            return report
        with self._write() as conn:
            info = self._get(conn, name_or_id)
            mapping = mapping if mapping is not None else {h: h for h in headers if h not in RESERVED}
            unknown = [f"{h} → {c}" for h, c in mapping.items() if c and info.schema.column(c) is None]
            if unknown:
                report.problems.append("these CSV columns are mapped to columns the table does not have: "
                                       + ", ".join(unknown))
                return report
            if mode == "upsert" and info.schema.key is None:
                report.problems.append(f"{info.name} has no key column, so rows cannot be matched for an update")
                return report
            before = self._count(conn, info)
            try:
                for line, record in enumerate(reader, start=2):  # line 1 is the header
                    report.rows += 1
                    if None in record:
                        report.problems.append(f"line {line}: it has more values than the header has columns")
                        continue
                    row = {mapping[h]: None if v == "" else v for h, v in record.items() if mapping.get(h)}
                    try:
                        with conn.begin_nested():
                            if mode == "upsert":
                                self._upsert(conn, info, [row], source)
                            else:
                                self._insert(conn, info, [row], source)
                    except (TableError, ValueInvalid) as exc:
                        report.problems.append(f"line {line}: {exc}")
                    if len(report.problems) >= 1000:
                        report.problems.append("... stopped after 1,000 problems")
                        break
            except csv.Error as exc:
                report.problems.append(f"line {reader.line_num}: the CSV is broken here: {exc}")
            report.inserted = self._count(conn, info) - before
            report.updated = report.rows - len(report.problems) - report.inserted if mode == "upsert" else 0
            if report.problems or dry_run:
                if report.problems:
                    report.inserted = report.updated = 0
                conn.rollback()
                return report
            report.committed = True
        return report

    def export_csv(self, name_or_id: str, conditions: Sequence[Condition] = (), sort: Sequence[Sort] = (),
                   match: str = "all") -> str:
        info = self.get(name_or_id)
        out = io.StringIO()
        writer = csv.writer(out)
        names = [c.name for c in info.schema.columns]
        writer.writerow(["id", *names])
        offset = 0
        while True:
            rows = self.find(info.id, conditions, sort, limit=MAX_PAGE, offset=offset, match=match)
            for row in rows:
                writer.writerow([row["id"], *[_csv_value(row.get(n)) for n in names]])
            if len(rows) < MAX_PAGE:
                return out.getvalue()
            offset += MAX_PAGE

    # -- the change outbox ------------------------------------------------------------------------------------------

    def changes(self, after: int = 0, limit: int = 1000, table: str | None = None) -> list[dict[str, Any]]:
        """Changes with an id above `after`, oldest first (the table-change trigger's feed)."""
        query = sa.select(table_changes_t).where(table_changes_t.c.id > after)
        if table is not None:
            query = query.where(table_changes_t.c.table_id == table)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(table_changes_t.c.id).limit(limit)).all()
        return [dict(r._mapping) for r in rows]

    def last_change(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(table_changes_t.c.id))).scalar() or 0

    def trigger_cursor(self, flow_id: str, node_id: str) -> int:
        """Where a table-change trigger is in the change log. Seen for the first time (or since its flow was switched
        off), it starts at the newest change: activating a flow never replays old changes."""
        t = table_trigger_state_t
        query = sa.select(t.c.last_change).where(t.c.flow_id == flow_id, t.c.node_id == node_id)
        with self.engine.connect() as conn:
            last = conn.execute(query).scalar()
        if last is not None:
            return int(last)
        now = self.last_change()
        try:
            with self.engine.begin() as conn:
                conn.execute(t.insert().values(flow_id=flow_id, node_id=node_id, last_change=now, updated=time.time()))
            return now
        except sa.exc.IntegrityError:  # another process started it a moment ago
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

    def forget_triggers(self, flow_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(table_trigger_state_t.delete().where(table_trigger_state_t.c.flow_id == flow_id))

    def claim_changes(self, flow_id: str, node_id: str, after: int, upto: int, runs: Sequence[tuple[str, Any]], *,
                      flow_version: int | None, owner: str | None, record: bool = True, idle_only: bool = False
                      ) -> bool | None:
        """Move the trigger's cursor from `after` to `upto` and create the queued runs for the changes in between
        that match, in ONE transaction. False (nothing written) when another process moved the cursor first or the
        flow is not active: that process starts those runs. `runs`: (run id, item) per matching change.
        `idle_only` (run mode skip across processes): when a run of the flow is queued or running, the cursor moves
        but no run is created, and the answer is None."""
        t = table_trigger_state_t
        now = time.time()
        with self.engine.begin() as conn:
            moved = conn.execute(t.update().where(t.c.flow_id == flow_id, t.c.node_id == node_id,
                                                  t.c.last_change == after).values(last_change=upto, updated=now))
            if moved.rowcount != 1:
                conn.rollback()
                return False
            if not conn.execute(sa.select(flows_t.c.active).where(flows_t.c.id == flow_id)).scalar():
                conn.rollback()
                return False
            if record and runs and idle_only and not flow_idle(conn, flow_id):
                return None
            if record and runs:
                conn.execute(runs_t.insert(), [
                    {"id": run_id, "flow_id": flow_id, "flow_version": flow_version, "status": "queued",
                     "trigger": node_id, "source": "table", "input": [item], "created": now, "owner": owner,
                     "heartbeat": now if owner else None} for run_id, item in runs])
        return True

    def _log_many(self, conn: sa.Connection, info: TableInfo,
                  entries: Sequence[tuple[int, str, dict[str, Any] | None, dict[str, Any] | None]],
                  source: ChangeSource) -> None:
        """Write the changes to the outbox, in the caller's transaction: one statement for all of them."""
        if entries:
            now = time.time()
            conn.execute(table_changes_t.insert(), [
                {"table_id": info.id, "row_id": row_id, "op": op, "old": old, "new": new, "created": now,
                 "via": source.via, "run_id": source.run_id, "depth": source.depth}
                for row_id, op, old, new in entries])

    # -- SQL helpers ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One transaction holding the write lock (SQLite) from its first statement, committed at the end."""
        with write_transaction(self.engine) as conn:
            yield conn

    def _table(self, info: TableInfo) -> sa.Table:
        key = (info.id, info.version)
        table = self._sql.get(key)
        if table is None:
            metadata = sa.MetaData()
            columns: list[Any] = [sa.Column("_id", sa.Integer, primary_key=True, autoincrement=True),
                                  sa.Column("_created", sa.Double, nullable=False),
                                  sa.Column("_updated", sa.Double, nullable=False)]
            indexes = []
            for column in info.schema.columns:
                columns.append(sa.Column(column.storage, _SQL_TYPES[column.type](), nullable=True))
                if column.unique or column.indexed:
                    indexes.append(sa.Index(f"ix_{info.storage}_{column.storage}", column.storage,
                                            unique=column.unique))
            table = sa.Table(info.storage, metadata, *columns, *indexes)
            if len(self._sql) > 500:
                self._sql.clear()
            self._sql[key] = table
        return table

    def _sql_column(self, info: TableInfo, table: sa.Table, name: str) -> Any:
        if name in _SYSTEM:
            return table.c[_SYSTEM[name]]
        column = info.schema.column(name)
        if column is None:
            raise TableError(f"there is no column {name!r} in {info.name}")
        return table.c[column.storage]

    def _where(self, info: TableInfo, table: sa.Table, conditions: Sequence[Condition], match: str) -> Any:
        try:
            checked = check_conditions(list(conditions), info.schema)
        except ValueInvalid as exc:
            raise TableError(str(exc)) from None
        clauses = []
        for column, op, value in checked:
            col = table.c._id if column is None else table.c[column.storage]
            sql_value = value if column is None else (
                [_to_sql(v, column) for v in value] if op is Op.one_of else _to_sql(value, column))
            clauses.append(_clause(col, op, sql_value, column))
        if not clauses:
            return sa.true()
        return sa.or_(*clauses) if match == "any" else sa.and_(*clauses)

    def _order(self, info: TableInfo, table: sa.Table, sort: Sequence[Sort]) -> list[Any]:
        order = []
        for s in sort:
            col = self._sql_column(info, table, s.column)
            order.append(col.desc() if s.descending else col.asc())
        # Ties in the row order, in the last sort's direction: an index of that column (which holds the row id
        # too) then gives the whole order, with no sorting step.
        order.append(table.c._id.desc() if sort and sort[-1].descending else table.c._id)
        return order

    def _row(self, info: TableInfo, sql_row: Any) -> dict[str, Any]:
        m = sql_row._mapping
        out: dict[str, Any] = {"id": m["_id"]}
        for column in info.schema.columns:
            out[column.name] = _from_sql(m[column.storage], column)
        out["created_at"] = m["_created"]
        out["updated_at"] = m["_updated"]
        return out

    def _to_sql_row(self, info: TableInfo, row: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name, value in row.items():
            column = info.schema.column(name)
            if column is not None:
                out[column.storage] = _to_sql(value, column)
        return out

    def _checked(self, info: TableInfo, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        problems, out = [], []
        for i, row in enumerate(rows, 1):
            if not isinstance(row, dict):
                problems.append(f"row {i}: a row is a set of column values, not {type(row).__name__}")
                continue
            try:
                out.append(convert_row(row, info.schema))
            except ValueInvalid as exc:
                problems += [f"row {i}: {p}" if len(rows) > 1 else p for p in exc.problems]
        if problems:
            raise TableError("; ".join(problems))
        return out

    def _integrity_message(self, info: TableInfo, conn: sa.Connection, table: sa.Table, row: dict[str, Any],
                           exc: Exception) -> str:
        for column in info.schema.columns:
            if column.unique and row.get(column.name) is not None:
                return (f"{column.name}: another row already has {row[column.name]!r}, and every value in this "
                        "column must be different")
        return f"the database refused the row: {str(exc).splitlines()[0]}"


def _clause(col: Any, op: Op, value: Any, column: Column | None) -> Any:
    texty = column is not None and column.type in (ColumnType.text, ColumnType.user, ColumnType.choice,
                                                    ColumnType.json)
    if op is Op.eq:
        return col == value
    if op is Op.ne:
        return sa.or_(col != value, col.is_(None))
    if op is Op.gt:
        return col > value
    if op is Op.ge:
        return col >= value
    if op is Op.lt:
        return col < value
    if op is Op.le:
        return col <= value
    if op is Op.one_of:
        return col.in_(value)
    if op is Op.empty:
        return sa.or_(col.is_(None), col == "") if texty else col.is_(None)
    if op is Op.not_empty:
        return sa.and_(col.is_not(None), col != "") if texty else col.is_not(None)
    lowered = sa.func.lower(col)
    text = str(value).lower()
    if op is Op.contains:
        return lowered.contains(text, autoescape=True)
    if op is Op.starts:
        return lowered.startswith(text, autoescape=True)
    return lowered.endswith(text, autoescape=True)


def _to_sql(value: Any, column: Column) -> Any:
    if value is None:
        return None
    if column.type is ColumnType.json:
        return orjson.dumps(value).decode()
    return value


def _from_sql(value: Any, column: Column) -> Any:
    if value is None:
        return None
    if column.type is ColumnType.json:
        return orjson.loads(value)
    if column.type is ColumnType.number:
        return _number(value)
    if column.type is ColumnType.boolean:
        return bool(value)
    return value


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _new_storage() -> str:
    return f"c_{uuid.uuid4().hex[:10]}"


def _add_sql_column(conn: sa.Connection, table: str, column: sa.Column[Any]) -> None:
    conn.execute(sa.text(f"ALTER TABLE {_q(conn, table)} ADD COLUMN {_q(conn, column.name)} "
                         f"{column.type.compile(dialect=conn.dialect)}"))


def _q(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _dump(schema: TableSchema) -> Any:
    return schema.model_dump(mode="json")


def _schema(data: dict[str, Any]) -> TableSchema:
    try:
        return TableSchema.model_validate(data)
    except ValidationError as exc:
        raise TableError(plain_errors(exc)) from None


def _info(row: Any) -> TableInfo:
    return TableInfo(row.id, TableSchema.model_validate(row.definition), row.storage, row.created, row.updated,
                     row.version)
