"""Data tables on real databases: every test runs on SQLite (a file) and on PostgreSQL (a schema of its own)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.datatables import Change, Column, ColumnType, Condition, Op, Sort, TableSchema, ValueInvalid, convert
from flowboard.store import Store
from flowboard.store.datatables import ChangeSource, DataTables, TableError, TableNotFound

from .test_store import BACKENDS, open_stores


@pytest.fixture(params=BACKENDS)
def tables(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DataTables]:
    for make in open_stores(request.param, tmp_path, monkeypatch):
        store: Store = make()
        yield DataTables(store.engine)


def employees(tables: DataTables, **extra: Any) -> str:
    tables.create(TableSchema(name="Employees", key="employee", columns=[
        Column(name="employee"), Column(name="days_left", type=ColumnType.number, default=0),
        Column(name="manager"), Column(name="team", type=ColumnType.choice, choices=["sales", "ops"]),
    ], **extra))
    tables.insert("Employees", [
        {"employee": "ada", "days_left": 20, "manager": "grace", "team": "ops"},
        {"employee": "bob", "days_left": 2, "manager": "ada", "team": "sales"},
        {"employee": "cy", "days_left": 0, "team": "sales"},
    ])
    return "Employees"


# -- values: each type takes what a person would type, and refuses the rest in words -----------------------------

VALUES = [
    (ColumnType.number, "42", 42), (ColumnType.number, "3.5", 3.5), (ColumnType.number, " -7 ", -7),
    (ColumnType.number, "1,234.5", 1234.5), (ColumnType.number, 10.0, 10), (ColumnType.number, 0, 0),
    (ColumnType.boolean, "yes", True), (ColumnType.boolean, "No", False), (ColumnType.boolean, 1, True),
    (ColumnType.boolean, "true", True), (ColumnType.boolean, False, False),
    (ColumnType.date, "2026-12-24", "2026-12-24"), (ColumnType.date, "24.12.2026", "2026-12-24"),
    (ColumnType.date, "2026-12-24T10:00:00", "2026-12-24"),
    (ColumnType.datetime, "2026-12-24 09:30", "2026-12-24T09:30:00Z"),
    (ColumnType.datetime, "2026-12-24T10:30:00+01:00", "2026-12-24T09:30:00Z"),
    (ColumnType.datetime, "2026-12-24T09:30:00Z", "2026-12-24T09:30:00Z"),
    (ColumnType.text, 12, "12"), (ColumnType.text, "", ""), (ColumnType.text, True, "true"),
    (ColumnType.json, '{"a": [1, 2]}', {"a": [1, 2]}), (ColumnType.json, [1, "x"], [1, "x"]),
    (ColumnType.user, "ada", "ada"), (ColumnType.number, "", None), (ColumnType.date, None, None),
]
BAD = [
    (ColumnType.number, "lots", "is not a number"), (ColumnType.number, "NaN", "is not a number"),
    (ColumnType.number, "inf", "is not a number"), (ColumnType.number, True, "is not a number"),
    (ColumnType.number, [1], "is not a number"), (ColumnType.boolean, "maybe", "is not yes or no"),
    (ColumnType.boolean, 2, "is not yes or no"), (ColumnType.date, "2026-13-40", "is not a date"),
    (ColumnType.date, "tomorrow", "is not a date"), (ColumnType.datetime, "noon", "is not a date and time"),
    (ColumnType.json, "{not json", "is not JSON data"), (ColumnType.text, {"a": 1}, "is not text"),
]


@pytest.mark.parametrize(("kind", "given", "stored"), VALUES)
def test_a_value_becomes_its_column_type(kind: ColumnType, given: Any, stored: Any) -> None:
    value = convert(given, Column(name="c", type=kind))
    assert value == stored and type(value) is type(stored)


@pytest.mark.parametrize(("kind", "given", "words"), BAD)
def test_a_value_that_does_not_fit_is_refused_in_words(kind: ColumnType, given: Any, words: str) -> None:
    with pytest.raises(ValueInvalid, match=f"^c: .*{words}"):
        convert(given, Column(name="c", type=kind))


def test_every_type_round_trips_through_the_database(tables: DataTables) -> None:
    columns = [Column(name=f"{k.value}_col", type=k, choices=["a"] if k is ColumnType.choice else [])
               for k in ColumnType]
    tables.create(TableSchema(name="All types", columns=columns))
    row = {"text_col": "hé ✓", "number_col": 2.25, "boolean_col": True, "date_col": "2026-01-31",
           "datetime_col": "2026-01-31T08:00:00Z", "choice_col": "a", "user_col": "ada", "json_col": {"x": [1, None]}}
    tables.insert("All types", [row])
    (found,) = tables.find("All types")
    assert {k: found[k] for k in row} == row
    empty = tables.insert("All types", [{}])[0]
    assert all(empty[c.name] is None for c in columns)


# -- tables and columns ------------------------------------------------------------------------------------------

def test_schema_mistakes_are_refused_with_the_reason() -> None:
    cases = [
        ({"name": "T", "columns": [{"name": "id"}]}, "kept for every row"),
        ({"name": "T", "columns": [{"name": "a"}, {"name": "A"}]}, "two columns are called"),
        ({"name": "T", "columns": [{"name": "a"}], "key": "b"}, "is not one of the columns"),
        ({"name": "T", "columns": [{"name": "c", "type": "choice"}]}, "needs at least one choice"),
        ({"name": "T", "columns": [{"name": "n", "type": "number", "default": "x"}]}, "is not a number"),
        ({"name": "", "columns": []}, "1 to 64 characters"),
    ]
    for data, words in cases:
        with pytest.raises(ValueError, match=words):
            TableSchema.model_validate(data)


def test_table_names_are_unique_and_tables_can_be_renamed_and_dropped(tables: DataTables) -> None:
    employees(tables)
    with pytest.raises(TableError, match="exists already"):
        tables.create(TableSchema(name="Employees"))
    tables.create(TableSchema(name="Other"))
    with pytest.raises(TableError, match="exists already"):
        tables.rename("Other", "Employees")
    tables.rename("Employees", "Staff")
    assert [r["employee"] for r in tables.find("Staff")] == ["ada", "bob", "cy"]
    tables.drop("Staff")
    with pytest.raises(TableNotFound, match="there is no data table called 'Staff'"):
        tables.find("Staff")
    assert [t.name for t in tables.list_tables()] == ["Other"]


def test_column_changes_never_lose_data_silently(tables: DataTables) -> None:
    name = employees(tables)
    with pytest.raises(TableError, match="needs a default value"):
        tables.add_column(name, Column(name="office", required=True))
    tables.add_column(name, Column(name="office", required=True, default="Berlin"))
    assert {r["office"] for r in tables.find(name)} == {"Berlin"}
    tables.rename_column(name, "manager", "approver")
    assert tables.find(name, [Condition(column="employee", value="ada")])[0]["approver"] == "grace"
    # Retyping checks every row first; a row that cannot convert refuses the change, named, and nothing changes.
    with pytest.raises(TableError, match=r"row 1: approver: 'grace' is not a number.*Nothing was changed"):
        tables.change_column(name, "approver", Column(name="approver", type=ColumnType.number))
    assert tables.find(name)[0]["approver"] == "grace"
    tables.change_column(name, "days_left", Column(name="days_left", type=ColumnType.text))
    assert [r["days_left"] for r in tables.find(name)] == ["20", "2", "0"]
    tables.change_column(name, "days_left", Column(name="days", type=ColumnType.number))
    assert [r["days"] for r in tables.find(name)] == [20, 2, 0]
    with pytest.raises(TableError, match="row 3: team: 'sales' is also in row 2"):
        tables.change_column(name, "team", Column(name="team", type=ColumnType.text, unique=True))
    with pytest.raises(TableError, match="key column"):
        tables.drop_column(name, "employee")
    tables.drop_column(name, "approver")
    assert "approver" not in tables.find(name)[0]
    assert [c.name for c in tables.get(name).schema.columns] == ["employee", "days", "team", "office"]


# -- rows --------------------------------------------------------------------------------------------------------

def test_inserts_are_all_or_nothing_and_name_every_problem(tables: DataTables) -> None:
    name = employees(tables)
    with pytest.raises(TableError) as caught:
        tables.insert(name, [{"employee": "dan", "days_left": 5}, {"employee": "eve", "days_left": "lots"},
                             {"days_left": 1, "nickname": "x"}, "not a row"])  # type: ignore[list-item]
    message = str(caught.value)
    assert "row 2: days_left: 'lots' is not a number" in message
    assert "row 3: nickname: there is no such column" in message and "row 3: employee: a value is required" in message
    assert "row 4: a row is a set of column values" in message
    with pytest.raises(TableError, match="employee: another row already has 'ada'"):
        tables.insert(name, [{"employee": "dan"}, {"employee": "ada"}])
    with pytest.raises(TableError, match="'boss' is not one of the choices"):
        tables.insert(name, [{"employee": "dan", "team": "boss"}])
    assert tables.count(name) == 3
    assert len(tables.changes()) == 3  # the refused inserts logged nothing


FINDS = [
    ([Condition(column="employee", value="ada")], ["ada"]),
    ([Condition(column="employee", op=Op.ne, value="ada")], ["bob", "cy"]),
    ([Condition(column="days_left", op=Op.gt, value=2)], ["ada"]),
    ([Condition(column="days_left", op=Op.ge, value="2")], ["ada", "bob"]),
    ([Condition(column="days_left", op=Op.lt, value=2)], ["cy"]),
    ([Condition(column="days_left", op=Op.le, value=2)], ["bob", "cy"]),
    ([Condition(column="manager", op=Op.contains, value="RAC")], ["ada"]),
    ([Condition(column="manager", op=Op.starts, value="a")], ["bob"]),
    ([Condition(column="manager", op=Op.ends, value="e")], ["ada"]),
    ([Condition(column="manager", op=Op.empty)], ["cy"]),
    ([Condition(column="manager", op=Op.not_empty)], ["ada", "bob"]),
    ([Condition(column="employee", op=Op.one_of, value="ada, cy")], ["ada", "cy"]),
    ([Condition(column="team", value="sales"), Condition(column="days_left", op=Op.gt, value=0)], ["bob"]),
    ([Condition(column="id", value=2)], ["bob"]),
    ([Condition(column="manager", op=Op.contains, value="%")], []),  # LIKE wildcards are plain text
]


@pytest.mark.parametrize(("conditions", "expected"), FINDS)
def test_find_by_each_kind_of_condition(tables: DataTables, conditions: list[Condition], expected: list[str]) -> None:
    name = employees(tables)
    assert [r["employee"] for r in tables.find(name, conditions)] == expected
    assert tables.count(name, conditions) == len(expected)


def test_find_sorts_pages_and_matches_any(tables: DataTables) -> None:
    name = employees(tables)
    by_days = tables.find(name, sort=[Sort(column="days_left", descending=True)])
    assert [r["employee"] for r in by_days] == ["ada", "bob", "cy"]
    assert [r["employee"] for r in tables.find(name, sort=[Sort(column="days_left")], limit=1, offset=1)] == ["bob"]
    either = [Condition(column="employee", value="cy"), Condition(column="manager", value="grace")]
    assert [r["employee"] for r in tables.find(name, either, match="any")] == ["ada", "cy"]
    with pytest.raises(TableError, match="condition 1: there is no column 'salary'"):
        tables.find(name, [Condition(column="salary", value=1)])
    with pytest.raises(TableError, match="condition 1: 'contains' works on text columns"):
        tables.find(name, [Condition(column="days_left", op=Op.contains, value=1)])
    with pytest.raises(TableError, match="condition 1: days_left: 'x' is not a number"):
        tables.find(name, [Condition(column="days_left", op=Op.gt, value="x")])


def test_a_deep_page_is_the_same_slice_of_the_whole_order(tables: DataTables) -> None:
    """Past the first thousand rows a page's row ids are found first (an index of a Fast sorting column has them):
    the rows are exactly those of the whole sorted list, ties in the row order in the sort's direction."""
    from flowboard.store.datatables import DEEP

    info = tables.create(TableSchema(name="Deep", columns=[Column(name="team"), Column(name="fast", indexed=True),
                                                           Column(name="n", type=ColumnType.number)]))
    with tables.engine.begin() as conn:  # straight into the SQL table: fast to set up
        team, fast, n = (c.storage for c in info.schema.columns)
        conn.execute(tables._table(info).insert(), [{"_created": 0.0, "_updated": 0.0, team: f"t{i % 7}",
                                                     fast: f"t{i % 7}", n: i} for i in range(DEEP + 600)])
    for column in ("team", "fast"):
        for descending in (False, True):
            sort = [Sort(column=column, descending=descending)]
            whole = [r["n"] for r in tables.find("Deep", sort=sort, limit=None)]
            assert len(whole) == DEEP + 600
            page = [r["n"] for r in tables.find("Deep", sort=sort, limit=100, offset=DEEP + 50)]
            assert page == whole[DEEP + 50:DEEP + 150], (column, descending)
            matching = [Condition(column="n", op=Op.ge, value=10)]
            some = [r["n"] for r in tables.find("Deep", matching, sort=sort, limit=None)]
            assert [r["n"] for r in tables.find("Deep", matching, sort=sort, limit=7, offset=DEEP + 5)] == \
                some[DEEP + 5:DEEP + 12]
    ties = [r["n"] for r in tables.find("Deep", sort=[Sort(column="fast", descending=True)], limit=3)]
    assert ties == sorted(ties, reverse=True)  # equal values: the newest row first when sorting down


def test_update_upsert_and_delete(tables: DataTables) -> None:
    name = employees(tables)
    updated = tables.update(name, [Condition(column="team", value="sales")], {"manager": "zoe"})
    assert sorted(r["employee"] for r in updated) == ["bob", "cy"]
    assert all(r["manager"] == "zoe" for r in updated)
    rows = tables.upsert(name, [{"employee": "bob", "days_left": 9}, {"employee": "dan", "team": "ops"}])
    assert [(r["employee"], r["days_left"]) for r in rows] == [("bob", 9), ("dan", 0)]
    assert tables.find(name, [Condition(column="employee", value="bob")])[0]["manager"] == "zoe"  # kept
    with pytest.raises(TableError, match="with no condition nothing is deleted"):
        tables.delete(name, [])
    gone = tables.delete(name, [Condition(column="days_left", op=Op.lt, value=1)])
    assert sorted(r["employee"] for r in gone) == ["cy", "dan"]
    assert [r["employee"] for r in tables.find(name)] == ["ada", "bob"]
    with pytest.raises(TableError, match="required"):
        tables.update(name, [Condition(column="employee", value="ada")], {"employee": None})


def test_every_change_is_in_the_outbox_with_old_and_new_rows(tables: DataTables) -> None:
    name = employees(tables)
    tables.update(name, [Condition(column="employee", value="bob")], {"days_left": 4},
                  ChangeSource(via="node", run_id="run-7", depth=1))
    tables.delete(name, [Condition(column="employee", value="cy")])
    changes = tables.changes()
    assert [c["op"] for c in changes] == ["insert", "insert", "insert", "update", "delete"]
    update = changes[3]
    assert update["old"]["days_left"] == 2 and update["new"]["days_left"] == 4
    assert (update["via"], update["run_id"], update["depth"]) == ("node", "run-7", 1)
    assert changes[4]["old"]["employee"] == "cy" and changes[4]["new"] is None
    assert [c["id"] for c in tables.changes(after=changes[2]["id"])] == [c["id"] for c in changes[3:]]


def test_concurrent_conditional_updates_never_overspend_a_balance(tables: DataTables) -> None:
    """50 requests of 3 days each against a balance of 100: exactly 33 apply, the balance ends at 1, never below."""
    tables.create(TableSchema(name="Leave", key="employee", columns=[
        Column(name="employee"), Column(name="days_left", type=ColumnType.number)]))
    tables.insert("Leave", [{"employee": "ada", "days_left": 100}])
    applied: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(10)

    def spend() -> None:
        try:
            barrier.wait()
            for _ in range(5):
                done = tables.conditional_update(
                    "Leave", [Condition(column="employee", value="ada"),
                              Condition(column="days_left", op=Op.ge, value=3)],
                    [Change(column="days_left", action="decrease by", value=3)])
                applied.append(len(done))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=spend) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(applied) == 33 and len(applied) == 50
    assert tables.find("Leave")[0]["days_left"] == 1
    balances = [c["new"]["days_left"] for c in tables.changes() if c["op"] == "update"]
    assert len(balances) == 33 and min(balances) == 1 and balances == sorted(balances, reverse=True)


def test_conditional_update_says_what_it_cannot_do(tables: DataTables) -> None:
    name = employees(tables)
    with pytest.raises(TableError, match="works on number columns only"):
        tables.conditional_update(name, [], [Change(column="manager", action="increase by", value=1)])
    with pytest.raises(TableError, match="there is no column 'salary'"):
        tables.conditional_update(name, [], [Change(column="salary", value=1)])
    done = tables.conditional_update(name, [Condition(column="employee", value="bob")],
                                     [Change(column="days_left", action="increase by", value="1.5")])
    assert done[0]["days_left"] == 3.5


# -- CSV ---------------------------------------------------------------------------------------------------------

def test_csv_import_checks_every_line_and_commits_all_or_nothing(tables: DataTables) -> None:
    name = employees(tables)
    bad = "employee,days_left,team\ndan,5,ops\neve,lots,ops\nada,1,sales\nfay,2,boss\ngus,3\n"
    for dry_run in (True, False):
        report = tables.import_csv(name, bad, dry_run=dry_run)
        assert not report.committed and report.inserted == 0 and report.rows == 5
        assert report.problems == [
            "line 3: days_left: 'lots' is not a number",
            "line 4: employee: another row already has 'ada', and every value in this column must be different",
            "line 5: team: 'boss' is not one of the choices (sales, ops)",
        ]
    assert tables.count(name) == 3
    good = "Name,Days\ndan,5\neve,7\n"
    mapping = {"Name": "employee", "Days": "days_left"}
    assert tables.import_csv(name, good, mapping=mapping).inserted == 2  # the dry run says what would happen
    assert tables.count(name) == 3
    report = tables.import_csv(name, good, mapping=mapping, dry_run=False)
    assert report.committed and report.inserted == 2
    upsert = tables.import_csv(name, "employee,days_left\ndan,6\nhal,1\n", dry_run=False, mode="upsert")
    assert upsert.committed and (upsert.inserted, upsert.updated) == (1, 1)
    assert tables.find(name, [Condition(column="employee", value="dan")])[0]["days_left"] == 6
    assert tables.import_csv(name, "").problems == ["the file is empty: the first line should name the columns"]
    assert "mapped to columns the table does not have" in tables.import_csv(name, good, mapping={"Name": "x"}
                                                                            ).problems[0]


def test_csv_export_of_a_filtered_view_imports_back(tables: DataTables) -> None:
    name = employees(tables)
    text = tables.export_csv(name, [Condition(column="team", value="sales")], [Sort(column="employee")])
    assert text.splitlines() == ["id,employee,days_left,manager,team", "2,bob,2,ada,sales", "3,cy,0,,sales"]
    tables.create(TableSchema(name="Copy", columns=[Column(name="employee"), Column(name="days_left", type="number"),
                                                   Column(name="manager"), Column(name="team")]))
    assert tables.import_csv("Copy", text, dry_run=False).committed
    assert [(r["employee"], r["days_left"], r["manager"]) for r in tables.find("Copy")] == [
        ("bob", 2, "ada"), ("cy", 0, None)]
