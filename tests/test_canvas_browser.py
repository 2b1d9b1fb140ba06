# ruff: noqa: F811
"""The flow canvas in real Chromium, driven with real mouse moves and key presses (tests/apps/canvas_app.py).

Every test opens a fresh tab; any browser console error fails it (see tests/browser.py). The generated flow `?n=3` is
n0 (manual trigger) -main-> n1 (If: outputs true, false) -true-> n2 (send email).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

# The fixtures browser, canvas_app and page come from tests/browser.py (the lead owns conftest.py); importing them
# here is how pytest finds them, and their use as parameters reads as a redefinition to ruff.
from tests.browser import CanvasApp, browser, canvas_app, center, mouse_drag, open_canvas, page  # noqa: F401

pytestmark = pytest.mark.browser


def node(node_id: str) -> str:
    return f'.vue-flow__node[data-id="{node_id}"]'


def port(node_id: str, name: str, kind: str) -> str:
    """kind: "source" (an output, right side) or "target" (an input, left side)."""
    return f'{node(node_id)} .vue-flow__handle.{kind}[data-handleid="{name}"]'


def connect(tab: Any, source: str, target: str) -> None:
    mouse_drag(tab, center(tab, source), center(tab, target))


def edge_set(graph: dict[str, Any]) -> set[tuple[str, str, str, str]]:
    return {(e["source"], e["source_port"], e["target"], e["target_port"]) for e in graph["edges"]}


def test_build_a_flow_with_the_mouse(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app)
    expect(page.locator(".fb-empty")).to_be_visible()
    for node_type, x in [("core.manual", 450), ("http.request", 800), ("logic.if", 1150)]:
        mouse_drag(page, center(page, f'.fb-palette-item[data-type="{node_type}"]'), (x, 350))
    expect(page.locator(".vue-flow__node")).to_have_count(3)

    connect(page, port("manual", "main", "source"), port("request", "main", "target"))
    connect(page, port("request", "main", "source"), port("if", "main", "target"))

    graph = canvas_app.wait_for("change", lambda g: len(g["edges"]) == 2)
    assert [(n["id"], n["type"], n["inputs"], n["outputs"]) for n in graph["nodes"]] == [
        ("manual", "core.manual", [], ["main"]),
        ("request", "http.request", ["main"], ["main"]),
        ("if", "logic.if", ["main"], ["true", "false"]),
    ]
    assert [n["name"] for n in graph["nodes"]] == ["Manual trigger", "HTTP request", "If"]
    assert edge_set(graph) == {("manual", "main", "request", "main"), ("request", "main", "if", "main")}
    xs = [n["position"]["x"] for n in graph["nodes"]]
    assert xs == sorted(xs), "nodes land where they were dropped"
    assert canvas_app.graph() == graph, "the element's props follow the browser, so a resend cannot snap back"

    # A second node of a type gets a numbered id and name.
    mouse_drag(page, center(page, '.fb-palette-item[data-type="http.request"]'), (800, 550))
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 4)
    assert (graph["nodes"][-1]["id"], graph["nodes"][-1]["name"]) == ("request_2", "HTTP request 2")


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        (port("n2", "main", "source"), port("n0", "main", "source"), "Both ports are outputs"),
        (port("n1", "main", "target"), port("n2", "main", "target"), "Both ports are inputs"),
        (port("n1", "false", "source"), port("n1", "main", "target"), "cannot connect to itself"),
        (port("n0", "main", "source"), port("n1", "main", "target"), "already connected"),
        (port("n2", "main", "source"), port("n1", "main", "target"), 'would create a loop: "Step 1" already leads'),
    ],
    ids=["output-output", "input-input", "self-loop", "duplicate", "cycle"],
)
def test_a_refused_connection_says_why(page: Any, canvas_app: CanvasApp, source: str, target: str, reason: str) -> None:
    open_canvas(page, canvas_app, "?n=3")
    connect(page, source, target)
    expect(page.locator(".fb-toast-error .fb-toast-text")).to_contain_text(reason)
    page.wait_for_timeout(200)
    assert canvas_app.events("change") == []
    assert page.locator(".vue-flow__edge").count() == 2


def test_an_allowed_connection_from_a_second_output(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    connect(page, port("n1", "false", "source"), port("n2", "main", "target"))
    graph = canvas_app.wait_for("change")
    assert ("n1", "false", "n2", "main") in edge_set(graph)
    assert len(graph["edges"]) == 3


def test_delete_undo_redo(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    original = canvas_app.graph()
    props_nodes = "getElement(document.querySelector('.fb-canvas').id.slice(1)).$props.nodes"
    page.evaluate(f"window.__initialProps = {props_nodes}")
    page.click(node("n1"))
    page.keyboard.press("Delete")
    graph = canvas_app.wait_for_count("change", 1)[-1]
    assert [n["id"] for n in graph["nodes"]] == ["n0", "n2"]
    assert graph["edges"] == [], "the edges of a deleted node go with it"

    page.keyboard.press("Control+z")
    assert canvas_app.wait_for_count("change", 2)[-1] == original
    assert canvas_app.graph() == original

    page.keyboard.press("Control+Shift+z")
    assert canvas_app.wait_for_count("change", 3)[-1] == graph
    page.keyboard.press("Control+y")  # nothing left to redo: no event
    page.keyboard.press("Control+z")
    assert canvas_app.wait_for_count("change", 4)[-1] == original
    expect(page.locator(".vue-flow__edge")).to_have_count(2)
    # Python took the edits in without sending the props back (a late resend could roll the canvas back).
    assert page.evaluate(f"window.__initialProps === {props_nodes}")


def test_copy_paste_gives_fresh_ids_also_in_another_tab(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    page.click(node("n0"))
    page.click(node("n1"), modifiers=["Shift"])
    assert canvas_app.wait_for("select", lambda s: len(s["ids"]) == 2)["ids"] == ["n0", "n1"]
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    graph = canvas_app.wait_for("change")
    pasted = {n["id"]: n for n in graph["nodes"][3:]}
    assert list(pasted) == ["n0_2", "n1_2"]
    assert pasted["n0_2"]["position"] == {"x": 40, "y": 40}
    assert pasted["n1_2"]["type"] == "logic.if"
    assert ("n0_2", "main", "n1_2", "main") in edge_set(graph)
    assert len(graph["edges"]) == 3, "only the edge between the copied nodes comes along"

    page.keyboard.press("Control+v")  # pasted again: new ids again, shifted further
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 7)
    assert [n["id"] for n in graph["nodes"][5:]] == ["n0_3", "n1_3"]
    assert graph["nodes"][5]["position"] == {"x": 80, "y": 80}
    names = [n["name"] for n in graph["nodes"]]
    assert names[3:] == ["Step 3", "Step 4", "Step 5", "Step 6"], "a pasted node never takes a name in use"

    other = page.context.new_page()
    open_canvas(other, canvas_app)
    other.mouse.click(700, 400)
    other.keyboard.press("Control+v")
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 2)
    assert [n["id"] for n in graph["nodes"]] == ["n0", "n1"]
    assert edge_set(graph) == {("n0", "main", "n1", "main")}
    other.close()


def test_status_from_python(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    props = "getElement(document.querySelector('.fb-canvas').id.slice(1)).$props"
    page.evaluate(f"window.__initialProps = {props}.nodes")
    canvas_app.call("set_status", {"n0": {"state": "succeeded", "count": 3}, "n1": {"state": "running"}})
    expect(page.locator(f"{node('n0')} .fb-badge-succeeded .fb-count")).to_have_text("3")
    expect(page.locator(f"{node('n1')} .fb-badge-running .fb-spinner")).to_be_visible()
    canvas_app.call("set_status", {"n1": {"state": "running", "count": 1500, "message": "3 pages read"}})
    expect(page.locator(f"{node('n1')} .fb-badge-running .fb-count")).to_have_text("1500")  # counts up as it runs
    expect(page.locator(f"{node('n1')} .fb-badge-running .fb-spinner")).to_be_visible()

    canvas_app.call(
        "set_status",
        {"n1": {"state": "failed", "message": "Condition failed: age is not a number"}, "n2": {"state": "skipped"}},
    )
    expect(page.locator(f"{node('n1')} .fb-badge-failed")).to_have_attribute(
        "title", "Condition failed: age is not a number"
    )
    expect(page.locator(f"{node('n1')} .fb-node-error")).to_have_text("Condition failed: age is not a number")
    expect(page.locator(f"{node('n2')} .fb-node")).to_have_class(re.compile(r"\bfb-state-skipped\b"))
    expect(page.locator(f"{node('n0')} .fb-badge-succeeded")).to_be_visible()  # merged, not replaced

    canvas_app.call("clear_status")
    expect(page.locator(".fb-badge")).to_have_count(0)
    assert page.evaluate(f"window.__initialProps === {props}.nodes"), "status travels alone, never with a resend"


def test_keys_and_events(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    page.click(node("n2"))
    assert canvas_app.wait_for("select") == {"ids": ["n2"]}
    page.dblclick(node("n2"))
    assert canvas_app.wait_for("open") == {"id": "n2"}
    page.keyboard.press("Control+s")
    page.keyboard.press("Control+Enter")
    canvas_app.wait_for("save")
    canvas_app.wait_for("run")

    page.keyboard.press("d")  # deactivate the selected node
    graph = canvas_app.wait_for("change")
    assert [n["disabled"] for n in graph["nodes"]] == [False, False, True]

    page.keyboard.press("?")
    expect(page.locator(".fb-help")).to_contain_text("Keyboard shortcuts")
    page.keyboard.press("Escape")
    expect(page.locator(".fb-help")).to_have_count(0)
    page.click(".fb-help-btn")
    expect(page.locator(".fb-help")).to_be_visible()

    # Typing in the palette search keeps its own keys.
    page.keyboard.press("Escape")
    page.fill(".fb-search input", "mail")
    expect(page.locator(".fb-palette-item")).to_have_count(1)
    page.keyboard.press("Backspace")
    page.wait_for_timeout(200)
    assert page.locator(".vue-flow__node").count() == 3


def test_box_select_auto_layout_and_select_from_python(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    scrambled = canvas_app.graph()
    for i, n in enumerate(scrambled["nodes"]):
        n["position"] = {"x": 600 - 300 * i, "y": 150 * i}
    canvas_app.call("set_graph", scrambled["nodes"], scrambled["edges"])
    canvas_app.call("fit_view")
    page.wait_for_timeout(300)

    page.keyboard.down("Shift")
    mouse_drag(page, (290, 10), (1390, 600))
    page.keyboard.up("Shift")
    assert canvas_app.wait_for("select", lambda s: len(s["ids"]) == 3)

    page.click('.fb-toolbar button[title^="Tidy up"]')
    graph = canvas_app.wait_for("change")
    x = {n["id"]: n["position"]["x"] for n in graph["nodes"]}
    assert x["n0"] < x["n1"] < x["n2"], "left to right in layers"

    selects = len(canvas_app.events("select"))
    canvas_app.call("select", "n1")
    expect(page.locator(node("n1"))).to_have_class(re.compile(r"\bselected\b"))
    page.wait_for_timeout(200)
    assert len(canvas_app.events("select")) == selects, "a selection made by Python is not echoed back"


def test_readonly(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3&readonly=true")
    expect(page.locator(".fb-palette")).to_have_count(0)
    expect(page.locator(".fb-handle.connectable")).to_have_count(0)
    page.click(node("n1"))
    page.keyboard.press("Delete")
    connect(page, port("n1", "false", "source"), port("n2", "main", "target"))
    mouse_drag(page, center(page, node("n2")), (900, 600))
    page.keyboard.press("Control+z")
    page.wait_for_timeout(300)
    assert canvas_app.events("change") == []
    assert page.locator(".vue-flow__node").count() == 3


def test_a_big_flow_draws_only_what_is_on_screen(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=1000")
    drawn = page.locator(".vue-flow__node").count()
    assert 5 < drawn < 60
    page.mouse.move(800, 400)
    page.mouse.wheel(0, 600)  # zoom out: more nodes come into view
    page.wait_for_timeout(300)
    assert page.locator(".vue-flow__node").count() > drawn


def test_zoom_to_fit_draws_every_node_of_a_big_flow_as_plain_cards(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=1000&layout=grid")
    assert page.locator(".vue-flow__node").count() < 1000  # opens no smaller than names can be read
    page.mouse.click(700, 790)  # the canvas has the keyboard
    page.keyboard.press("1")  # zoom to fit: every node
    expect(page.locator(".vue-flow__node")).to_have_count(1000)
    expect(page.locator(".fb-node-far")).to_have_count(1000)  # far out: plain cards, no icons or buttons
    assert page.locator(".fb-node-far .fb-node-name").count() == 0  # too small to read: colour only
    assert page.locator(".fb-node-far .fb-handle").count() >= 2000  # the ports stay: edges are drawn to them
    page.mouse.move(800, 400)
    for _ in range(12):
        page.mouse.wheel(0, -400)  # zoom back in: the full cards return
        page.wait_for_timeout(50)
    page.locator(".fb-node:not(.fb-node-far) .fb-node-icon").first.wait_for()


def test_screenshot(page: Any, canvas_app: CanvasApp) -> None:
    """Renders a realistic flow with run state to /tmp/canvas.png, for a human to look at."""
    open_canvas(page, canvas_app)
    spec = [
        ("start", "core.manual", "When clicking Run", 0, 120, [], ["main"]),
        ("fetch", "http.request", "Fetch new sign-ups", 300, 120, ["main"], ["main"]),
        ("adult", "logic.if", "Is adult?", 600, 120, ["main"], ["true", "false"]),
        ("welcome", "mail.send", "Send welcome mail", 900, 20, ["main"], ["main"]),
        ("merge", "logic.merge", "Merge results", 1200, 140, ["a", "b"], ["main"]),
        ("report", "http.request", "Post report", 1500, 140, ["main"], ["main"]),
    ]
    nodes = [
        {"id": i, "type": t, "name": n, "position": {"x": x, "y": y}, "inputs": ins, "outputs": outs, "disabled": False}
        for i, t, n, x, y, ins, outs in spec
    ]
    links = [
        ("start", "main", "fetch", "main"),
        ("fetch", "main", "adult", "main"),
        ("adult", "true", "welcome", "main"),
        ("adult", "false", "merge", "b"),
        ("welcome", "main", "merge", "a"),
        ("merge", "main", "report", "main"),
    ]
    edges = [{"source": s, "source_port": sp, "target": t, "target_port": tp} for s, sp, t, tp in links]
    canvas_app.call("set_graph", nodes, edges)
    canvas_app.call("fit_view")
    canvas_app.call(
        "set_status",
        {
            "start": {"state": "succeeded", "count": 1},
            "fetch": {"state": "succeeded", "count": 12},
            "adult": {"state": "succeeded", "count": 12},
            "welcome": {"state": "failed", "message": "SMTP login refused"},
            "merge": {"state": "running"},
        },
    )
    expect(page.locator(".fb-badge")).to_have_count(5)
    page.wait_for_timeout(300)
    page.screenshot(path="/tmp/canvas.png")


def test_plus_on_an_output_adds_the_next_node_placed_and_connected(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    page.locator(node("n1")).hover()
    page.locator(f'{node("n1")} .fb-add-after[data-port="false"]').click()
    dialog = page.get_by_role("dialog", name="Add after Step 1")
    expect(dialog).to_be_visible()
    expect(dialog.locator('.fb-quick-add-item[data-type="core.manual"]')).to_have_count(0)  # no trigger after a node
    page.keyboard.type("http")  # the search has the keyboard at once
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 4)
    new = graph["nodes"][-1]
    assert new["type"] == "http.request"
    assert ("n1", "false", new["id"], "main") in edge_set(graph)
    by_id = {n["id"]: n for n in graph["nodes"]}
    assert new["position"]["x"] > by_id["n1"]["position"]["x"], "placed to the right of the node it follows"

    # The mouse path: the `+` of the last node, then a click on an entry.
    page.locator(node("n2")).hover()
    page.locator(f'{node("n2")} .fb-add-after').click()
    page.locator('.fb-quick-add-item[data-type="mail.send"]').click()
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 5)
    assert ("n2", "main", graph["nodes"][-1]["id"], "main") in edge_set(graph)
    positions = [(n["position"]["x"], n["position"]["y"]) for n in graph["nodes"]]
    assert len(set(positions)) == len(positions), "no node lands on another"


def test_a_connection_dropped_on_empty_canvas_offers_the_next_node(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    start = center(page, port("n2", "main", "source"))
    drop = (start[0] + 40, start[1] + 180)  # below the node: empty canvas
    mouse_drag(page, start, drop)
    dialog = page.get_by_role("dialog", name="Add after Step 2")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # closes, adds nothing
    expect(dialog).to_have_count(0)
    mouse_drag(page, start, drop)
    page.locator('.fb-quick-add-item[data-type="logic.if"]').click()
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 4)
    new = graph["nodes"][-1]
    assert new["type"] == "logic.if" and ("n2", "main", new["id"], "main") in edge_set(graph)
    assert new["position"]["y"] > graph["nodes"][2]["position"]["y"], "placed where the connection was dropped"


@pytest.mark.parametrize("false_first", [True, False], ids=["false-branch-listed-first", "true-branch-listed-first"])
def test_auto_layout_keeps_branch_order(page: Any, canvas_app: CanvasApp, false_first: bool) -> None:
    open_canvas(page, canvas_app, "?n=3")
    graph = canvas_app.graph()
    n0, n1, _ = graph["nodes"]
    mail = {**graph["nodes"][2], "id": "yes", "name": "Yes", "position": {"x": 600, "y": 400}}
    request = {**mail, "id": "no", "name": "No", "type": "http.request", "position": {"x": 600, "y": 0}}
    after_no = {**mail, "id": "after_no", "name": "After no", "position": {"x": 900, "y": 0}}
    edges = [
        {"source": "n0", "source_port": "main", "target": "n1", "target_port": "main"},
        {"source": "n1", "source_port": "false", "target": "no", "target_port": "main"},
        {"source": "no", "source_port": "main", "target": "after_no", "target_port": "main"},
        {"source": "n1", "source_port": "true", "target": "yes", "target_port": "main"},
    ]
    nodes = [n0, n1, request, after_no, mail] if false_first else [n0, n1, mail, request, after_no]
    canvas_app.call("set_graph", nodes, edges if false_first else edges[::-1])
    canvas_app.clear_events()
    canvas_app.call("auto_layout")
    laid = canvas_app.wait_for("change")
    pos = {n["id"]: n["position"] for n in laid["nodes"]}
    assert pos["yes"]["y"] < pos["no"]["y"], "the true branch is above the false one"
    assert pos["after_no"]["y"] == pos["no"]["y"], "a branch moves with what follows it"
    assert pos["yes"]["x"] - pos["n1"]["x"] >= 300, "readable spacing between layers"


def test_plus_on_a_connection_inserts_a_node_between(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app, "?n=3")
    before = canvas_app.graph()
    edge = page.locator('.vue-flow__edge[data-id="n1:true->n2:main"]')
    box = edge.locator(".vue-flow__edge-interaction").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    plus = page.get_by_role("button", name="Insert a node between Step 1 and Step 2")
    plus.click()  # the pointer leaves the line for the button: the button stays
    dialog = page.get_by_role("dialog", name="Insert between Step 1 and Step 2")
    expect(dialog).to_be_visible()
    page.keyboard.type("http")
    page.keyboard.press("Enter")
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 4)
    new = graph["nodes"][-1]
    assert new["type"] == "http.request"
    assert edge_set(graph) == (edge_set(before) - {("n1", "true", "n2", "main")}) | {
        ("n1", "true", new["id"], "main"), (new["id"], "main", "n2", "main")}
    x = {n["id"]: n["position"]["x"] for n in graph["nodes"]}
    assert x["n1"] < x[new["id"]] < x["n2"], "placed between them; what follows moves right to make room"
    assert x["n2"] - x[new["id"]] >= 220
    page.keyboard.press("Control+z")  # one step undoes the whole insert
    graph = canvas_app.wait_for("change", lambda g: len(g["nodes"]) == 3)
    assert edge_set(graph) == edge_set(before)


def test_a_connectors_operations_have_their_own_palette_section(page: Any, canvas_app: CanvasApp) -> None:
    open_canvas(page, canvas_app)
    section = page.locator('.fb-palette-group[data-group="Shop API"]')
    expect(section.locator("h3")).to_have_text("Shop API")
    expect(section.locator('.fb-palette-item[data-type="api.shop_api.list_items"]')).to_have_count(1)
    integrations = page.locator('.fb-palette-group[data-group="Integrations"]')
    expect(integrations.locator('.fb-palette-item[data-type="api.shop_api.list_items"]')).to_have_count(0)
    expect(integrations.locator('.fb-palette-item[data-type="http.request"]')).to_have_count(1)
    page.fill(".fb-search input", "shop")  # the API's name finds its operations
    expect(page.locator(".fb-palette-group")).to_have_count(1)
    expect(page.locator(".fb-palette-item")).to_have_count(1)
