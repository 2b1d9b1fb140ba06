# ruff: noqa: F811
"""Nothing a user types is lost: Chromium types into every text and code field of every built-in node type at
10 ms per key (a dozen keys into the first field of each kind in a form, a few into the others, a new line and the
keys after it in code), pastes the rest, saves, and the stored flow holds exactly what was typed.

Before the fix, NiceGUI's code editor wrote the server's (older) copy back over the document whenever the field's
outline changed, and fast typing came out as `CEATE TABLE`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from flowboard.model import Flow
from flowboard.registry import default_registry
from flowboard.store import Store
from tests.browser import browser  # noqa: F401
from tests.serve import Server, data_dir, server, tab  # noqa: F401
from tests.test_editor_browser import node

pytestmark = pytest.mark.browser
SKIP_TYPES = {"trigger.error"}  # has no text fields to type in
KEY_DELAY = 10  # ms between keys: faster than any person types


def every_node_flow() -> dict[str, Any]:
    types = sorted({cls.type for cls in default_registry()} - SKIP_TYPES)
    nodes = [{"id": t.replace(".", "_"), "type": t, "position": {"x": 300 * (i % 5), "y": 200 * (i // 5)},
              "config": {}} for i, t in enumerate(types)]
    return {"id": "typing", "name": "Typing", "nodes": nodes, "edges": []}


def at(config: Any, loc: str) -> Any:
    for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", loc):
        config = config[int(index)] if index else config[name]
    return config


def type_into_code(page: Any, box: Any, typed: str, pasted: str) -> None:
    box.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.type(typed, delay=KEY_DELAY)
    page.keyboard.insert_text(pasted)  # a paste: the text arrives at once, no key events


@pytest.mark.timeout(480)  # some 40 forms typed key by key: slow on a busy 2-core machine
def test_fast_typing_and_pastes_reach_the_saved_flow(tab: Any, server: Server, data_dir: Path) -> None:
    page = tab
    store = Store(data_dir=data_dir)  # the flow is not runnable (nothing is set yet): stored as it is
    store.save_flow(Flow.model_validate(every_node_flow()), None)
    page.goto(server.url + "/flow/typing")
    page.wait_for_function("window.__flowboardCanvasReady === true")

    expected: dict[tuple[str, str], Any] = {}
    for spec in every_node_flow()["nodes"]:
        node(page, spec["id"]).click()
        page.locator(".fb-inspector").get_by_text(f"· {spec['id']}").wait_for()  # this node's form, not the last one's
        form = page.locator(".fb-inspector .q-tab-panel").first
        form.locator(".fb-form").first.wait_for()
        page.wait_for_timeout(200)
        typed_kinds: set[str] = set()  # the first field of each kind in a form gets a dozen keys, the others a few
        for toggle in form.locator(".fb-items-mode").all():  # test items: their JSON box (the table has a test)
            boxes = form.locator(".fb-code[data-loc]").count()
            toggle.get_by_role("button", name="JSON").click()
            expect(form.locator(".fb-code[data-loc]")).to_have_count(boxes + 1)
        for box in form.locator(".fb-code[data-loc]").all():
            loc = box.get_attribute("data-loc")
            if "json" in (box.locator(".cm-content").get_attribute("data-language") or ""):
                # the editor closes brackets as they open: the final `]` is there already when the paste comes
                typed, pasted = '[{"days": 3}, ', '{"employee": "grace"}'
                type_into_code(page, box, typed, pasted)
                expected[(spec["id"], loc)] = [{"days": 3}, {"employee": "grace"}]
            else:  # a new line changes the editor's outline: the keys typed right before and after it must stay
                typed, pasted = "CREATE TABLE t;\nSELECT ", "employee FROM leave WHERE days > :days"
                type_into_code(page, box, typed, pasted)
                expected[(spec["id"], loc)] = typed + pasted
        for inner in form.locator("input[data-loc], textarea[data-loc]").all():
            loc = inner.get_attribute("data-loc")
            if inner.get_attribute("type") not in (None, "text") or inner.evaluate("e => !!e.closest('.q-select')"):
                continue
            kind = "url" if "url" in loc.lower() else inner.evaluate("e => e.tagName")
            text = "https://example.com/leave/ada?days=3" if kind == "url" else \
                f"Quick fox {len(expected)} jumps over the lazy dog, twice."
            keys = 4 if kind in typed_kinds else 12
            typed_kinds.add(kind)
            typed, pasted = text[:keys], text[keys:]
            inner.click()
            page.keyboard.press("Control+a")
            page.keyboard.press("Delete")
            page.keyboard.type(typed, delay=KEY_DELAY)
            page.keyboard.insert_text(pasted)
            expected[(spec["id"], loc)] = typed + pasted
    assert len([k for k in expected if k[1] in ("query", "items")]) >= 2, expected  # the SQL query, the test items
    assert len(expected) >= 15, expected

    page.wait_for_timeout(500)
    page.locator(".fb-flow-wrap").click(position={"x": 30, "y": 700})
    page.keyboard.press("Control+s")
    page.get_by_text("Saved as version 2.").wait_for()

    stored = {n.id: n.config for n in store.get_flow("typing").flow.nodes}
    store.close()
    wrong = {k: (v, at(stored[k[0]], k[1])) for k, v in expected.items() if at(stored[k[0]], k[1]) != v}
    assert not wrong, wrong


@pytest.mark.parametrize("where", ["inspector", "node view"])
def test_drag_a_field_from_the_input_into_a_form_field(tab: Any, server: Server, data_dir: Path, where: str) -> None:
    """Mapping data without typing: after a run, the fields coming in are chips (above the form beside the canvas,
    in the input column of the node view); one dropped on a field writes the expression that reads it."""
    page = tab
    flow_id = "mapping-" + where.replace(" ", "-")
    store = Store(data_dir=data_dir)
    store.save_flow(Flow.model_validate({"id": flow_id, "name": f"Mapping in the {where}", "nodes": [
        {"id": "manual", "type": "trigger.manual", "config": {"items": [{"employee": "ada", "days": 3}]}},
        {"id": "set", "type": "data.set", "position": {"x": 300, "y": 0},
         "config": {"fields": [{"name": "who", "value": ""}]}}],
        "edges": [{"source": "manual", "target": "set"}]}), None)
    page.goto(server.url + f"/flow/{flow_id}")
    page.wait_for_function("window.__flowboardCanvasReady === true")
    page.get_by_role("button", name="Run").click()
    node(page, "set").locator(".fb-badge-succeeded").wait_for()
    if where == "inspector":
        node(page, "set").click()
        chip = page.locator(".fb-input-fields .fb-field-chip", has_text="employee")
    else:
        node(page, "set").dblclick()
        chip = page.locator(".fb-node-view .fb-nv-col .fb-field-chip", has_text="employee")
    chip.wait_for()
    target = page.locator('.fb-inspector input[data-loc="fields[0].value"]')
    chip.drag_to(target)
    page.wait_for_timeout(500)
    if where == "node view":
        page.screenshot(path=str(data_dir / "node-view.png"))
        page.keyboard.press("Escape")
        page.locator(".fb-node-view").wait_for(state="detached")
    page.locator(".fb-flow-wrap").click(position={"x": 30, "y": 700})
    page.keyboard.press("Control+s")
    page.get_by_text("Saved as version 2.").wait_for()
    config = store.get_flow(flow_id).flow.node("set").config
    store.close()
    assert config["fields"][0] == {"name": "who", "value": "{{ item.employee }}"}


def test_a_field_dropped_on_a_json_box_makes_it_an_expression(tab: Any, server: Server, data_dir: Path) -> None:
    """A field dragged from the input onto a value that is not a text box (the email's To, a JSON box) turns it into
    an expression reading the field, rather than into broken JSON. The node was never run: its fields come from the
    node before it."""
    page = tab
    store = Store(data_dir=data_dir)
    store.save_flow(Flow.model_validate({"id": "dropjson", "name": "Drop on JSON", "nodes": [
        {"id": "manual", "type": "trigger.manual", "config": {"items": [{"email": "ada@example.com"}]}},
        {"id": "send", "type": "email.send", "position": {"x": 300, "y": 0}, "config": {}}],
        "edges": [{"source": "manual", "target": "send"}]}), None)
    page.goto(server.url + "/flow/dropjson")
    page.wait_for_function("window.__flowboardCanvasReady === true")
    node(page, "manual").click()
    page.locator(".fb-inspector").get_by_role("button", name="Run this node").click()
    node(page, "manual").locator(".fb-badge-succeeded").wait_for()
    node(page, "send").click()
    chip = page.locator(".fb-input-fields .fb-field-chip", has_text="email")
    to = page.locator('.fb-inspector .fb-field:has(> .fb-label-row .fb-label:text-is("To"))').first
    chip.drag_to(to.locator(".fb-code"))
    to.locator(".fb-expr").wait_for()
    page.locator(".fb-flow-wrap").click(position={"x": 30, "y": 700})
    page.keyboard.press("Control+s")
    page.get_by_text("Saved as version 2.").wait_for()
    config = store.get_flow("dropjson").flow.node("send").config
    store.close()
    assert config["to"] == "{{ item.email }}"
