"""`sql.query` through the real engine on SQLite, PostgreSQL and MariaDB: one uniquely named table per test."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from flowboard.engine import Engine, Plan, RunResult, RunStatus, build_plan
from flowboard.errors import FlowInvalid
from flowboard.model import parse_flow
from flowboard.registry import default_registry
from flowboard.sdk import Services

from .conftest import make_flow, require_service
from .test_store import SlowQuery

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"

# Per backend: the table, and a SELECT of typed literals with what the node must make of them.
DDL = {
    "sqlite": "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, amount NUMERIC(10, 2), "
              "born DATE, seen TIMESTAMP)",
    "postgres": "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, amount NUMERIC(10, 2), "
                "born DATE, seen TIMESTAMP)",
    "mariadb": "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, amount DECIMAL(10, 2), "
               "born DATE, seen DATETIME) ENGINE=InnoDB",
}
TYPED_SELECT = {
    "sqlite": "SELECT X'00FF10' AS raw, 1.5 AS f, 7 AS i, NULL AS empty",
    "postgres": "SELECT decode('00ff10', 'hex') AS raw, CAST(1.5 AS float8) AS f, 7 AS i, NULL AS empty, "
                "CAST('12:30:05' AS TIME) AS t, CAST('2024-02-29 13:45:00+02' AS TIMESTAMPTZ) AS tz, "
                "CAST('1 day 2 hours' AS INTERVAL) AS span, CAST('5f6c4b1e-8a52-4c7e-9d1f-0a2b3c4d5e6f' AS UUID) AS u, "
                "CAST('{\"a\": [1, 2.5]}' AS JSONB) AS doc, ARRAY[1, 2] AS arr",
    "mariadb": "SELECT UNHEX('00FF10') AS raw, CAST(1.5 AS DOUBLE) AS f, 7 AS i, NULL AS empty, "
               "CAST('12:30:05' AS TIME) AS t",
}
TYPED_EXPECTED: dict[str, dict[str, Any]] = {
    "sqlite": {"raw": "AP8Q", "f": 1.5, "i": 7, "empty": None},
    "postgres": {"raw": "AP8Q", "f": 1.5, "i": 7, "empty": None, "t": "12:30:05", "tz": "2024-02-29T11:45:00+00:00",
                 "span": 93600.0, "u": "5f6c4b1e-8a52-4c7e-9d1f-0a2b3c4d5e6f", "doc": {"a": [1, 2.5]},
                 "arr": [1, 2]},
    "mariadb": {"raw": "AP8Q", "f": 1.5, "i": 7, "empty": None, "t": 45005.0},
}


@dataclass
class Db:
    kind: str
    url: str
    table: str
    sa: sqlalchemy.Engine

    def count(self) -> int:
        with self.sa.connect() as conn:
            return int(conn.execute(sqlalchemy.text(f"SELECT COUNT(*) FROM {self.table}")).scalar_one())

    def exists(self) -> bool:
        return sqlalchemy.inspect(self.sa).has_table(self.table)


def _open(kind: str, url: str) -> sqlalchemy.Engine:
    sa = sqlalchemy.create_engine(url)
    try:
        with sa.connect():
            pass
    except sqlalchemy.exc.OperationalError:
        sa.dispose()
        require_service({"postgres": "PostgreSQL", "mariadb": "MariaDB"}[kind], False)
    return sa


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.mariadb),
])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    kind = request.param
    url = {"sqlite": f"sqlite:///{tmp_path / 'test.db'}", "postgres": PG_URL, "mariadb": MARIADB_URL}[kind]
    sa = _open(kind, url)
    table = f"fb_sql_{uuid.uuid4().hex[:12]}"
    with sa.begin() as conn:
        conn.execute(sqlalchemy.text(DDL[kind].format(t=table)))
    try:
        yield Db(kind, url, table, sa)
    finally:
        with sa.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP TABLE IF EXISTS {table}"))
        sa.dispose()


@pytest.fixture
async def engine(tmp_path: Path) -> Any:
    credentials = {"db": {"url": f"sqlite:///{tmp_path / 'cred.db'}"}, "empty": {"user": "x"}}
    eng = Engine(services=Services(credentials=credentials.get))
    yield eng
    await eng.aclose()


def plan(config: dict[str, Any]) -> Plan:
    flow = make_flow([{"id": "t", "type": "trigger.manual"}, {"id": "sql", "type": "sql.query", "config": config}],
                     [("t", "sql")])
    return build_plan(parse_flow(flow), default_registry())


async def run(engine: Engine, config: dict[str, Any], items: list[dict[str, Any]] | None = None) -> RunResult:
    return await engine.run(plan(config), items if items is not None else [{}])


async def ok(engine: Engine, config: dict[str, Any], items: list[dict[str, Any]] | None = None) -> list[Any]:
    result = await run(engine, config, items)
    assert result.status is RunStatus.succeeded, result.error
    return result.output


async def failed(engine: Engine, config: dict[str, Any], items: list[dict[str, Any]] | None = None) -> dict:
    result = await run(engine, config, items)
    assert result.status is RunStatus.failed, result.output
    assert result.error is not None
    return result.error


PEOPLE = [
    {"id": 1, "name": "Ada", "amount": 12.5, "born": "1815-12-10", "seen": "2024-02-29 13:45:00"},
    {"id": 2, "name": "Bob", "amount": 0.1, "born": "1990-01-31", "seen": "2024-03-01 08:00:00"},
    {"id": 3, "name": "Cy", "amount": 1000, "born": "2000-02-29", "seen": "2024-03-02 23:59:59"},
]


def insert(db: Db, **extra: Any) -> dict[str, Any]:
    return {"url": db.url, "query": f"INSERT INTO {db.table} (id, name, amount, born, seen) "
                                    "VALUES (:id, :name, :amount, :born, :seen)",
            "parameters": {k: f"{{{{ item.{k} }}}}" for k in ("id", "name", "amount", "born", "seen")}, **extra}


# -- the three backends -------------------------------------------------------------------------------------------


async def test_insert_per_item_then_select_rows_as_items(engine: Engine, db: Db) -> None:
    out = await ok(engine, insert(db), PEOPLE)
    assert out == [{"rows_affected": 1}] * 3
    rows = await ok(engine, {"url": db.url, "query": f"SELECT id, name, amount, born, seen FROM {db.table} "
                                                     "ORDER BY id", "mode": "once"}, PEOPLE)
    assert [r["name"] for r in rows] == ["Ada", "Bob", "Cy"]
    json.dumps(rows)  # JSON-safe
    if db.kind == "sqlite":  # no date or decimal types: what went in comes out
        assert rows[0] == {"id": 1, "name": "Ada", "amount": 12.5, "born": "1815-12-10", "seen": "2024-02-29 13:45:00"}
    else:  # exact decimals as text, dates as ISO 8601
        assert rows[0] == {"id": 1, "name": "Ada", "amount": "12.50", "born": "1815-12-10",
                           "seen": "2024-02-29T13:45:00"}
        assert [r["amount"] for r in rows] == ["12.50", "0.10", "1000.00"]


async def test_a_failing_item_rolls_back_every_item(engine: Engine, db: Db) -> None:
    items = [PEOPLE[0], PEOPLE[1], {**PEOPLE[2], "id": 1}]  # the third repeats the first one's primary key
    error = await failed(engine, insert(db), items)
    assert error["item_index"] == 2
    assert any(word in error["message"] for word in ("UNIQUE", "duplicate", "Duplicate")), error["message"]
    assert error["message"].endswith("the statements of items 0 to 1 were rolled back, nothing was saved")
    assert "[SQL:" not in error["message"] and "INSERT" not in error["message"]
    assert db.count() == 0


async def test_injection_is_stored_literally(engine: Engine, db: Db) -> None:
    evil = f"'; DROP TABLE {db.table}; --"
    await ok(engine, insert(db), [{**PEOPLE[0], "name": evil}, {**PEOPLE[1], "name": 'Robert"); --'}])
    assert db.exists()
    rows = await ok(engine, {"url": db.url, "query": f"SELECT name FROM {db.table} WHERE name = :name",
                             "parameters": {"name": "{{ item.name }}"}}, [{"name": evil}])
    assert rows == [{"name": evil}]
    assert db.count() == 2


async def test_json_safe_types(engine: Engine, db: Db) -> None:
    [row] = await ok(engine, {"url": db.url, "query": TYPED_SELECT[db.kind]})
    assert row == TYPED_EXPECTED[db.kind]
    await ok(engine, insert(db), PEOPLE)
    [row] = await ok(engine, {"url": db.url, "query": f"SELECT SUM(id) AS total, COUNT(*) AS n FROM {db.table}"})
    assert row == {"total": 6, "n": 3}  # an integral DECIMAL (PostgreSQL and MariaDB SUM) is a whole number
    assert json.loads(json.dumps(row)) == row


async def test_per_item_select_and_output_modes(engine: Engine, db: Db) -> None:
    await ok(engine, insert(db), PEOPLE)
    select = {"url": db.url, "query": f"SELECT id, name FROM {db.table} WHERE id >= :id ORDER BY id",
              "parameters": {"id": "{{ item.id }}"}}
    items = [{"id": 2}, {"id": 3}, {"id": 9}]
    assert await ok(engine, select, items) == [{"id": 2, "name": "Bob"}, {"id": 3, "name": "Cy"},
                                               {"id": 3, "name": "Cy"}]
    assert await ok(engine, {**select, "output": "first_row"}, items) == [{"id": 2, "name": "Bob"},
                                                                           {"id": 3, "name": "Cy"}]
    assert await ok(engine, {**select, "output": "summary"}, items) == [{"rows_affected": n} for n in (2, 1, 0)]
    assert await ok(engine, {**select, "mode": "once"}, items) == [{"id": 2, "name": "Bob"}, {"id": 3, "name": "Cy"}]
    update = {"url": db.url, "query": f"UPDATE {db.table} SET name = :name WHERE id <= :id",
              "parameters": {"name": "x", "id": 2}, "mode": "once", "output": "rows"}
    assert await ok(engine, update, [{}, {}]) == [{"rows_affected": 2}]


async def test_bad_sql_fails_with_the_drivers_short_message(engine: Engine, db: Db) -> None:
    error = await failed(engine, {"url": db.url, "query": f"SELEC name FROM {db.table}"})
    expected = {"sqlite": 'near "SELEC": syntax error', "postgres": 'syntax error at or near "SELEC"',
                "mariadb": "You have an error in your SQL syntax"}[db.kind]
    assert expected in error["message"]
    assert "\n" not in error["message"] and "sqlalche.me" not in error["message"]
    assert len(error["message"]) <= 300


#: A statement that runs for 30 s (SQLite: forever, inserting rows and holding the write lock), with a marker to find
#: it in the database's list of running statements.
ENDLESS = {
    "sqlite": "INSERT INTO {t} (id, name) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
              "SELECT x, '{m}' FROM c",
    "postgres": "SELECT pg_sleep(30) IS NULL AS slept /* {m} */",
    "mariadb": "SELECT SLEEP(30) AS slept /* {m} */",
}


def still_running(db: Db, marker: str) -> int:
    """Statements with `marker` that the database is still running (for SQLite: whether the write lock is held)."""
    with db.sa.connect() as conn:
        if db.kind == "postgres":
            return int(conn.execute(sqlalchemy.text(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE :m "
                "AND pid <> pg_backend_pid()"), {"m": f"%{marker}%"}).scalar_one())
        if db.kind == "mariadb":
            return int(conn.execute(sqlalchemy.text(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE :m AND ID <> CONNECTION_ID()"),
                {"m": f"%{marker}%"}).scalar_one())
    raw = sqlite3.connect(db.url.removeprefix("sqlite:///"), timeout=0)  # no waiting: a held lock fails at once
    try:
        raw.execute(f"INSERT INTO {db.table} (id, name) VALUES (-1, 'after')")
        raw.commit()
        return 0
    except sqlite3.OperationalError:
        return 1
    finally:
        raw.close()


async def test_a_timed_out_statement_is_cancelled_in_the_database_and_not_retried(engine: Engine, db: Db) -> None:
    marker = f"fb_cancel_{uuid.uuid4().hex[:10]}"
    flow = make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "sql", "type": "sql.query", "settings": {"timeout": 1, "retries": 2},
                       "config": {"url": db.url, "query": ENDLESS[db.kind].format(t=db.table, m=marker)}}],
                     [("t", "sql")])
    result = await engine.run(build_plan(parse_flow(flow), default_registry()), [{}])
    assert result.status is RunStatus.failed
    step = result.steps["sql"]
    assert step.error is not None and step.error["message"].startswith("timed out after 1 s; not retried")
    assert step.attempt == 1  # a statement with side effects may have done its work: never run twice
    assert still_running(db, marker) == 0
    if db.kind == "sqlite":  # the endless insert was rolled back, and the table takes writes at once
        with db.sa.connect() as conn:
            names = conn.execute(sqlalchemy.text(f"SELECT name FROM {db.table}")).scalars().all()
        assert names == ["after"]


async def test_closing_while_a_statement_runs_closes_its_connection_when_it_ends(db: Db) -> None:
    """The app stops (its services close) while a SQL node's statement still runs in a thread: the statement ends with
    its answer, and its connection is closed then, not left open for the garbage collector to find at some later
    moment (psycopg warns of each such connection then)."""
    services = Services()
    query = await asyncio.to_thread(SlowQuery(services.database(db.url)).begin)
    await services.aclose()
    await asyncio.to_thread(query.join, 30)
    assert query.answer == 7
    with pytest.raises(Exception):  # noqa: B017 (each driver has its own error for a closed connection)
        query.raw.cursor().execute("SELECT 1")


# -- PostgreSQL only ----------------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_the_event_loop_keeps_running_during_a_slow_query(engine: Engine) -> None:
    _open("postgres", PG_URL).dispose()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        out = await ok(engine, {"url": PG_URL, "query": "SELECT pg_sleep(0.4) IS NULL AS slept"})
    finally:
        task.cancel()
    assert out == [{"slept": False}]
    assert ticks >= 15, f"the event loop ticked {ticks} times in 400 ms: the query blocked it"


# -- configuration and connection errors (SQLite or nothing at all) ----------------------------------------------


@pytest.mark.parametrize(("url", "message"), [
    ("nosuchdb://x/y", "names an unknown database or driver 'nosuchdb'"),
    ("not a url", "is not a database URL"),
    ("postgresql+asyncpg://u:pw@h/db", "names the asynchronous driver 'postgresql+asyncpg'"),
    ("mysql://root:pw@127.0.0.1/test", "needs the Python package MySQLdb, which is not installed"),
    ("sqlite://", "is an in-memory SQLite database"),
])
def test_bad_url_is_reported_at_the_field(url: str, message: str) -> None:
    with pytest.raises(FlowInvalid) as caught:
        plan({"url": url, "query": "SELECT 1"})
    [problem] = caught.value.problems
    assert problem.loc == "nodes[1].config.url"
    assert problem.message.startswith(message)
    assert "pw" not in problem.message


def test_parameters_must_match_the_query() -> None:
    with pytest.raises(FlowInvalid, match="the query uses :b, but `parameters` has no value for it"):
        plan({"url": "sqlite:///never-created.db", "query": "SELECT :a, :b", "parameters": {"a": 1}})
    with pytest.raises(FlowInvalid, match=r"parameters.c is not used by the query \(its parameters: :a\)"):
        plan({"url": "sqlite:///never-created.db", "query": "SELECT :a", "parameters": {"a": 1, "c": 2}})
    with pytest.raises(FlowInvalid, match=r"set `url` .* or `credential`"):
        plan({"query": "SELECT 1"})


async def test_connection_refused_names_the_url_without_password(engine: Engine) -> None:
    error = await failed(engine, {"url": "postgresql+psycopg://postgres:topsecret@127.0.0.1:1/test",
                                  "query": "SELECT 1"})
    assert error["field"] == "url"
    assert error["message"].startswith("could not connect to postgresql+psycopg://postgres:***@127.0.0.1:1/test: ")
    assert "topsecret" not in json.dumps(error)


async def test_database_url_from_a_credential(engine: Engine) -> None:
    assert await ok(engine, {"credential": "db", "query": "SELECT :x + 1 AS y", "parameters": {"x": "{{ item.x }}"}},
                    [{"x": 1}, {"x": 41}]) == [{"y": 2}, {"y": 42}]
    error = await failed(engine, {"credential": "empty", "query": "SELECT 1"})
    assert error == {"message": "credential 'empty' is not a database connection or a database URL",
                     "field": "credential", "node_id": "sql"}


def test_expressions_in_the_sql_text_are_refused_with_the_fix() -> None:
    flow = make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "q", "type": "sql.query", "config": {
                          "url": "sqlite:///x.db", "query": "SELECT * FROM users WHERE email = '{{ item.email }}'"}}],
                     [("t", "q")])
    with pytest.raises(FlowInvalid) as info:
        build_plan(parse_flow(flow), default_registry())
    [problem] = info.value.problems
    assert problem.loc == "nodes[1].config.query"
    assert problem.message.startswith("expressions are not allowed here; put values in `parameters` as `:name`")


# -- version 2: the statement written from the table's columns ------------------------------------------------------


def built(db: Db, action: dict[str, Any], table: str | None = None) -> Plan:
    config = {"url": db.url, "table": table or db.table, "action": action}
    flow = make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "sql", "type": "sql.query", "version": 2, "config": config}], [("t", "sql")])
    return build_plan(parse_flow(flow), default_registry())


async def run2(engine: Engine, db: Db, action: dict[str, Any], items: list[dict[str, Any]] | None = None,
               table: str | None = None) -> RunResult:
    return await engine.run(built(db, action, table), items if items is not None else [{}])


async def ok2(engine: Engine, db: Db, action: dict[str, Any], items: list[dict[str, Any]] | None = None) -> list[Any]:
    result = await run2(engine, db, action, items)
    assert result.status is RunStatus.succeeded, result.error
    return result.output


def rows_of(db: Db) -> list[tuple[Any, ...]]:
    with db.sa.connect() as conn:
        return [tuple(r) for r in conn.execute(sqlalchemy.text(f"SELECT id, name FROM {db.table} ORDER BY id"))]


async def test_add_find_change_upsert_and_remove_without_writing_sql(engine: Engine, db: Db) -> None:
    people = [{**p, "not_a_column": "ignored"} for p in PEOPLE]
    assert await ok2(engine, db, {"operation": "insert"}, people) == [{"rows_affected": 1}] * 3
    assert rows_of(db) == [(1, "Ada"), (2, "Bob"), (3, "Cy")]

    found = await ok2(engine, db, {"operation": "find", "columns": ["id", "name"], "conditions": [
        {"column": "amount", "op": "is greater than or equal to", "value": "{{ item.least }}"}],
        "sort": [{"column": "id", "descending": True}]}, [{"least": 1}, {"least": 100}])
    assert found == [{"id": 3, "name": "Cy"}, {"id": 1, "name": "Ada"}, {"id": 3, "name": "Cy"}]  # per item
    assert await ok2(engine, db, {"operation": "find", "columns": ["name"], "match": "any", "conditions": [
        {"column": "name", "op": "starts with", "value": "B"}, {"column": "id", "op": "is one of", "value": [3]}],
        "limit": 1, "sort": [{"column": "name"}]}) == [{"name": "Bob"}]

    changed = await ok2(engine, db, {"operation": "update", "conditions": [
        {"column": "id", "value": "{{ item.id }}"}], "values": [{"column": "name", "value": "{{ item.name }}"}]},
        [{"id": 2, "name": "Bobby"}, {"id": 9, "name": "Nobody"}])
    assert changed == [{"rows_affected": 1}, {"rows_affected": 0}]

    upsert = {"operation": "upsert", "keys": ["id"], "values": [
        {"column": "id", "value": "{{ item.id }}"}, {"column": "name", "value": "{{ item.name }}"}]}
    await ok2(engine, db, upsert, [{"id": 3, "name": "Cyrus"}, {"id": 4, "name": "Dee"}])
    await ok2(engine, db, {"operation": "upsert", "keys": ["id"]}, [{"id": 5, "name": "Eve"}, {"id": 4,
                                                                                               "name": "Dora"}])
    assert rows_of(db) == [(1, "Ada"), (2, "Bobby"), (3, "Cyrus"), (4, "Dora"), (5, "Eve")]

    removed = await ok2(engine, db, {"operation": "delete", "conditions": [
        {"column": "name", "op": "contains", "value": "o"}, {"column": "id", "op": "is greater than", "value": 3}]})
    assert removed == [{"rows_affected": 1}]  # Dora: both conditions
    assert [r[1] for r in rows_of(db)] == ["Ada", "Bobby", "Cyrus", "Eve"]


async def test_values_and_patterns_are_parameters_never_sql(engine: Engine, db: Db) -> None:
    evil = f"'; DROP TABLE {db.table}; --"
    await ok2(engine, db, {"operation": "insert", "values": [
        {"column": "id", "value": "{{ item.id }}"}, {"column": "name", "value": "{{ item.name }}"}]},
        [{"id": 1, "name": evil}, {"id": 2, "name": "100% off_sale"}, {"id": 3, "name": "100 offXsale"}])
    assert db.exists()
    found = await ok2(engine, db, {"operation": "find", "columns": ["id"], "conditions": [
        {"column": "name", "op": "contains", "value": "% off_"}]})
    assert found == [{"id": 2}]  # % and _ are letters here, not wildcards
    assert await ok2(engine, db, {"operation": "find", "columns": ["id"], "conditions": [
        {"column": "name", "value": evil}]}) == [{"id": 1}]


async def test_a_failing_item_keeps_nothing_and_mistakes_are_named(engine: Engine, db: Db) -> None:
    result = await run2(engine, db, {"operation": "insert"}, [PEOPLE[0], PEOPLE[1], {**PEOPLE[2], "id": 1}])
    assert result.status is RunStatus.failed and result.error["item_index"] == 2
    assert result.error["message"].endswith("the statements of items 0 to 1 were rolled back, nothing was saved")
    assert db.count() == 0

    missing = await run2(engine, db, {"operation": "find"}, table="no_such_table")
    assert missing.status is RunStatus.failed
    assert missing.error["message"].startswith("the database has no table 'no_such_table' (its tables: ")
    assert db.table in missing.error["message"] and missing.error["field"] == "table"

    column = await run2(engine, db, {"operation": "find", "conditions": [{"column": "salary", "value": 1}]})
    assert column.status is RunStatus.failed
    assert column.error["message"].startswith(f"the table {db.table!r} has no column 'salary' (its columns: id, ")

    nothing = await run2(engine, db, {"operation": "insert"}, [{"colour": "red"}])
    assert "has no field named like a column" in nothing.error["message"]


def test_the_statement_is_written_for_each_database_and_shown() -> None:
    from flowboard.registry import default_registry

    node = default_registry().get("sql.query")
    assert node is not None and node.version == 2
    config = node.Config(credential="crm", table="people", action={
        "operation": "upsert", "keys": ["email"], "values": [{"column": "email", "value": "{{ item.email }}"},
                                                            {"column": "name", "value": "{{ item.name }}"}]})
    assert node.explain(config, "postgresql") == ("INSERT INTO people (email, name) VALUES (:email, :name) "
                                                  "ON CONFLICT (email) DO UPDATE SET name = excluded.name")
    assert node.explain(config, "mysql").endswith("ON DUPLICATE KEY UPDATE name = VALUES(name)")
    find = node.Config(url="sqlite:///x.db", table="people", action={"operation": "find", "conditions": [
        {"column": "email", "op": "is", "value": "{{ item.email }}"}]})
    assert " ".join(node.explain(find).split()) == "SELECT * FROM people WHERE people.email = :email_1 " \
                                                   "LIMIT :param_1 OFFSET :param_2"
    with pytest.raises(ValueError, match=r"pick the table \(`table`\)"):
        node.Config(url="sqlite:///x.db", action={"operation": "find"})


def test_the_editor_lists_a_databases_tables_and_columns(db: Db, tmp_path: Path) -> None:
    from flowboard.databases import DatabaseUnreadable, database_of, names_in

    assert db.table in names_in(db.url)
    assert names_in(db.url, db.table) == ["id", "name", "amount", "born", "seen"]
    with pytest.raises(DatabaseUnreadable, match="the database has no table 'no_such_table'"):
        names_in(db.url, "no_such_table")
    assert database_of({"credential": "crm"}, {"crm": {"url": db.url}}.get) == db.url
    with pytest.raises(DatabaseUnreadable, match="choose the database first"):
        database_of({}, {}.get)


def test_a_database_that_cannot_be_read_is_said_in_words_without_its_password(tmp_path: Path) -> None:
    from flowboard.databases import DatabaseUnreadable, names_in

    with pytest.raises(DatabaseUnreadable) as info:
        names_in("postgresql+psycopg://ada:topsecret@127.0.0.1:1/test")
    assert str(info.value).startswith("could not read postgresql+psycopg://ada:***@127.0.0.1:1/test: ")
    assert "topsecret" not in str(info.value)
    missing = tmp_path / "typo.db"
    with pytest.raises(DatabaseUnreadable):
        names_in(f"sqlite:///{missing}")
    assert not missing.exists()  # read only: a mistyped path makes no new database
