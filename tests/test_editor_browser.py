"""The editor in real Chromium against the real server (`python -m flowboard serve` in a subprocess).

A user builds a flow with the mouse only (palette drags, port-to-port drags), configures it in the inspector, saves,
runs it, reads the output, exports it and imports it back. Any browser console error fails the test.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import browser, center, mouse_drag, require_chromium, settled_center, watched_tab  # noqa: F401
from tests.serve import Server

pytestmark = pytest.mark.browser
TIMEOUT = 30_000  # ms, for a loaded 2-core CI machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    srv = Server(tmp_path_factory.mktemp("flowboard-data"))
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Any]:  # noqa: F811
    """A wide tab (palette, canvas and inspector side by side); fails the test on any console or page error."""
    with watched_tab(browser, 1800, 950, timeout=TIMEOUT, downloads=True) as page:
        yield page


def node(page: Any, node_id: str) -> Any:
    return page.locator(f'.vue-flow__node[data-id="{node_id}"]')


def drag_from_palette(page: Any, node_type: str, x_share: float) -> None:
    """Drag a palette entry onto the canvas, `x_share` of the way across it."""
    item = page.locator(f'.fb-palette-item[data-type="{node_type}"]')
    item.scroll_into_view_if_needed()
    wrap = page.locator(".fb-flow-wrap").bounding_box()
    mouse_drag(page, center(page, f'.fb-palette-item[data-type="{node_type}"]'),
               (wrap["x"] + wrap["width"] * x_share, wrap["y"] + wrap["height"] * 0.45))


def connect(page: Any, source: str, target: str) -> None:
    """Drag from `source`'s output to `target`'s input, aimed where both ports have settled, and wait for the edge."""
    edges = page.locator(".vue-flow__edge").count()
    mouse_drag(page, settled_center(page, f'.vue-flow__node[data-id="{source}"] .fb-handle-out'),
               settled_center(page, f'.vue-flow__node[data-id="{target}"] .fb-handle-in'))
    page.wait_for_function(f"document.querySelectorAll('.vue-flow__edge').length === {edges + 1}")


def field_input(page: Any, label: str) -> Any:
    """The input of the inspector field titled `label` (on the visible tab)."""
    return page.locator(f'.fb-inspector .fb-field:has(> .fb-label-row .fb-label:text-is("{label}")) input').first


def export_working_copy(page: Any) -> dict[str, Any]:
    """The flow as the editor holds it (saved or not), through the header's Flow menu."""
    page.get_by_role("button", name="Flow", exact=True).click()
    with page.expect_download() as info:
        page.locator(".q-menu .q-item", has_text="Export this flow as a file").click()
    return json.loads(Path(info.value.path()).read_text())


class HeldAnswers:
    """Holds back what the server sends the page (NiceGUI's websocket) between `hold()` and `release()`, so that a
    test can make the server's answer arrive at a chosen moment, as it does on a slow network or a busy server."""

    def __init__(self, page: Any) -> None:
        self.held: list[Any] | None = None
        self.page_side: Any = None
        page.route_web_socket(re.compile(r"/_nicegui_ws/"), self._route)

    def _route(self, ws: Any) -> None:
        self.page_side = ws
        ws.connect_to_server().on_message(self._from_server)  # the page's own messages still go through

    def _from_server(self, message: Any) -> None:
        if self.held is None:
            self.page_side.send(message)
        else:
            self.held.append(message)

    def hold(self) -> None:
        self.held = []

    def release(self) -> None:
        held, self.held = self.held or [], None
        for message in held:
            self.page_side.send(message)


def export_from_list(page: Any, row_index: int, name: str = "Greetings") -> dict[str, Any]:
    page.locator(".fb-row button:has-text('more_vert')").nth(row_index).click()
    with page.expect_download() as info:
        page.locator(".q-menu .q-item", has_text="Export").click()
    download = info.value
    assert download.suggested_filename == f"{name}.json"
    return json.loads(Path(download.path()).read_text())


def new_flow(page: Any, server: Server, name: str, wait_for: str = "a.fb-name") -> None:
    """From the flows page: a new flow called `name`, its editor open and its canvas ready."""
    page.goto(server.url + "/")
    page.locator(wait_for).first.wait_for()
    page.get_by_role("button", name="New flow").click()
    page.get_by_label("Name").fill(name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/flow/*")
    page.wait_for_function("window.__flowboardCanvasReady === true")


def test_build_configure_save_run_export_and_import_a_flow(tab: Any, server: Server, tmp_path: Path) -> None:
    page = tab
    new_flow(page, server, "Greetings", 'a.fb-name:has-text("Vacation request")')  # first start: the examples are there

    # The new flow starts with a Manual trigger: delete it and build all three nodes by hand.
    node(page, "manual").click()
    page.keyboard.press("Delete")
    node(page, "manual").wait_for(state="detached")
    drag_from_palette(page, "trigger.manual", 0.2)
    drag_from_palette(page, "data.set", 0.5)
    drag_from_palette(page, "logic.filter", 0.8)
    for node_id in ("manual", "set", "filter"):
        node(page, node_id).wait_for()
    # The drops are done once the inspector shows the last one (a drag made while the inspector opens is
    # test_a_connection_dragged_while_the_inspector_opens_ends_where_it_is_released).
    page.locator(".fb-inspector", has_text="Keep only the items that meet your conditions.").wait_for()
    connect(page, "manual", "set")
    connect(page, "set", "filter")
    page.wait_for_function("typeof window.onbeforeunload === 'function'")  # unsaved: leaving asks first

    # Configure in the inspector: Set adds a field, Filter keeps the items that have it.
    node(page, "set").click()
    page.locator(".fb-inspector").get_by_role("button", name="Add pair").first.click()
    page.locator('.fb-inspector input[placeholder="Name"]').fill("greeting")
    page.locator('.fb-inspector input[placeholder="Value"]').fill("Hello")
    node(page, "filter").click()
    page.locator(".fb-inspector .fb-entry").first.wait_for()  # its first condition is there, ready to fill
    field_input(page, "Field").fill("greeting")
    field_input(page, "Value").fill("Hello")
    page.wait_for_timeout(300)

    page.locator(".fb-flow-wrap").click(position={"x": 30, "y": 300})  # the canvas has the keyboard
    page.keyboard.press("Control+s")
    page.get_by_text("Saved as version 2.").wait_for()
    page.wait_for_function("window.onbeforeunload === null")

    page.get_by_role("button", name="Run").click()
    for node_id in ("manual", "set", "filter"):
        node(page, node_id).locator(".fb-badge-succeeded").wait_for()
    assert node(page, "filter").locator(".fb-count").inner_text() == "1"

    node(page, "filter").click()
    page.locator(".fb-inspector").get_by_role("tab", name="Data").click()
    output = page.locator(".fb-data .q-table").last
    output.get_by_role("cell", name="Hello").wait_for()
    assert output.get_by_role("columnheader", name="greeting").count() == 1

    page.goto(server.url + "/")
    row = page.locator(".fb-row", has_text="Greetings")
    row.wait_for()
    index = [t.strip().split("\n")[0] for t in page.locator(".fb-row").all_inner_texts()].index("Greetings")
    exported = export_from_list(page, index)
    assert [n["type"] for n in exported["nodes"]] == ["trigger.manual", "data.set", "logic.filter"]
    assert exported["nodes"][1]["config"] == {"fields": [{"name": "greeting", "value": "Hello"}]}

    page.get_by_role("button", name="Import").click()
    path = tmp_path / "Greetings.json"
    path.write_text(json.dumps(exported))
    page.locator(".q-dialog input[type=file]").set_input_files(str(path))
    page.get_by_text('Imported "Greetings (copy)"').wait_for()
    page.locator(".fb-row", has_text="Greetings").nth(1).wait_for()
    rows = [t.strip().split("\n")[0] for t in page.locator(".fb-row").all_inner_texts()]
    assert "Greetings" in rows and "Greetings (copy)" in rows  # the name was taken, so it says it is a copy
    imported = export_from_list(page, rows.index("Greetings (copy)"), "Greetings (copy)")
    assert imported["id"] != exported["id"]  # the id was taken too, so it got a new one
    assert {**imported, "id": None, "name": None} == {**exported, "id": None, "name": None}


class Keys:
    """Keyboard-only driving: every action is a key press (typing counts one per text), counted."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.count += 1

    def type(self, text: str) -> None:
        self.page.keyboard.type(text, delay=20)
        self.count += 1

    def focused(self, predicate: str) -> bool:
        script = f"(() => {{ const el = document.activeElement; return !!el && ({predicate}); }})()"
        return bool(self.page.evaluate(script))

    def wait_focused(self, predicate: str) -> None:
        self.page.wait_for_function(f"(() => {{ const el = document.activeElement; return !!el && ({predicate}); }})()")

    def tab_to(self, predicate: str, limit: int = 80) -> None:
        """Press Tab until the focused element `el` fulfils the JavaScript `predicate`."""
        for _ in range(limit):
            self.press("Tab")
            if self.focused(predicate):
                return
        raise AssertionError(f"Tab never reached an element where {predicate}")


def test_the_main_path_with_the_keyboard_alone(tab: Any, server: Server) -> None:
    """Create a flow, add a node after the trigger (connected), configure it, run it, read its output: no mouse."""
    page = tab
    keys = Keys(page)
    page.goto(server.url + "/")
    page.locator("a.fb-name").first.wait_for()
    keys.tab_to("el.tagName === 'BUTTON' && el.textContent.includes('New flow')")
    keys.press("Enter")
    keys.wait_focused("el.tagName === 'INPUT'")  # the name field has the keyboard
    keys.press("Control+a")
    keys.type("Keyboard only")
    keys.press("Enter")
    page.wait_for_url("**/flow/*")
    page.wait_for_function("window.__flowboardCanvasReady === true")

    # Add: Tab to the trigger, Tab to its +, Enter, type what to add, Enter: placed, connected and focused.
    keys.tab_to("el.matches('.vue-flow__node[data-id=\"manual\"]')")
    keys.press("Tab")
    assert keys.focused("el.matches('.fb-add-after')")
    keys.press("Enter")
    page.get_by_role("dialog", name="Add after Manual trigger").wait_for()
    keys.type("transform")
    assert page.locator(".fb-quick-add-item").first.get_attribute("data-type") == "data.set"
    keys.press("Enter")
    node(page, "set").wait_for()
    keys.wait_focused("el.matches('.vue-flow__node[data-id=\"set\"]')")
    page.wait_for_function("document.querySelectorAll('.vue-flow__edge').length === 1")

    # Configure: Enter opens the node's view with the keyboard in its form; a new pair takes the keyboard.
    keys.press("Enter")
    page.locator(".fb-node-view .fb-form").wait_for()
    keys.wait_focused("!!el.closest('.fb-node-view .fb-form')")
    assert keys.focused("el.textContent.includes('Add pair')")
    keys.press("Enter")
    keys.wait_focused("el.tagName === 'INPUT' && !!el.closest('.fb-entry')")
    keys.type("greeting")
    keys.press("Tab")
    keys.type("Hello")
    keys.press("Escape")  # back to the canvas, on the node
    page.locator(".fb-node-view").wait_for(state="detached")
    keys.wait_focused("el.matches('.vue-flow__node[data-id=\"set\"]')")

    # Run, then read the output in the node's view.
    keys.press("Control+Enter")
    node(page, "set").locator(".fb-badge-succeeded").wait_for()
    keys.press("Enter")
    page.locator(".fb-node-view").get_by_role("cell", name="Hello").wait_for()
    if os.environ.get("FLOWBOARD_SCREENSHOTS"):
        page.screenshot(path=os.environ["FLOWBOARD_SCREENSHOTS"] + "/keyboard-node-view.png")
    assert keys.count <= 45, keys.count  # 41 measured: most are Tabs through the page header


def test_a_new_flow_opens_on_its_trigger_and_a_node_added_after_it_gets_its_fields(tab: Any, server: Server) -> None:
    """A new flow shows its trigger's test-data table at once (an empty first item ready); `+` after the trigger
    offers the usual nodes first; the trigger (which changes nothing) runs by itself, so the new Send email node
    shows the fields coming in and its To already reads the items' address field; the second Send email node takes
    the first one's sender. Nothing is sent: the email nodes never run."""
    page = tab
    new_flow(page, server, "Suggested")

    table = page.locator(".fb-inspector .fb-items-table")  # open without a click
    table.get_by_label("Name of column 1").fill("employee")
    table.get_by_label("Name of column 2").fill("email")
    table.get_by_label("Item 1, employee").fill("ada")
    table.get_by_label("Item 1, email").fill("ada@example.com")
    page.wait_for_timeout(600)  # the form's edit reaches the canvas (editor.SYNC_DELAY)
    assert not node(page, "manual").locator(".fb-badge-succeeded").count()  # not run yet

    def add_email() -> str:
        before = set(page.locator(".vue-flow__node").evaluate_all("els => els.map(e => e.dataset.id)"))
        node(page, "manual").hover()
        node(page, "manual").locator('.fb-add-after[data-port="main"]').click()
        types = page.locator(".fb-quick-add-item").evaluate_all("els => els.map(e => e.dataset.type)")
        assert set(types[:4]) == {"logic.if", "data.table", "http.request", "email.send"}, types[:6]
        page.locator('.fb-quick-add-item[data-type="email.send"]').click()
        handle = page.wait_for_function(
            "ids => { const s = document.querySelector('.vue-flow__node.selected'); "
            "return s && !ids.includes(s.dataset.id) && s.dataset.id; }", arg=sorted(before))
        return str(handle.json_value())

    first = add_email()
    node(page, "manual").locator(".fb-badge-succeeded").wait_for()  # ran by itself
    page.locator(".fb-inspector .fb-input-fields .fb-field-chip", has_text="email").wait_for()
    to = page.locator('.fb-inspector .fb-field:has(> .fb-label-row .fb-label:text-is("To"))').first
    to.locator(".fb-expr").wait_for()
    to.get_by_text("\"ada@example.com\"").wait_for()  # its preview: the expression reads the address field
    field_input(page, "Sender").fill("hr@example.com")
    page.wait_for_timeout(600)
    page.locator(".fb-inspector").get_by_role("button", name="Close the node").click()
    second = add_email()
    assert second != first
    page.wait_for_function("() => [...document.querySelectorAll('.fb-inspector .fb-field')].some(f => "
                           "f.querySelector('.fb-label')?.textContent === 'Sender' && "
                           "f.querySelector('input')?.value === 'hr@example.com')")
    assert not node(page, first).locator(".fb-badge-succeeded").count()  # no email was sent


def test_a_connection_dragged_while_the_inspector_opens_ends_where_it_is_released(tab: Any, server: Server) -> None:
    """Click a node and at once drag a connection from its output: the inspector opens on the node while the mouse
    is still down (the server's answer comes a moment after the press). The canvas must stay where it is under the
    pointer, so the connection ends at the input it is released at: here a little above that input, inside the
    distance the canvas snaps from, as a hand releases it."""
    page = tab
    answers = HeldAnswers(page)
    new_flow(page, server, "Connect while the inspector opens")
    drag_from_palette(page, "data.table", 0.35)
    page.locator(".fb-inspector").get_by_role("button", name="Add condition").click()  # a form taller than the window
    page.locator(".fb-inspector .fb-entry").first.wait_for()
    drag_from_palette(page, "data.set", 0.7)
    page.locator(".fb-inspector", has_text="Add, change, rename or remove fields").wait_for()
    page.locator(".fb-inspector").get_by_role("button", name="Close the node").click()
    page.locator(".fb-side").get_by_text("Run tries the flow as it is").wait_for()  # the run panel: nothing selected
    canvas = page.locator(".fb-flow-wrap")
    before = canvas.bounding_box()
    if os.environ.get("FLOWBOARD_SCREENSHOTS"):
        page.screenshot(path=os.environ["FLOWBOARD_SCREENSHOTS"] + "/connect-before.png")

    answers.hold()
    node(page, "table").locator(".fb-node-name").click()
    start = settled_center(page, '.vue-flow__node[data-id="table"] .fb-handle-out')
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + 20, start[1] + 5, steps=4)
    page.locator(".vue-flow__connection").wait_for()  # the connection is being dragged
    answers.release()
    page.locator(".fb-inspector", has_text="Find, add, change or remove rows").wait_for()  # the mouse is still down
    during = canvas.bounding_box()
    end = settled_center(page, '.vue-flow__node[data-id="set"] .fb-handle-in')
    page.mouse.move(end[0], end[1] - 10, steps=12)
    if os.environ.get("FLOWBOARD_SCREENSHOTS"):
        page.screenshot(path=os.environ["FLOWBOARD_SCREENSHOTS"] + "/connect-while-the-inspector-opens.png")
    page.mouse.up()

    edges = [(e["source"], e["target"]) for e in export_working_copy(page)["edges"]]  # the change went first
    assert edges == [("table", "set")], f"not connected; the canvas was at {before}, then at {during} under the pointer"
    assert during == before
