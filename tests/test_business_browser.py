"""The invoice, CRM-to-invoices and customer-hub flows end to end in real Chromium, against `flowboard serve`.

Each data folder is set up as a person would (tests/test_people_browser.py's `Office`: `prepare()` as `flowboard demo`
does, users added and the flow imported and switched on with the command line). The stand-in APIs of `flowboard demo`
run in this test process on their fixed ports, and what they received is the check. Every flow is also opened in the
editor and must draw all its nodes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flowboard.demo import DemoServer

from .clihelp import flowboard, flowboard_here, result_json
from .serve import Server
from .test_people_browser import PASSWORDS, Chromium, Office, chromium, sign_in  # noqa: F401

pytestmark = pytest.mark.browser

FLOWS = Path(__file__).resolve().parent.parent / "flows"
BOSS = ("boss", ["admin"])
APPROVERS = (BOSS, ("grace", ["approver"]), ("ada", ["approver"]), ("linus", ["approver"]))


def eventually(check: Callable[[], Any], timeout: float = 60) -> Any:
    """`check()`'s value once it no longer fails an assertion."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def sign_in_as_admin(browser: Chromium, office: Office) -> Any:
    page = browser.tab()
    page.set_viewport_size({"width": 1500, "height": 900})
    page.goto(office.server.url + "/login")
    page.get_by_label("User name").fill("boss")
    page.get_by_label("Password").fill(PASSWORDS["boss"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def open_in_editor(page: Any, office: Office) -> None:
    """The stored flow opens in the editor with every node of its file on the canvas."""
    nodes = [n["id"] for n in json.loads((FLOWS / f"{office.flow}.json").read_text())["nodes"]]
    page.goto(f"{office.server.url}/flow/{office.flow}")
    page.wait_for_function("window.__flowboardCanvasReady === true")
    for node_id in nodes:
        page.locator(f'.vue-flow__node[data-id="{node_id}"]').wait_for()
    assert page.locator(".vue-flow__node").count() == len(nodes)


def open_table(page: Any, office: Office, table: str) -> None:
    page.goto(office.server.url + "/tables")
    page.get_by_role("link", name=table, exact=True).click()
    page.wait_for_url("**/table/*")
    page.locator(".ag-center-cols-container .ag-row").first.wait_for()


def edit_cell(page: Any, row_id: int, column: str, value: str) -> None:
    """Double-click a cell of the open grid, type the value, Enter (as a person edits it)."""
    cell = page.locator(f'.ag-center-cols-container .ag-row[row-id="{row_id}"] .ag-cell[col-id="{column}"]')
    cell.dblclick()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")


def send_invoice(browser: Chromium, office: Office, number: str, amount: int, tasks: int = 1) -> str:
    """eve (not a user: the form is public) sends an invoice; returns the run, once its `tasks` approval tasks exist
    (the Approval node makes one per approver, one after the other)."""
    before = {t["id"] for t in office.tasks()}
    page = browser.tab()
    page.goto(office.server.url + "/form/invoice")
    for label, value in (("Invoice number", number), ("Supplier", "Paper & Co"), ("Amount (EUR)", str(amount)),
                         ("Your user name", "eve"), ("Your email", "eve@example.com")):
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Send for approval").click()
    page.wait_for_selector("text=The invoice is with its approvers")
    page.context.close()
    new = eventually(lambda: _count([t for t in office.tasks() if t["id"] not in before], tasks))
    assert len({t["run_id"] for t in new}) == 1, new
    return str(new[0]["run_id"])


def approve_in_inbox(browser: Chromium, office: Office, who: str, title: str) -> None:
    page = sign_in(browser, office, who)
    card = page.locator(".q-card", has_text=title)
    card.get_by_role("button", name="Approve").click()
    page.wait_for_selector(f"text=Recorded: approved by {who}")
    page.context.close()


def _count(found: list[Any], count: int) -> list[Any]:
    assert len(found) >= count, found
    return found


def test_every_example_flow_opens_in_the_editor(tmp_path: Path, chromium: Chromium) -> None:  # noqa: F811
    """All four business flows, imported with `flowboard import` into a folder `flowboard demo` prepared: each draws
    every node of its file, with no problem to fix before it can run."""
    from flowboard.demo import prepare
    from flowboard.services import Flowboard

    fb = Flowboard(data_dir=tmp_path)
    try:
        prepare(fb)
    finally:
        fb.store.close()
    names = sorted(p.stem for p in FLOWS.glob("*.json"))
    assert len(names) == 4
    for name in names:
        done = flowboard_here(tmp_path, "import", str(FLOWS / f"{name}.json"))
        assert done.returncode == 0, done.stderr
    server = Server(tmp_path)
    page = chromium.tab()
    try:
        page.set_viewport_size({"width": 1500, "height": 900})
        for name in names:
            nodes = [n["id"] for n in json.loads((FLOWS / f"{name}.json").read_text())["nodes"]]
            page.goto(f"{server.url}/flow/{name}")
            page.wait_for_function("window.__flowboardCanvasReady === true")
            for node_id in nodes:
                page.locator(f'.vue-flow__node[data-id="{node_id}"]').wait_for()
            assert page.locator(".vue-flow__node").count() == len(nodes)
            assert page.get_by_text("problem to fix before it can run").count() == 0, name
            assert page.get_by_text("problems to fix before it can run").count() == 0, name
    finally:
        page.context.close()  # before the server goes: a page left open would report its lost connection
        server.stop()
    assert not server.errors(), server.output


def test_invoice_one_approver_then_a_rule_row_changed_in_the_grid_reroutes_the_next(
        tmp_path: Path, stand_ins: DemoServer, chromium: Chromium) -> None:  # noqa: F811
    stand_ins.state.reset()
    office = Office(tmp_path, stand_ins, "invoice-approval", APPROVERS)
    try:
        admin = sign_in_as_admin(chromium, office)
        open_in_editor(admin, office)

        small = send_invoice(chromium, office, "INV-1", 800)  # under 5,000: grace alone
        assert [t["assignees"] for t in office.tasks() if t["run_id"] == small] == [["grace"]]
        approve_in_inbox(chromium, office, "grace", "Invoice INV-1 from Paper & Co")
        assert office.wait_until_finished(small)["status"] == "succeeded"
        assert [e["invoice"] for e in stand_ins.state.entries] == ["INV-1"]
        assert [m["subject"] for m in office.mails("eve@example.com")] == ["Invoice INV-1 is approved"]

        big = send_invoice(chromium, office, "INV-2", 12_000, tasks=3)  # above: two of three
        assert sorted(t["assignees"][0] for t in office.tasks() if t["run_id"] == big) == ["ada", "grace", "linus"]

        # A non-developer raises the threshold to 20,000 in the Invoice rules grid: two cells.
        open_table(admin, office, "Invoice rules")
        edit_cell(admin, 1, "amount is less than", "20000")
        edit_cell(admin, 2, "amount is greater than or equal to", "20000")
        rules = eventually(lambda: _threshold_moved(office.api("/tables/Invoice rules/rows")["rows"]))
        admin.screenshot(path=str(tmp_path / "invoice-rules.png"))
        assert len(rules) == 2

        again = send_invoice(chromium, office, "INV-3", 12_000)  # the same amount now needs grace only
        assert [t["assignees"] for t in office.tasks() if t["run_id"] == again] == [["grace"]]
        approve_in_inbox(chromium, office, "grace", "Invoice INV-3 from Paper & Co")
        assert office.wait_until_finished(again)["status"] == "succeeded"
        assert [e["invoice"] for e in stand_ins.state.entries] == ["INV-1", "INV-3"]
        assert office.run(big)["status"] == "waiting"  # the run started under the old rule keeps its two of three
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.output


def _threshold_moved(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_id = {r["id"]: r for r in rows}
    assert by_id[1]["amount is less than"] == 20_000, rows
    assert by_id[2]["amount is greater than or equal to"] == 20_000, rows
    return rows


def test_crm_deals_become_invoices_from_the_editors_run_button_and_a_rerun_bills_nothing_twice(
        tmp_path: Path, stand_ins: DemoServer, chromium: Chromium) -> None:  # noqa: F811
    stand_ins.state.reset()
    won = sorted(d["id"] for d in stand_ins.state.deals if d["status"] == "won")
    assert len(won) > 10  # more than one page of the CRM's paging
    office = Office(tmp_path, stand_ins, "crm-to-invoices", (BOSS,))
    try:
        page = sign_in_as_admin(chromium, office)
        open_in_editor(page, office)
        for attempt in (1, 2):
            page.get_by_role("button", name="Run", exact=True).click()
            summary = page.locator('.vue-flow__node[data-id="summary"]')
            summary.locator(".fb-badge-succeeded").wait_for()
            assert summary.locator(".fb-count").inner_text() == str(len(won))
            assert sorted(i["external_id"] for i in stand_ins.state.invoices) == won, attempt
            if attempt == 1:
                page.reload()  # the second run starts from a fresh page, not the first run's badges
                page.wait_for_function("window.__flowboardCanvasReady === true")
        page.screenshot(path=str(tmp_path / "crm-run.png"))
        # And from the command line, on the same data folder: still nothing billed twice.
        done = flowboard(tmp_path, "run", "crm-to-invoices")
        assert done.returncode == 0, done.stdout + done.stderr
        assert not any(i["new"] for i in result_json(done)["output"])
        assert len(stand_ins.state.invoices) == len(won)
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.output


def test_a_customer_changed_in_the_grid_reaches_the_crm_invoicing_and_chat(
        tmp_path: Path, stand_ins: DemoServer, chromium: Chromium) -> None:  # noqa: F811
    stand_ins.state.reset()
    office = Office(tmp_path, stand_ins, "customer-hub", (BOSS,))
    try:
        page = sign_in_as_admin(chromium, office)
        open_in_editor(page, office)
        open_table(page, office, "Customers")
        edit_cell(page, 2, "email", "ap@globex.example")
        state = stand_ins.state
        eventually(lambda: _assert(state.crm_customers.get("C002", {}).get("email") == "ap@globex.example"))
        eventually(lambda: _assert(len(state.chat) == 1))
        assert state.invoicing_customers["C002"]["email"] == "ap@globex.example"
        assert "Globex" in state.chat[0]["text"] and "email" in state.chat[0]["text"], state.chat
        runs = eventually(lambda: _all_finished(office.api("/runs", flow_id="customer-hub")["runs"]))
        assert [r["status"] for r in runs] == ["succeeded"]
        page.screenshot(path=str(tmp_path / "customers.png"))
    finally:
        office.close(chromium)
    for server in office.servers:
        assert not server.errors(), server.output


def _all_finished(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert runs and all(r["status"] not in ("queued", "running", "waiting") for r in runs), runs
    return runs


def _assert(condition: bool) -> None:
    assert condition
