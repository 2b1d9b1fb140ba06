"""The Data table node and the Table change trigger in real flows, on a real Flowboard (SQLite in tmp_path; the
1,000-change test also on PostgreSQL, and once with `kill -9` of a server in the middle)."""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from flowboard.datatables import Column, ColumnType, Condition, TableSchema
from flowboard.engine import RunStatus
from flowboard.services import Flowboard
from flowboard.store import Store
from flowboard.store.datatables import DataTables
from flowboard.tables import MAX_DEPTH

from .serve import Server
from .test_store import PG_URL, _pg_admin


def make_employees(fb: Flowboard) -> None:
    fb.tables.tables.create(TableSchema(name="Employees", key="employee", columns=[
        Column(name="employee"), Column(name="days_left", type=ColumnType.number),
        Column(name="manager"), Column(name="status")]))
    fb.tables.tables.insert("Employees", [{"employee": "ada", "days_left": 20, "manager": "grace"},
                                          {"employee": "bob", "days_left": 2, "manager": "ada"}])


def table_flow(action: dict[str, Any], table: str = "Employees", flow_id: str = "t") -> dict[str, Any]:
    return {"id": flow_id, "name": f"Flow {flow_id}", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "table", "name": "Leave table", "type": "data.table", "config": {"table": table, "action": action}},
    ], "edges": [{"source": "start", "target": "table"}]}


async def run(fb: Flowboard, flow: dict[str, Any], items: list[dict[str, Any]]) -> Any:
    return await fb.run_draft(fb.parse(flow), items)


@pytest.fixture
async def fb(tmp_path: Path) -> Any:
    board = Flowboard(data_dir=tmp_path)
    make_employees(board)
    yield board
    await board.aclose()


async def test_the_node_finds_rows_for_each_item(fb: Flowboard) -> None:
    result = await run(fb, table_flow({"operation": "find", "conditions": [
        {"column": "employee", "op": "is", "value": "{{ item.who }}"}]}), [{"who": "ada"}, {"who": "bob"}])
    assert result.status is RunStatus.succeeded
    assert [(r["employee"], r["days_left"]) for r in result.output] == [("ada", 20), ("bob", 2)]


async def test_the_node_adds_changes_upserts_and_removes_rows(fb: Flowboard) -> None:
    added = await run(fb, table_flow({"operation": "insert"}), [
        {"employee": "cy", "days_left": 5, "not_a_column": "ignored"}, {"employee": "dan", "days_left": "7"}])
    assert added.status is RunStatus.succeeded and [r["id"] for r in added.output] == [3, 4]
    changed = await run(fb, table_flow({"operation": "update", "conditions": [
        {"column": "employee", "value": "{{ item.who }}"}], "values": [
        {"column": "status", "value": "away"}]}), [{"who": "cy"}])
    assert [r["status"] for r in changed.output] == ["away"]
    upserted = await run(fb, table_flow({"operation": "upsert", "values": [
        {"column": "employee", "value": "{{ item.who }}"}, {"column": "days_left", "value": "{{ item.days }}"}]}),
        [{"who": "cy", "days": 1}, {"who": "eve", "days": 9}])
    assert [(r["employee"], r["days_left"]) for r in upserted.output] == [("cy", 1), ("eve", 9)]
    removed = await run(fb, table_flow({"operation": "delete", "conditions": [
        {"column": "days_left", "op": "is less than", "value": 3}]}), [{}])
    assert sorted(r["employee"] for r in removed.output) == ["bob", "cy"]
    assert sorted(r["employee"] for r in fb.tables.tables.find("Employees")) == ["ada", "dan", "eve"]
    via = {c["via"] for c in fb.tables.tables.changes()[2:]}
    assert via == {"node"}


async def test_the_node_says_what_is_wrong_in_words(fb: Flowboard) -> None:
    cases = [
        (table_flow({"operation": "find"}, table="Staff"), [{}], "there is no data table called 'Staff'"),
        (table_flow({"operation": "insert"}), [{"employee": "ada"}], "another row already has 'ada'"),
        (table_flow({"operation": "insert", "values": [{"column": "days_left", "value": "lots"}]}), [{}],
         "days_left: 'lots' is not a number"),
        (table_flow({"operation": "find", "conditions": [{"column": "salary", "value": 1}]}), [{}],
         "there is no column 'salary'"),
    ]
    for flow, items, words in cases:
        result = await run(fb, flow, items)
        assert result.status is RunStatus.failed, words
        assert words in result.error["message"]
    assert fb.tables.tables.count("Employees") == 2  # nothing half-written


async def test_concurrent_runs_never_overspend_a_balance(fb: Flowboard) -> None:
    """20 runs at once, each asking for 3 of ada's 20 days: exactly 6 are granted, and 2 days remain."""
    flow = fb.parse(table_flow({"operation": "change", "conditions": [
        {"column": "employee", "value": "{{ item.employee }}"},
        {"column": "days_left", "op": "is greater than or equal to", "value": "{{ item.days }}"}],
        "changes": [{"column": "days_left", "action": "decrease by", "value": "{{ item.days }}"}]}))
    results = await asyncio.gather(*[fb.run_draft(flow, [{"employee": "ada", "days": 3}]) for _ in range(20)])
    assert all(r.status is RunStatus.succeeded for r in results)
    applied = [r.output[0]["applied"] for r in results]
    assert applied.count(True) == 6
    assert fb.tables.tables.find("Employees", [Condition(column="employee", value="ada")])[0]["days_left"] == 2


# -- the Table change trigger ------------------------------------------------------------------------------------

def watcher(flow_id: str, **config: Any) -> dict[str, Any]:
    return {"id": flow_id, "name": f"Watch {flow_id}", "nodes": [
        {"id": "changed", "type": "trigger.table", "config": {"table": "Employees", **config}},
        {"id": "note", "type": "data.set", "config": {"fields": [{"name": "seen", "value": True}]}},
    ], "edges": [{"source": "changed", "target": "note"}]}


async def finished_runs(store: Store, flow_id: str, count: int, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.list_runs(flow_id, limit=100_000)
        if len([r for r in runs if r.status.finished]) >= count:
            await asyncio.sleep(0.5)  # and no more come
            return list(reversed(store.list_runs(flow_id, limit=100_000)))
        await asyncio.sleep(0.05)
    raise AssertionError(f"flow {flow_id}: {len(store.list_runs(flow_id, limit=100_000))} runs, not {count}")


async def test_changes_from_every_source_start_the_flow_with_old_and_new_rows(fb: Flowboard) -> None:
    fb.import_flow(watcher("all"))
    fb.import_flow(watcher("updates", events=["update"], columns=["days_left"]))
    fb.import_flow(watcher("away", events=["update"], conditions=[{"column": "status", "value": "away"}]))
    for flow_id in ("all", "updates", "away"):
        fb.activate(flow_id)
    tables = fb.tables
    await tables.call("insert", "Employees", [{"employee": "cy", "days_left": 1}])  # the API / grid path
    await tables.call("update", "Employees", [Condition(column="employee", value="ada")], {"status": "away"})
    await tables.call("update", "Employees", [Condition(column="employee", value="bob")], {"days_left": 5})
    await run(fb, table_flow({"operation": "delete", "conditions": [{"column": "employee", "value": "cy"}]}), [{}])
    await tables.call("import_csv", "Employees", "employee,days_left\ndan,4\n", dry_run=False)
    every = await finished_runs(fb.store, "all", 5)
    items = sorted((r.input[0] for r in every), key=lambda i: i["change_id"])
    assert [(i["event"], i["row"]["employee"]) for i in items] == [
        ("insert", "cy"), ("update", "ada"), ("update", "bob"), ("delete", "cy"), ("insert", "dan")]
    assert [i["via"] for i in items] == ["api", "api", "api", "node", "import"]
    assert items[1]["old"]["status"] is None and items[1]["new"]["status"] == "away"
    assert items[1]["changed"] == ["status"] and items[3]["new"] is None
    assert all(r.status is RunStatus.succeeded and r.source == "table" for r in every)
    updates = await finished_runs(fb.store, "updates", 1)
    assert [r.input[0]["row"]["employee"] for r in updates] == ["bob"]  # ada's change was not to days_left
    away = await finished_runs(fb.store, "away", 1)
    assert [r.input[0]["row"]["employee"] for r in away] == ["ada"]


async def test_activation_names_a_missing_table_or_column(fb: Flowboard) -> None:
    from flowboard.errors import FlowInvalid

    fb.import_flow({**watcher("x"), "nodes": [{"id": "changed", "type": "trigger.table",
                                               "config": {"table": "Staff"}}], "edges": []})
    with pytest.raises(FlowInvalid, match="there is no data table called 'Staff'"):
        fb.activate("x")
    fb.import_flow(watcher("y", columns=["salary"]))
    with pytest.raises(FlowInvalid, match="there is no column 'salary' in Employees"):
        fb.activate("y")


async def test_a_flow_that_changes_the_table_it_watches_stops(fb: Flowboard) -> None:
    fb.import_flow({"id": "loop", "name": "Loop", "nodes": [
        {"id": "changed", "type": "trigger.table", "config": {"table": "Employees", "events": ["update"]}},
        {"id": "bump", "type": "data.table", "config": {"table": "Employees", "action": {
            "operation": "change", "conditions": [{"column": "employee", "value": "{{ item.row.employee }}"}],
            "changes": [{"column": "days_left", "action": "increase by", "value": 1}]}}},
    ], "edges": [{"source": "changed", "target": "bump"}]})
    fb.activate("loop")
    await fb.tables.call("update", "Employees", [Condition(column="employee", value="bob")], {"status": "x"})
    runs = await finished_runs(fb.store, "loop", MAX_DEPTH, timeout=20)
    await asyncio.sleep(1.0)
    assert len(fb.store.list_runs("loop")) == MAX_DEPTH
    assert [r.input[0]["depth"] for r in runs] == list(range(1, MAX_DEPTH + 1))
    assert fb.tables.tables.find("Employees", [Condition(column="employee", value="bob")])[0]["days_left"] == \
        2 + MAX_DEPTH


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_thousand_updates_start_exactly_a_thousand_runs(tmp_path: Path, backend: str) -> None:
    schema = None
    if backend == "postgresql":
        admin = _pg_admin()
        schema = f"tt_{uuid.uuid4().hex[:12]}"
        admin.execute(f"CREATE SCHEMA {schema}")
        board = Flowboard(data_dir=tmp_path, database=f"{PG_URL}?options=-csearch_path%3D{schema}")
    else:
        board = Flowboard(data_dir=tmp_path)
    try:
        make_employees(board)
        board.import_flow(watcher("count", events=["update"]))
        board.activate("count")
        for n in range(1000):
            await board.tables.call("update", "Employees", [Condition(column="employee", value="ada")],
                                    {"days_left": n})
        runs = await finished_runs(board.store, "count", 1000, timeout=120)
        assert len(runs) == 1000 and all(r.status is RunStatus.succeeded for r in runs)
        assert sorted(r.input[0]["new"]["days_left"] for r in runs) == list(range(1000))
    finally:
        await board.aclose()
        if schema is not None:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_a_killed_server_loses_and_repeats_no_change(tmp_path: Path, backend: str) -> None:
    """1,000 changes written by another process (this one); the server is killed (-9) while it starts their runs;
    after a restart every change has started exactly one run (1,000 runs, no more), and every run finished."""
    env, schema = {}, None
    url = f"sqlite:///{tmp_path / 'flowboard.db'}"
    if backend == "postgresql":
        admin = _pg_admin()
        schema = f"tk_{uuid.uuid4().hex[:12]}"
        admin.execute(f"CREATE SCHEMA {schema}")
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env = {"FLOWBOARD_DATABASE_URL": url}
    server: Server | None = None
    try:
        board = Flowboard(data_dir=tmp_path, database=url)
        make_employees(board)
        board.import_flow(watcher("count", events=["update"]))
        board.activate("count")  # as `flowboard activate` does: the trigger starts at the newest change, now
        await board.aclose()
        store = Store(url, data_dir=tmp_path)
        tables = DataTables(store.engine)
        server = Server(tmp_path, env=env)
        for n in range(1000):
            tables.update("Employees", [Condition(column="employee", value="ada")], {"days_left": n})
            if n == 500:
                while len(store.list_runs("count", limit=100_000)) < 100:
                    await asyncio.sleep(0.05)
                server.kill()
                assert 100 <= len(store.list_runs("count", limit=100_000)) < 1000  # killed mid-way
        server = Server(tmp_path, env=env)
        runs = await finished_runs(store, "count", 1000, timeout=180)
        counts = collections.Counter(r.input[0]["new"]["days_left"] for r in runs)
        assert len(runs) == 1000 and sorted(counts) == list(range(1000)) and set(counts.values()) == {1}
        assert all(r.status is RunStatus.succeeded for r in runs)
        store.close()
        server.stop()
        assert not server.errors(), server.output
    finally:
        if server is not None:
            server.stop()
        if schema is not None:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()


async def test_run_mode_skip_across_processes_records_no_run_while_one_goes(fb: Flowboard) -> None:
    """Where table-change and schedule triggers record their runs (one transaction with their claim): asked to
    decide run mode skip there (runs go to workers), a claim made while a run of the flow is queued or running moves
    on without recording a run; once no run goes, the next claim records one."""
    import sqlalchemy as sa

    from flowboard.store.tables import runs_t

    fb.import_flow(watcher("skipper", events=["update"]))
    fb.store.set_active("skipper", True)  # its triggers are not served here: the claims below are the only ones
    tables, store = fb.tables.tables, fb.store
    cursor = tables.trigger_cursor("skipper", "changed")
    store.create_run("going", "skipper", 1, "changed", [], "table", status="running", owner=None)
    assert tables.claim_changes("skipper", "changed", cursor, cursor + 1, [("r1", {"n": 1})], flow_version=1,
                                owner=None, idle_only=True) is None
    assert tables.trigger_cursor("skipper", "changed") == cursor + 1, "the skipped change is consumed"
    assert store.claim_schedule_fire("skipper", "changed", 100, run_id="r2", flow_version=1, idle_only=True) is None
    assert [f["run_id"] for f in store.schedule_fires("skipper")] == [None], "the tick is claimed, without a run"
    assert {r.id for r in store.list_runs("skipper")} == {"going"}
    with store.engine.begin() as conn:  # the run ends
        conn.execute(sa.update(runs_t).where(runs_t.c.id == "going").values(status="succeeded"))
    assert tables.claim_changes("skipper", "changed", cursor + 1, cursor + 2, [("r3", {"n": 3})], flow_version=1,
                                owner=None, idle_only=True) is True
    assert store.claim_schedule_fire("skipper", "changed", 101, run_id="r4", flow_version=1) is True
    assert {r.id for r in store.list_runs("skipper")} == {"going", "r3", "r4"}
