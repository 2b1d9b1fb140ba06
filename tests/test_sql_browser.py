"""The SQL node's form in real Chromium against `flowboard serve`: the table and column pickers list what the
database (a real SQLite file, named by a database connection credential) holds, and the statement the node will run
is shown under the form as the choices change."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.model import parse_flow
from flowboard.services import Flowboard
from tests.browser import browser, require_chromium  # noqa: F401
from tests.serve import Server
from tests.test_editor_browser import node

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    data = tmp_path_factory.mktemp("sql-form")
    crm = sqlite3.connect(data / "crm.db")
    crm.executescript("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
                      "CREATE TABLE deals (id INTEGER PRIMARY KEY, amount NUMERIC);")
    crm.close()
    fb = Flowboard(data_dir=data)
    fb.store.set_credential("CRM database", "db", {"kind": "sqlite", "database": str(data / "crm.db")})
    fb.store.save_flow(parse_flow({"id": "sql", "name": "People", "nodes": [  # not finished: no table yet
        {"id": "start", "type": "trigger.manual", "position": {"x": 0, "y": 0}},
        {"id": "people", "type": "sql.query", "version": 2, "position": {"x": 260, "y": 0},
         "config": {"credential": "CRM database", "action": {"operation": "find"}}}],
        "edges": [{"source": "start", "target": "people"}]}), expected_version=None)
    fb.store.close()
    srv = Server(data)
    yield srv
    srv.stop()
    assert not srv.errors(), srv.output


def pick(page: Any, field: str, option: str) -> None:
    """Open the inspector's picker titled `field` and choose `option` (offered only if the database has it)."""
    page.locator(f".fb-inspector .fb-field:has(> .fb-label-row .fb-label:text-is('{field}')) .q-select").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_the_pickers_list_the_databases_tables_and_columns_and_the_statement_is_shown(
        browser: Any, server: Server, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 1600, "height": 950})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/flow/sql")
    page.wait_for_function("window.__flowboardCanvasReady === true")
    node(page, "people").click()
    inspector = page.locator(".fb-inspector")
    page.screenshot(path=str(tmp_path / "sql-node.png"))
    inspector.locator('input[placeholder="Pick a table of the database"]').wait_for()

    pick(page, "Table", "people")  # listed from the database the credential names
    page.keyboard.press("Escape")
    page.locator(".fb-explain").wait_for()
    assert " ".join(page.locator(".fb-explain").inner_text().split()) == "SELECT * FROM people LIMIT :param_1"

    pick(page, "Columns", "name")  # a list of names picked from the table too
    page.keyboard.press("Escape")
    page.wait_for_function("document.querySelector('.fb-explain')?.innerText.includes('SELECT people.name')")

    inspector.get_by_role("button", name="Add condition").first.click()
    pick(page, "Column", "email")  # the chosen table's columns
    page.keyboard.press("Escape")
    page.wait_for_function("document.querySelector('.fb-explain')?.innerText.includes('WHERE people.email IS NULL')")
    page.screenshot(path=str(tmp_path / "sql-form.png"))
    context.close()
    assert not errors, errors
