"""The new-user path in real Chromium, without typing JSON, SQL or `{{ }}`: build the vacation check from nothing and
run it, counting every action (a click, a drag, a text typed, a key) and the seconds it takes.

    python bench/new_user.py [--screenshots DIR]

Already there, as in a company's Flowboard: the data table Employees (employee, days_left, email) and the mail
server credential "Mail" (a real SMTP catcher this script starts; being the only one, new email nodes take it). The
user then:

1. creates the flow "Vacation check" (it opens on its Manual trigger's form);
2. types the trigger's test data in its small table (two columns and one item ready): employee ada, days 3;
3. adds, each with the `+` after the node before (the usual nodes are offered first: one click): a Data table node
   (nothing to do: the trigger ran by itself when the node was added, as it changes nothing, and the node finds the
   rows of the only table whose key column, employee, is the items' field of that name), an If (its first condition
   ready: days_left is greater than or equal to the trigger's days, picked from the field list; the lookup ran by
   itself), a Send email on its true branch and one on its false branch (To reads the items' address field by
   itself; the second takes the first one's sender);
4. runs the flow and opens the email node's view (double click) to see its output.

48 actions before these helps (commit 6248a8d), 33 after, 28 with the lookup filled in and the If's first condition
ready (19.4 s against 20.4 s, medians of 3 in one session at load 9-14: no more pauses for the form-to-canvas sync).
Prints the actions and seconds, and checks the run: one email, to ada, saying yes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flowboard.datatables import Column, ColumnType, TableSchema  # noqa: E402
from flowboard.services import Flowboard  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.mailserver import MailServer  # noqa: E402
from tests.serve import Server  # noqa: E402

TIMEOUT = 20_000


class User:
    """Drives the page and counts what a person would do: each click, drag, text typed or key pressed is one."""

    def __init__(self, page: Any, shots: Path | None) -> None:
        self.page = page
        self.actions = 0
        self.shots = shots
        self.log: list[str] = []

    def _count(self, what: str) -> None:
        self.actions += 1
        self.log.append(f"{self.actions:>3} {what}")

    def click(self, locator: Any, what: str) -> None:
        locator.click()
        self._count(f"click {what}")

    def type(self, locator: Any, text: str, what: str) -> None:
        locator.click()
        locator.fill(text)
        self._count(f"type {what}: {text}")

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self._count(f"key {key}")

    def drag(self, source: Any, target: Any, what: str) -> None:
        source.drag_to(target)
        self._count(f"drag {what}")

    def shot(self, name: str) -> None:
        if self.shots is not None:
            self.page.screenshot(path=str(self.shots / f"{name}.png"))


def field(page: Any, label: str, nth: int = 0) -> Any:
    """The input of the inspector field titled `label`."""
    return page.locator(f'.fb-inspector .fb-field:has(> .fb-label-row .fb-label:text-is("{label}")) input').nth(nth)


def field_box(page: Any, label: str) -> Any:
    """The whole inspector field titled `label` (where a drop lands whatever its widget)."""
    return page.locator(f'.fb-inspector .fb-field:has(> .fb-label-row .fb-label:text-is("{label}"))').first


def pick(user: User, box: Any, option: str, what: str) -> None:
    """Choose from a drop-down: a click to open it, a click on the option."""
    user.click(box, f"{what} list")
    user.click(user.page.locator(".q-menu .q-item", has_text=option).first, f"{what}: {option}")
    user.page.locator(".q-menu").wait_for(state="detached")


def add_after(user: User, node_id: str, search: str, node_type: str, port: str = "main") -> str:
    page = user.page
    before = set(page.locator(".vue-flow__node").evaluate_all("els => els.map(e => e.dataset.id)"))
    page.locator(f'.vue-flow__node[data-id="{node_id}"]').hover()
    user.click(page.locator(f'.vue-flow__node[data-id="{node_id}"] .fb-add-after[data-port="{port}"]'), "+")
    item = page.locator(f'.fb-quick-add-item[data-type="{node_type}"]')
    if node_type == "data.table":
        user.shot("add-node")
    shown = page.locator(".fb-quick-add-list").bounding_box()
    box = item.bounding_box()
    if box and shown and box["y"] >= shown["y"] and box["y"] + box["height"] <= shown["y"] + shown["height"]:
        user.click(item, f"{search} (offered first)")  # in sight without searching: one click
    else:
        user.type(page.locator(".fb-quick-add input"), search, "what to add")
        assert page.locator(".fb-quick-add-item").first.get_attribute("data-type") == node_type
        user.press("Enter")
    handle = page.wait_for_function(  # the new node is the selected one
        "ids => { const s = document.querySelector('.vue-flow__node.selected'); "
        "return s && !ids.includes(s.dataset.id) && s.dataset.id; }", arg=sorted(before))
    new = handle.json_value()
    page.locator(f'.fb-inspector:has-text("· {new}")').wait_for()  # its form is open
    return str(new)


def run_path(page: Any, url: str, shots: Path | None) -> User:
    user = User(page, shots)
    page.goto(url + "/")
    page.locator("a.fb-name").first.wait_for()

    user.click(page.get_by_role("button", name="New flow"), "New flow")
    user.type(page.get_by_label("Name"), "Vacation check", "flow name")
    user.press("Enter")
    page.wait_for_url("**/flow/*")
    page.wait_for_function("window.__flowboardCanvasReady === true")

    # The trigger's test data, in its table (a new flow opens with its trigger's form).
    table = page.locator(".fb-inspector .fb-items-table")
    user.type(table.get_by_label("Name of column 1"), "employee", "column")
    # (two columns are there to name)
    user.type(table.get_by_label("Name of column 2"), "days", "column")
    # (the table has an empty first row to type the first item into)
    user.type(table.get_by_label("Item 1, employee"), "ada", "cell")
    user.type(table.get_by_label("Item 1, days"), "3", "cell")
    user.shot("1-trigger")

    # Data table: find the employee's row. The trigger runs by itself (it changes nothing), and the new node finds
    # the rows of the only table whose key column (employee) is the items' field of that name: nothing to do.
    lookup = add_after(user, "manual", "data table", "data.table")
    page.locator(".fb-inspector .fb-input-fields .fb-field-chip", has_text="employee").wait_for()
    assert field(page, "Table").input_value() == "Employees"  # the only data table: chosen already
    field_box(page, "Value").locator(".fb-expr").wait_for()  # the condition: employee is the item's employee
    assert field(page, "Column").input_value() == "employee"
    user.shot("2-lookup")

    # If: enough days left? (Finding rows changes nothing: it runs by itself when the If is added after it.)
    check = add_after(user, lookup, "if", "logic.if")
    page.locator(f'.vue-flow__node[data-id="{lookup}"] .fb-badge-succeeded').wait_for()
    # (its first condition is there, ready to fill)
    user.type(field(page, "Field"), "days_left", "field name")
    pick(user, field(page, "Comparison"), "is greater than or equal to", "comparison")
    user.click(field_box(page, "Value").locator(".fb-fx"), "fx: the value comes from the data")
    user.click(field_box(page, "Value").get_by_role("button", name="Insert a field from earlier nodes"),
               "pick a field")
    user.click(page.locator(".q-menu .q-item", has_text="Manual trigger").filter(has_text="days").first,
               "the trigger's days")
    user.shot("3-if")

    # The two emails.
    emails = []
    for port, subject in (("true", "Your vacation is approved"), ("false", "Not enough vacation days")):
        mail = add_after(user, check, "email", "email.send", port)
        assert field(page, "Credential").input_value() == "Mail"  # the only mail server: chosen already
        if port == "true":  # the If ran by itself when this node was added: its fields show
            page.locator(f'.vue-flow__node[data-id="{check}"] .fb-badge-succeeded').wait_for()
            page.locator(".fb-inspector .fb-input-fields .fb-field-chip", has_text="email").first.wait_for()
        # To reads the items' address field by itself, and the second email takes the first one's sender.
        field_box(page, "To").locator(".fb-expr").wait_for()
        if port == "true":
            user.type(field(page, "Sender"), "hr@example.com", "sender")
        else:
            assert field(page, "Sender").input_value() == "hr@example.com"
        user.type(field(page, "Subject"), subject, "subject")
        user.type(field_box(page, "Text").locator("input, textarea").first, subject + ".", "message")
        emails.append(mail)
    user.shot("4-email")

    user.click(page.get_by_role("button", name="Run", exact=True), "Run")
    page.locator(f'.vue-flow__node[data-id="{emails[0]}"] .fb-badge-succeeded').wait_for()
    page.locator(f'.vue-flow__node[data-id="{emails[0]}"]').dblclick()
    user._count("double-click the email node: its view, with the output")
    page.locator(".fb-node-view .fb-nv-col .q-table").last.wait_for()
    user.shot("5-output")
    return user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--screenshots", type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    data = Path(tempfile.mkdtemp(prefix="fb-new-user-"))
    with MailServer() as mail:
        fb = Flowboard(data_dir=data)
        fb.tables.tables.create(TableSchema(name="Employees", key="employee", columns=[
            Column(name="employee"), Column(name="days_left", type=ColumnType.number), Column(name="email")]))
        fb.tables.tables.insert("Employees", [{"employee": "ada", "days_left": 20, "email": "ada@example.com"},
                                              {"employee": "bob", "days_left": 1, "email": "bob@example.com"}])
        fb.store.set_credential("Mail", "smtp", mail.credential())
        fb.store.close()
        server = Server(data)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1600, "height": 950})
                page.set_default_timeout(TIMEOUT)
                start = time.perf_counter()
                try:
                    user = run_path(page, server.url, args.screenshots)
                except Exception:
                    page.screenshot(path=str(data / "failed.png"))
                    print(f"failed; screenshot {data / 'failed.png'}", file=sys.stderr)
                    raise
                seconds = time.perf_counter() - start
                browser.close()
        finally:
            server.stop()
        received = [(m["To"], m["Subject"]) for _, m in mail.messages]
    print("\n".join(user.log))
    print(f"new-user path (5 nodes: trigger with test data, data table, if, two emails): {user.actions} actions, "
          f"{seconds:.1f} s; emails received: {received}")
    assert received == [("ada@example.com", "Your vacation is approved")], received


if __name__ == "__main__":
    main()
