"""The Tables pages in real Chromium against `flowboard serve`: a person creates a table, adds and edits rows in the
grid, filters, imports CSV (a bad file is refused line by line and changes nothing) and exports. What they did is
checked in the database the server writes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from flowboard.datatables import Condition
from flowboard.store import Store
from flowboard.store.datatables import DataTables
from tests.browser import browser, require_chromium, watched_tab  # noqa: F401
from tests.serve import Server

pytestmark = pytest.mark.browser
TIMEOUT = 30_000  # ms, for a loaded 2-core CI machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_chromium()
    srv = Server(tmp_path_factory.mktemp("tables-data"))
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser: Any, server: Server) -> Any:  # noqa: F811
    with watched_tab(browser, 1500, 900, timeout=TIMEOUT, downloads=True) as page:
        yield page


def tables_of(server: Server) -> DataTables:
    return DataTables(Store(f"sqlite:///{server.data_dir / 'flowboard.db'}", data_dir=server.data_dir).engine)


def eventually(check: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def cell(page: Any, row_id: int, column: str) -> Any:
    return page.locator(f'.ag-center-cols-container .ag-row[row-id="{row_id}"] .ag-cell[col-id="{column}"]')


def test_a_person_builds_and_fills_a_table(tab: Any, server: Server, tmp_path: Path) -> None:
    page = tab
    page.goto(server.url + "/tables")
    page.get_by_text("No tables yet").wait_for()
    page.get_by_role("button", name="New table").click()
    page.get_by_label("Table name").fill("Leave")
    page.get_by_label("Column name").first.fill("employee")
    page.get_by_role("button", name="Add a column").click()
    page.get_by_label("Column name").nth(1).fill("days_left")
    page.get_by_label("Holds").nth(1).click()
    page.get_by_role("option", name="Number").click()
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/table/*")
    page.get_by_text("Rows 0 to 0 of 0").wait_for()
    tables = tables_of(server)
    assert [c.name for c in tables.get("Leave").schema.columns] == ["employee", "days_left"]

    # Add two rows with the dialog; a row missing nothing required goes in, the grid shows it.
    for who, days in (("ada", "20"), ("bob", "2")):
        page.get_by_role("button", name="Add row").click()
        page.get_by_label("employee", exact=True).fill(who)
        page.get_by_label("days_left", exact=True).fill(days)
        page.get_by_role("button", name="Add", exact=True).click()
        page.get_by_text(who, exact=True).wait_for()
    page.get_by_text("Rows 1 to 2 of 2").wait_for()

    # Edit a cell in place: double-click, type, Enter; the database has it at once.
    cell(page, 2, "days_left").dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type("7")
    page.keyboard.press("Enter")
    eventually(lambda: _assert(tables.find("Leave", [Condition(column="employee", value="bob")])[0]["days_left"]
                               == 7))

    # Filter in plain words, then remove the filter.
    page.get_by_label("Column", exact=True).click()
    page.get_by_role("option", name="days_left").click()
    page.get_by_label("Condition", exact=True).click()
    page.get_by_role("option", name="is greater than", exact=True).click()
    page.get_by_label("Value", exact=True).fill("10")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("Rows 1 to 1 of 1 matching the filters").wait_for()
    cell(page, 2, "employee").wait_for(state="detached")  # the grid drops bob's row a moment after the count

    # Export the filtered view.
    with page.expect_download() as info:
        page.get_by_role("button", name="Export CSV").click()
    assert Path(info.value.path()).read_text().splitlines() == ["id,employee,days_left", "1,ada,20"]
    page.locator(".q-chip__icon--remove").click()
    page.get_by_text("Rows 1 to 2 of 2").wait_for()

    # CSV import: a bad line refuses the whole file, naming the line; the fixed file goes in.
    page.get_by_role("button", name="Import CSV").click()
    page.get_by_label("… or paste it here").fill("employee,days_left\ncy,4\ndan,lots\n")
    page.get_by_role("button", name="Check").click()
    page.get_by_text("line 3: days_left: 'lots' is not a number").wait_for()
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("nothing was written").wait_for()
    assert tables.count("Leave") == 2
    page.get_by_label("… or paste it here").fill("employee,days_left\ncy,4\ndan,5\n")
    page.get_by_role("button", name="Check").click()
    page.get_by_text("All 2 lines fit").wait_for()
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text("Rows 1 to 4 of 4").wait_for()
    assert sorted(r["employee"] for r in tables.find("Leave")) == ["ada", "bob", "cy", "dan"]

    # Delete ticked rows.
    page.locator('.ag-row[row-id="3"] .ag-selection-checkbox input').check()
    page.get_by_role("button", name="Delete selected").click()
    page.get_by_text("Rows 1 to 3 of 3").wait_for()
    assert sorted(r["employee"] for r in tables.find("Leave")) == ["ada", "bob", "dan"]
    page.screenshot(path=str(tmp_path / "table.png"))


def test_a_big_table_pages_from_the_database(tab: Any, server: Server, tmp_path: Path) -> None:
    tables = tables_of(server)
    from flowboard.datatables import Column, ColumnType, TableSchema

    info = tables.create(TableSchema(name="Big", columns=[Column(name="n", type=ColumnType.number),
                                                          Column(name="label")]))
    with tables.engine.begin() as conn:  # 20,000 rows straight into the SQL table: fast to set up
        table = tables._table(info)
        conn.execute(table.insert(), [{"_created": 0.0, "_updated": 0.0, info.schema.columns[0].storage: i,
                                       info.schema.columns[1].storage: f"row {i}"} for i in range(20_000)])
    page = tab
    page.goto(f"{server.url}/table/{info.id}")
    page.get_by_text("Rows 1 to 100 of 20,000").wait_for()
    page.locator(".q-pagination button", has_text="200").click()
    page.get_by_text("Rows 19,901 to 20,000 of 20,000").wait_for()
    cell(page, 19_901, "label").wait_for()  # the page's first row (the grid draws the rows in view)
    page.locator('.ag-header-cell[col-id="n"]').click()  # sort ascending: the database sorts all rows
    page.locator('.ag-header-cell[col-id="n"]').click()  # descending
    page.get_by_text("Rows 1 to 100 of 20,000").wait_for()
    cell(page, 20_000, "label").wait_for()
    assert cell(page, 20_000, "label").inner_text() == "row 19999"

    # "Fast sorting" keeps an index of the column: the database then sorts a deep page without reading every row.
    page.get_by_role("button", name="Columns").click()
    line = page.locator(".q-dialog .row.no-wrap", has=page.get_by_label("Fast sorting of n"))
    box = line.get_by_label("Fast sorting of n")
    box.click()  # not check(): the box shows its new state only when the server echoes it back (slow under load)
    expect(box).to_have_attribute("aria-checked", "true", timeout=30_000)
    page.screenshot(path=str(tmp_path / "columns.png"))
    line.get_by_role("button", name="Save").click()
    page.locator(".q-dialog").wait_for(state="detached")
    storage = tables.get("Big").schema.columns[0]
    assert storage.indexed
    with tables.engine.connect() as conn:
        indexed = [i["column_names"] for i in sa.inspect(conn).get_indexes(tables._table(tables.get("Big")).name)]
    assert [storage.storage] in indexed
    assert tables.count("Big") == 20_000  # every row kept through the change


def _assert(condition: bool) -> None:
    assert condition
