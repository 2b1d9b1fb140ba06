"""The pages, driven in-process by NiceGUI's simulated `user` against a real Flowboard (SQLite in a temp folder).

The canvas is a browser component: here its events are triggered with the payloads it sends (tests/
test_editor_browser.py drives the real one in Chromium).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from nicegui import ElementFilter
from nicegui.testing import User

from flowboard.model import Flow, parse_flow
from flowboard.services import Flowboard, load_examples
from flowboard.store.tables import credentials_t, runs_t
from flowboard.ui.canvas import FlowCanvas
from flowboard.ui.graph import CanvasSync

from .jsoncorpus import BAD_JSON
from .pagekit import page_fixtures

pytest_plugins = ["nicegui.testing.user_plugin"]
EXAMPLES = Path(__file__).resolve().parent.parent / "flows"


_keep_modules, fb, app = page_fixtures()


def shown(user: User, marker: str) -> bool:
    """Whether the element marked `marker` is visible (user.find only finds visible ones)."""
    with user:
        elements = list(ElementFilter(marker=marker))
    assert len(elements) == 1, f"{len(elements)} elements marked {marker}"
    return elements[0].visible


def one(user: User, marker: str) -> Any:
    elements = user.find(marker=marker).elements
    assert len(elements) == 1, f"{len(elements)} elements marked {marker}"
    return next(iter(elements))


async def until(check: Any, timeout: float = 5.0) -> None:
    """Wait until `check()` is true (a background task, a run), failing after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still not true after {timeout} s: {check}")
        await asyncio.sleep(0.02)


def simple_flow(**extra: Any) -> Flow:
    return parse_flow({
        "id": "greet", "name": "Greet",
        "nodes": [
            {"id": "manual", "type": "trigger.manual", "config": {"items": [{"name": "Ada"}, {"name": "Bob"}]}},
            {"id": "set", "type": "data.set", "name": "Add greeting", "position": {"x": 240, "y": 0},
             "config": {"fields": [{"name": "greeting", "value": "Hello {{ item.name }}"}]}},
        ],
        "edges": [{"source": "manual", "target": "set"}], **extra})


# -- flows page --------------------------------------------------------------------------------------------------------

async def test_first_visit_shows_the_examples_and_search_filters(user: User, app: Flowboard) -> None:
    load_examples(app, EXAMPLES)
    await user.open("/")
    await user.should_see("Vacation request")
    await user.should_see("Invoice approval")
    user.find(marker="search").type("vacation")
    await user.should_see("Vacation request")
    with user.scope(marker="flow-list"):  # the list is filtered; the templates below it stay
        await user.should_not_see("Invoice approval")
    user.find(marker="search").type("zzz")
    await user.should_see(marker="no-match")


async def test_create_opens_the_editor_with_a_manual_trigger(user: User, app: Flowboard) -> None:
    await user.open("/")
    user.find(marker="new-flow").click()
    await user.should_see(marker="name-input")
    one(user, "name-input").value = "Onboarding"
    user.find(marker="name-ok").click()
    await user.should_see(marker="canvas")
    [summary] = app.store.list_flows()
    assert summary.name == "Onboarding" and summary.version == 1
    flow = app.store.get_flow(summary.id).flow
    assert [n.type for n in flow.nodes] == ["trigger.manual"]
    canvas = one(user, "canvas")
    assert [n["type"] for n in canvas.props["nodes"]] == ["trigger.manual"]


async def test_rename_duplicate_and_delete_with_confirmation(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/")
    user.find(marker="rename:greet").click()
    await user.should_see(marker="name-input")
    one(user, "name-input").value = "Greet everyone"
    user.find(marker="name-ok").click()
    await until(lambda: app.store.get_flow("greet").version == 2)
    await user.should_see("Greet everyone")
    assert app.store.get_flow("greet").flow.name == "Greet everyone"
    assert app.store.get_flow("greet").version == 2

    user.find(marker="duplicate:greet").click()
    await user.should_see("Greet everyone (copy)")
    copy = next(f for f in app.store.list_flows() if f.id != "greet")
    assert app.store.get_flow(copy.id).flow.nodes == app.store.get_flow("greet").flow.nodes

    user.find(marker=f"delete:{copy.id}").click()
    await user.should_see("cannot be undone")
    user.find("Cancel").click()
    await asyncio.sleep(0.1)
    assert app.store.flow_exists(copy.id)
    user.find(marker=f"delete:{copy.id}").click()
    await user.should_see(marker="confirm-delete")
    user.find(marker="confirm-delete").click()
    await user.should_not_see(marker=f"flow:{copy.id}")
    assert not app.store.flow_exists(copy.id)


async def test_export_downloads_the_flow_file(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/")
    user.find(marker="export:greet").click()
    response = await user.download.next()
    assert response.content.decode() == app.export_flow("greet")
    assert parse_flow(response.content) == app.store.get_flow("greet").flow


async def test_import_pasted_json_and_a_broken_file_lists_every_problem(user: User, app: Flowboard) -> None:
    await user.open("/")
    broken = json.loads(simple_flow().model_dump_json())
    broken["nodes"][1]["type"] = "data.nope"
    broken["nodes"].append({"id": "f", "type": "logic.filter", "config": {"combine": "maybe"}})
    broken["edges"].append({"source": "set", "target": "ghost"})
    user.find(marker="import").click()
    await user.should_see(marker="import-text")
    one(user, "import-text").value = json.dumps(broken)
    user.find(marker="import-ok").click()
    await user.should_see(marker="import-problems")
    lines = [e.text for e in user.find(marker="import-problem").elements]
    assert len(lines) >= 3, lines
    assert any('Node "Add greeting"' in line and "unknown node type" in line for line in lines), lines
    assert any('Node "f", field combine' in line for line in lines), lines
    assert any(line.startswith("Connection 2") and "ghost" in line for line in lines), lines
    assert app.store.list_flows() == []

    one(user, "import-text").value = "{not json"
    user.find(marker="import-ok").click()
    await user.should_see("This is not JSON at line 1")
    assert app.store.list_flows() == []

    one(user, "import-text").value = simple_flow().model_dump_json()
    user.find(marker="import-ok").click()
    await user.should_see('Imported "Greet"')
    assert app.store.get_flow("greet").flow == simple_flow()


async def test_import_refuses_the_bad_json_corpus_with_its_place(user: User, app: Flowboard) -> None:
    await user.open("/")
    user.find(marker="import").click()
    await user.should_see(marker="import-text")
    for name, (raw, expected) in BAD_JSON.items():
        text = raw.decode("utf-8", "replace")
        if "UTF-8" in expected or "surrogate" in expected:
            continue  # text typed into the page is always UTF-8; these reach the reader as uploads or API bodies
        one(user, "import-text").value = text
        user.find(marker="import-ok").click()
        await user.should_see(marker="import-problems")
        lines = [e.text for e in user.find(marker="import-problem").elements]
        assert any(expected.lower() in line.lower() for line in lines), (name, lines)
    assert app.store.list_flows() == []


async def test_pasted_nodes_over_the_json_limits_are_left_out_with_a_message(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    canvas = canvas_of(user)
    nodes = json.loads(json.dumps(canvas.props["nodes"]))
    edges = json.loads(json.dumps(canvas.props["edges"]))
    deep: Any = "leaf"
    for _ in range(100):
        deep = {"a": deep}
    pasted = [{**FILTER_NODE, "id": "deep", "config": {"value": deep}},
              {**FILTER_NODE, "id": "nan", "config": {"value": float("nan")}},
              {**FILTER_NODE, "id": "pins", "type": "trigger.manual", "pinned": [{"x": deep}]}]
    change(user, [*nodes, *pasted], edges)
    for node_id in ("deep", "nan", "pins"):
        await user.should_see(f"The node {node_id} was left out")
    await user.should_see("nested more than 64 levels deep")
    await user.should_see("NaN and Infinity are not JSON numbers")
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    assert [n.id for n in app.store.get_flow("greet").flow.nodes] == ["manual", "set"]


async def test_active_switch_turns_triggers_on_and_off(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/")
    user.find(marker="active:greet").click()
    await user.should_see("Active: its triggers now start runs")
    assert app.store.get_flow("greet").active
    user.find(marker="active:greet").click()
    await user.should_see("Inactive: its triggers are off")
    assert not app.store.get_flow("greet").active


async def test_the_flows_page_shows_each_listening_triggers_connection(user: User, app: Flowboard) -> None:
    from .brokerkit import fast_reconnects, free_port, need

    need("RabbitMQ", 5672)
    fast_reconnects(app)
    queue = f"fb-ui-{time.time_ns()}"

    def consumer(flow_id: str, port: int) -> Flow:
        return parse_flow({"id": flow_id, "name": f"Orders {flow_id}", "nodes": [
            {"id": "in", "type": "rabbitmq.consume", "config": {"queue": queue, "url": f"amqp://127.0.0.1:{port}/",
                                                               "declare": False}}], "edges": []})

    app.save_flow(consumer("down", free_port()), None)  # nothing listens there
    app.save_flow(consumer("up", 5672), None)
    import aio_pika

    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    channel = await connection.channel()
    await channel.declare_queue(queue, auto_delete=True)
    try:
        await user.open("/")
        assert not shown(user, "connection:up")  # inactive: nothing to show
        user.find(marker="active:up").click()
        user.find(marker="active:down").click()
        await user.should_see(f"Connected to RabbitMQ (queue {queue})", retries=100)
        await user.should_see("Reconnecting to RabbitMQ: connection refused, next try in", retries=100)
        user.find(marker="active:up").click()
        await until(lambda: not shown(user, "connection:up"))
    finally:
        app.deactivate("down")
        await connection.close()


# -- editor ------------------------------------------------------------------------------------------------------------

def canvas_of(user: User) -> FlowCanvas:
    return one(user, "canvas")


def change(user: User, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> None:
    """What the canvas sends after an edit: the whole graph."""
    user.find(marker="canvas").trigger("change", {"nodes": nodes, "edges": edges})


def select(user: User, *ids: str) -> None:
    user.find(marker="canvas").trigger("select", {"ids": list(ids)})


FILTER_NODE = {"id": "filter", "type": "logic.filter", "name": "Filter", "position": {"x": 480, "y": 0},
               "inputs": ["main"], "outputs": ["main"], "disabled": False}


async def test_canvas_edits_mark_dirty_and_save_keeps_inspector_config(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    assert not shown(user, "dirty")
    canvas = canvas_of(user)
    nodes = json.loads(json.dumps(canvas.props["nodes"]))
    edges = json.loads(json.dumps(canvas.props["edges"]))
    assert nodes[1]["config"] == simple_flow().nodes[1].config  # config rides along as an extra key
    nodes[1]["position"] = {"x": 300, "y": 40}
    connection = {"source": "set", "source_port": "main", "target": "filter", "target_port": "main"}
    change(user, [*nodes, FILTER_NODE], [*edges, connection])
    await until(lambda: shown(user, "dirty"))
    assert one(user, "version").text == "v1 · edited"

    # An inspector edit the canvas has not been sent yet survives a canvas change (a move) that carries the old config.
    select(user, "set")
    with user.scope(marker="panel:parameters"):
        user.find(marker="input:fields[0].name").type("_text")
    change(user, [*nodes, FILTER_NODE], edges)
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    stored = app.store.get_flow("greet")
    assert stored.version == 2 and not shown(user, "dirty")
    flow = stored.flow
    assert [n.id for n in flow.nodes] == ["manual", "set", "filter"]
    assert flow.node("set").position.x == 300
    assert flow.node("set").config["fields"][0]["name"] == "greeting_text"
    assert flow.node("filter").name == "" and flow.node("filter").config == {}
    assert [e.key for e in flow.edges] == [("manual", "main", "set", "main")]
    await until(lambda: canvas.props["nodes"][1]["config"]["fields"][0]["name"] == "greeting_text")  # synced


async def test_saving_over_another_tabs_save_asks_and_can_save_a_copy(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    app.save_flow(simple_flow(description="changed elsewhere"), 1)  # another tab
    one(user, "flow-name").value = "Greet mine"
    user.find(marker="save").click()
    await user.should_see("Someone saved this flow in another tab (version 2). Reload it, or save yours as a copy")
    assert app.store.get_flow("greet").flow.description == "changed elsewhere"
    user.find(marker="conflict-copy").click()
    await until(lambda: len(app.store.list_flows()) == 2)
    copy = next(f for f in app.store.list_flows() if f.id != "greet")
    assert copy.name == "Greet mine (copy)"
    assert app.store.get_flow("greet").version == 2 and app.store.get_flow("greet").flow.name == "Greet"


async def test_saving_a_flow_deleted_in_another_tab_offers_a_copy(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    app.delete_flow("greet")
    user.find(marker="save").click()
    await user.should_see("Someone deleted this flow in another tab. Save yours as a copy to keep it.")
    await user.should_not_see(marker="conflict-reload")
    user.find(marker="conflict-copy").click()
    await until(lambda: len(app.store.list_flows()) == 1)
    assert app.store.list_flows()[0].name == "Greet (copy)"


async def test_conflict_reload_takes_the_stored_flow(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    app.save_flow(simple_flow(description="changed elsewhere"), 1)
    one(user, "flow-name").value = "Greet mine"
    user.find(marker="save").click()
    await user.should_see(marker="conflict-reload")
    user.find(marker="conflict-reload").click()
    await user.should_see("Reloaded version 2")
    assert one(user, "flow-name").value == "Greet"
    assert one(user, "version").text == "v2"


async def test_inspector_checks_config_on_the_server_and_edits_settings(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    select(user, "set")
    await user.should_see(marker="panel:parameters")
    assert one(user, "inspector:name").text == "Add greeting"
    with user.scope(marker="panel:parameters"):
        user.find(marker="input:fields[0].name").clear()
        await user.should_see(marker="error:fields[0].name")
    user.find(marker="tab:settings").click()  # drawn when first shown
    with user.scope(marker="panel:settings"):
        user.find(marker="input:retries").type("2")
        user.find(marker="input:name").clear().type("Greeter")
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    node = app.store.get_flow("greet").flow.node("set")
    assert node.settings.retries == 2 and node.name == "Greeter"
    assert "name" not in node.config["fields"][0]  # kept as edited; the run check reports it
    await user.should_see("problem(s) to fix before it can run")


# -- test runs ---------------------------------------------------------------------------------------------------------

def statuses(user: User) -> dict[str, Any]:
    return canvas_of(user).props["status"]


async def test_run_shows_each_nodes_state_and_data_and_is_recorded(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    user.find(marker="run").click()
    await until(lambda: statuses(user).get("set", {}).get("state") == "succeeded")
    assert statuses(user)["set"]["count"] == 2 and statuses(user)["manual"]["state"] == "succeeded"
    await user.should_see(marker="run-link")
    [run] = app.store.list_runs(flow_id="greet")
    assert (run.source, run.flow_version, run.status.value) == ("editor", 1, "succeeded")
    assert run.output == [{"name": "Ada", "greeting": "Hello Ada"}, {"name": "Bob", "greeting": "Hello Bob"}]

    select(user, "set")
    user.find(marker="tab:data").click()
    with user.scope(marker="panel:data"):
        await user.should_see(marker="table:output:main")
        table = one(user, "table:output:main")
        assert [r["c1"] for r in table.rows] == ["Hello Ada", "Hello Bob"]
        assert one(user, "table:input:main").rows[0]["c0"] == "Ada"
        one(user, "mode:output").value = "json"
        await user.should_see(marker="json:output:main")
    # the picker offers the fields of the items that came in, and expressions preview against them
    with user.scope(marker="panel:parameters"):
        user.find(marker="pick:fields[0].value").click()
        await user.should_see("item.name")
        await user.should_see('"Hello Ada"')


async def test_unsaved_changes_run_too_and_problems_stop_a_run(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    canvas = canvas_of(user)
    nodes = json.loads(json.dumps(canvas.props["nodes"]))
    change(user, [*nodes, FILTER_NODE], canvas.props["edges"])  # a filter with no condition, connected to nothing
    user.find(marker="run").click()
    await user.should_see(marker="problems")
    assert statuses(user)["filter"]["state"] == "failed"
    assert app.store.list_runs(flow_id="greet") == []
    change(user, nodes, canvas.props["edges"])
    user.find(marker="run").click()
    await until(lambda: len(app.store.list_runs(flow_id="greet")) == 1
                and app.store.list_runs(flow_id="greet")[0].status.finished)
    assert app.store.list_runs(flow_id="greet")[0].flow_version == 1  # back to the saved flow exactly
    await user.should_not_see(marker="problems")


def finished_runs(app: Flowboard, flow_id: str) -> list[Any]:
    return [r for r in app.store.list_runs(flow_id=flow_id) if r.status.finished]


async def test_a_refused_run_leaves_no_badge_of_the_run_before_and_a_fix_clears_its_mark(user: User,
                                                                                         app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    user.find(marker="run").click()
    await until(lambda: statuses(user).get("set", {}).get("state") == "succeeded")
    canvas = canvas_of(user)
    nodes = json.loads(json.dumps(canvas.props["nodes"]))
    edges = json.loads(json.dumps(canvas.props["edges"]))
    filter_edge = {"source": "set", "source_port": "main", "target": "filter", "target_port": "main"}
    change(user, [*nodes, FILTER_NODE], [*edges, filter_edge])
    user.find(marker="run").click()
    await user.should_see(marker="problems")
    assert set(statuses(user)) == {"filter"}  # the problem, and no green badge of the run before
    assert statuses(user)["filter"]["state"] == "failed"
    await user.should_not_see(marker="steps")  # the panel shows the refusal too, not the old run's steps
    await user.should_not_see(marker="run-status")

    change(user, [*nodes, {**FILTER_NODE, "config": {"conditions": [{"field": "name", "op": "exists"}]}}],
           [*edges, filter_edge])
    await user.should_not_see(marker="problems")  # fixed: the mark goes at once, before any run
    assert statuses(user) == {}
    user.find(marker="run").click()
    await until(lambda: len(finished_runs(app, "greet")) == 2)
    await until(lambda: set(statuses(user)) == {"manual", "set", "filter"})
    assert {s["state"] for s in statuses(user).values()} == {"succeeded"}


async def test_a_new_run_shows_only_its_own_states(user: User, app: Flowboard) -> None:
    flow = simple_flow()
    broken = flow.model_copy(update={"nodes": [
        flow.nodes[0].model_copy(update={"config": {"items": [{"name": "Ada", "n": 0}]}}),
        flow.nodes[1].model_copy(update={"config": {"fields": [{"name": "x", "value": "{{ 1 / item.n }}"}]}})]})
    app.save_flow(broken, None)
    await user.open("/flow/greet")
    user.find(marker="run").click()
    await until(lambda: statuses(user).get("set", {}).get("state") == "failed")
    assert statuses(user)["set"]["message"]
    select(user, "set")
    with user.scope(marker="panel:parameters"):
        one(user, "expr:fields[0].value").value = "{{ item.n + 1 }}"
    select(user)
    user.find(marker="run").click()
    await until(lambda: len(finished_runs(app, "greet")) == 2)
    await until(lambda: statuses(user).get("set", {}).get("state") == "succeeded")
    assert statuses(user)["set"] == {"state": "succeeded", "count": 1, "message": None}
    await user.should_not_see(marker="run-error")  # no message of the failed run is left in the panel


async def test_empty_required_fields_of_every_node_stop_the_run_before_anything_runs(user: User,
                                                                                    app: Flowboard) -> None:
    flow = parse_flow({"id": "db", "name": "DB", "nodes": [
        {"id": "manual", "type": "trigger.manual"},
        {"id": "look", "type": "sql.query", "name": "Look up leave", "position": {"x": 240, "y": 0},
         "config": {"query": "SELECT 1 WHERE :who = 'ada'", "parameters": {"who": "{{ item.who }}"}}},
        {"id": "send", "type": "http.request", "name": "Tell", "position": {"x": 480, "y": 0},
         "config": {"url": "", "body": {"type": "json", "data": {"who": "{{ item.who }}"}}}},
    ], "edges": [{"source": "manual", "target": "look"}, {"source": "look", "target": "send"}]})
    problems = app.check(flow)
    assert {p.node_id for p in problems} == {"look", "send"}, problems  # one check, every node's problems
    app.save_flow(flow, None)
    await user.open("/flow/db")
    user.find(marker="run").click()
    await user.should_see(marker="problems")
    await user.should_see("Look up leave")
    assert set(statuses(user)) == {"look", "send"}
    assert app.store.list_runs(flow_id="db") == []  # refused before the trigger ran


async def test_pinned_items_start_test_runs(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    user.find(marker="run").click()
    await until(lambda: statuses(user).get("set", {}).get("state") == "succeeded")
    select(user, "manual")
    user.find(marker="tab:data").click()
    user.find(marker="pin").click()
    await user.should_see(marker="unpin")
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    assert app.store.get_flow("greet").flow.node("manual").pinned == [{"name": "Ada"}, {"name": "Bob"}]
    stored = app.store.get_flow("greet").flow
    changed = stored.model_copy(update={"nodes": [stored.nodes[0].model_copy(update={"pinned": [{"name": "Cy"}]}),
                                                  stored.nodes[1]]})
    app.save_flow(changed, 2)
    await user.open("/flow/greet")
    user.find(marker="run").click()
    await until(lambda: len(app.store.list_runs(flow_id="greet")) == 2
                and app.store.list_runs(flow_id="greet")[0].status.finished)
    latest = app.store.list_runs(flow_id="greet")[0]
    assert latest.input == [{"name": "Cy"}]
    assert latest.output == [{"name": "Cy", "greeting": "Hello Cy"}]


async def test_run_this_node_reuses_earlier_outputs(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    user.find(marker="run").click()
    await until(lambda: statuses(user).get("set", {}).get("state") == "succeeded")
    first = app.store.list_runs(flow_id="greet")[0]
    select(user, "set")
    with user.scope(marker="panel:parameters"):
        one(user, "expr:fields[0].value").value = "Hi {{ item.name }}"
    user.find(marker="run-node").click()
    await until(lambda: len(app.store.list_runs(flow_id="greet")) == 2
                and app.store.list_runs(flow_id="greet")[0].status.finished)
    second = app.store.list_runs(flow_id="greet")[0]
    assert second.id != first.id and second.flow_version is None  # unsaved edit
    steps = app.store.get_steps(second.id)
    assert set(steps) == {"manual", "set"}
    first_steps = app.store.get_steps(first.id)
    assert steps["manual"].started == first_steps["manual"].started  # reused, not run again
    assert second.output == [{"name": "Ada", "greeting": "Hi Ada"}, {"name": "Bob", "greeting": "Hi Bob"}]


async def test_node_view_shows_input_fields_form_and_output_and_running_the_node_updates_it(
        user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    user.find(marker="canvas").trigger("open", {"id": "set"})  # a double click on the node
    await user.should_see(marker="node-view:form")
    with user.scope(marker="node-view:input"):
        await user.should_see(marker="input:none")  # no run yet: it says how to get input
    with user.scope(marker="node-view:output"):
        await user.should_see("No output yet")
    user.find(marker="run-node").click()
    with user.scope(marker="node-view:output"):  # the node's output, at once, without another click
        await user.should_see(marker="table:output:main")
        assert [r["c1"] for r in one(user, "table:output:main").rows] == ["Hello Ada", "Hello Bob"]
    with user.scope(marker="node-view:input"):  # the fields coming in, ready to drag into the form
        await user.should_see(marker="schema:input:main")
        await user.should_see(marker="input-field:name")
        one(user, "mode:input").value = "table"
        await user.should_see(marker="table:input:main")
    with user.scope(marker="node-view:form"):
        one(user, "expr:fields[0].value").value = "Hi {{ item.name }}"
    user.find(marker="run-node").click()
    await until(lambda: len(finished_runs(app, "greet")) == 2)
    with user.scope(marker="node-view:output"):
        await until(lambda: [r["c1"] for r in one(user, "table:output:main").rows] == ["Hi Ada", "Hi Bob"])
    user.find(marker="node-view-close").click()
    await user.should_not_see(marker="node-view:form")
    await user.should_see(marker="tab:data")  # back beside the canvas, the node still selected


async def test_node_view_input_panel_offers_a_download_of_the_files_coming_in(user: User, app: Flowboard) -> None:
    """The three-column node view: a file in the items coming in shows with name, type and size and a download link
    to that run's file, as the output panel does."""
    app.save_flow(parse_flow({
        "id": "files", "name": "Files in",
        "nodes": [
            {"id": "manual", "type": "trigger.manual", "config": {"items": [{"name": "Ada"}]}},
            {"id": "make", "type": "convert.to_file", "position": {"x": 240, "y": 0},
             "config": {"format": "json", "name": "team"}},
            {"id": "set", "type": "data.set", "position": {"x": 480, "y": 0},
             "config": {"fields": [{"name": "seen", "value": True}]}},
        ],
        "edges": [{"source": "manual", "target": "make"}, {"source": "make", "target": "set"}]}), None)
    await user.open("/flow/files")
    user.find(marker="canvas").trigger("open", {"id": "set"})
    await user.should_see(marker="node-view:form")
    user.find(marker="run-node").click()
    await until(lambda: len(finished_runs(app, "files")) == 1)
    run = finished_runs(app, "files")[0]
    ref = app.store.get_steps(run.id)["make"].outputs["main"][0]["file"]
    with user.scope(marker="node-view:input"):
        await user.should_see(marker="file:team.json")
        await user.should_see(f"JSON file · {ref['size']} bytes")
        link = one(user, "download:team.json")
        assert link.props["href"] == f"/run/{run.id}/files/{ref['$file']}"
    found, where = app.file_of_run(run.id, ref["$file"])  # what the link serves: that run's file
    assert found["name"] == "team.json" and (where.read_bytes() if isinstance(where, Path) else where)
    with user.scope(marker="node-view:output"):
        await user.should_see(marker="table:output:main")


async def test_a_node_the_editor_named_says_what_it_does_and_names_never_repeat(user: User, app: Flowboard) -> None:
    from flowboard.datatables import Column, TableSchema

    app.tables.tables.create(TableSchema(name="Employees", columns=[Column(name="employee")]))
    flow = simple_flow()
    app.save_flow(flow.model_copy(update={"nodes": [*flow.nodes, *parse_flow({"id": "x", "name": "x", "nodes": [
        {"id": "table", "type": "data.table", "name": "Data table", "position": {"x": 480, "y": 0}},
        {"id": "table_2", "type": "data.table", "name": "Find rows in Employees", "position": {"x": 480, "y": 200},
         "config": {"table": "Employees"}}], "edges": []}).nodes]}), None)
    await user.open("/flow/greet")
    select(user, "table")
    with user.scope(marker="panel:parameters"):
        one(user, "input:table").value = "Employees"
    await until(lambda: one(user, "inspector:name").text == "Find rows in Employees 2")  # the other has that name
    await until(lambda: [n["name"] for n in canvas_of(user).props["nodes"]][2] == "Find rows in Employees 2")
    # A name the user gives is kept when the config changes, and a taken one is refused with a message.
    user.find(marker="tab:settings").click()
    with user.scope(marker="panel:settings"):
        user.find(marker="input:name").clear().type("Add greeting")
        await user.should_see("Another node is already called “Add greeting”: choose another name.")
        user.find(marker="input:name").clear().type("Look up staff")
    user.find(marker="tab:parameters").click()
    with user.scope(marker="panel:parameters"):
        one(user, "input:table").value = "Leave"
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    stored = app.store.get_flow("greet").flow.node("table")
    assert (stored.name, stored.config["table"]) == ("Look up staff", "Leave")
    assert one(user, "inspector:name").text == "Look up staff"


async def test_test_data_table_keeps_a_column_name_typed_just_before_adding_a_field(user: User,
                                                                                    app: Flowboard) -> None:
    from flowboard.ui.flows_page import new_flow

    flow = new_flow("Test data")
    app.save_flow(flow, None)
    await user.open(f"/flow/{flow.id}")
    select(user, "manual")
    with user.scope(marker="panel:parameters"):
        one(user, "column:0:items").value = "employee"  # typed; no blur comes before the next click
        user.find(marker="add-column:items").click()
        one(user, "column:1:items").value = "days"
        user.find(marker="add-item:items").click()
        one(user, "cell:0:0:items").value = "ada"
        one(user, "cell:0:1:items").value = "3"
        assert one(user, "column:0:items").value == "employee"
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    assert app.store.get_flow(flow.id).flow.node("manual").config["items"] == [{"employee": "ada", "days": 3}]


async def test_the_only_credential_of_its_type_is_chosen_for_a_new_node(user: User, app: Flowboard) -> None:
    app.store.set_credential("Mail", "smtp", {"host": "127.0.0.1", "port": "2525", "security": "plain"})
    app.store.set_credential("Other", "bearer", {"token": "t0ken-1234"})
    flow = simple_flow()
    send = parse_flow({"id": "x", "name": "x", "nodes": [{"id": "send", "type": "email.send"}], "edges": []}).nodes[0]
    app.save_flow(flow.model_copy(update={"nodes": [*flow.nodes, send]}), None)
    await user.open("/flow/greet")
    select(user, "send")
    await user.should_see(marker="panel:parameters")
    assert one(user, "input:credential").value == "Mail"
    await user.should_not_see(marker="error:credential")
    user.find(marker="save").click()
    await user.should_see("Saved as version 2")
    assert app.store.get_flow("greet").flow.node("send").config == {"credential": "Mail"}


async def test_stop_cancels_a_running_test_run(user: User, app: Flowboard) -> None:
    flow = parse_flow({"id": "slow", "name": "Slow", "nodes": [
        {"id": "manual", "type": "trigger.manual"},
        {"id": "wait", "type": "logic.wait", "position": {"x": 240, "y": 0}, "config": {"seconds": 30}}],
        "edges": [{"source": "manual", "target": "wait"}]})
    app.save_flow(flow, None)
    await user.open("/flow/slow")
    user.find(marker="run").click()
    await until(lambda: statuses(user).get("wait", {}).get("state") == "running")
    await user.should_see(marker="stop")
    user.find(marker="stop").click()
    await until(lambda: app.store.list_runs(flow_id="slow") and app.store.list_runs(flow_id="slow")[0].status.finished)
    assert app.store.list_runs(flow_id="slow")[0].status.value == "cancelled"
    await user.should_see(marker="run")
    await until(lambda: statuses(user).get("wait", {}).get("state") == "cancelled")


async def test_versions_restore_loads_an_old_version_as_unsaved(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    app.save_flow(simple_flow(name="Greet v2"), 1)
    await user.open("/flow/greet")
    assert one(user, "flow-name").value == "Greet v2"
    user.find(marker="versions").click()
    await user.should_see(marker="version:1")
    user.find(marker="restore:1").click()
    await user.should_see("Version 1 is loaded; save to keep it")
    assert one(user, "flow-name").value == "Greet"
    assert one(user, "version").text == "v2 · edited"
    user.find(marker="save").click()
    await user.should_see("Saved as version 3")
    assert app.store.get_flow("greet").flow == simple_flow()


# -- runs --------------------------------------------------------------------------------------------------------------

async def test_runs_page_lists_filters_and_updates_live(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    ok = await app.run_flow("greet")
    bad = parse_flow({"id": "bad", "name": "Bad", "nodes": [
        {"id": "manual", "type": "trigger.manual"},
        {"id": "wait", "type": "logic.wait", "position": {"x": 240, "y": 0}, "config": {"mode": "until",
                                                                                       "until": "{{ 1 / 0 }}"}}],
        "edges": [{"source": "manual", "target": "wait"}]})
    app.save_flow(bad, None)
    failed = await app.run_flow("bad")
    assert failed.status.value == "failed"
    await user.open("/runs")
    await user.should_see(marker=f"run:{ok.run_id}")
    await user.should_see(marker=f"run:{failed.run_id}")
    one(user, "filter-status").value = "failed"
    await user.should_not_see(marker=f"run:{ok.run_id}")
    await user.should_see(marker=f"run:{failed.run_id}")
    one(user, "filter-status").value = ""
    one(user, "filter-flow").value = "greet"
    await user.should_not_see(marker=f"run:{failed.run_id}")

    live = await app.run_flow("greet")  # arrives while the page is open
    await user.should_see(marker=f"run:{live.run_id}")
    user.find(marker=f"delete-run:{live.run_id}").click()
    await user.should_not_see(marker=f"run:{live.run_id}")
    assert [r.id for r in app.store.list_runs(flow_id="greet")] == [ok.run_id]


async def test_run_page_shows_each_node_state_and_data(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    result = await app.run_flow("greet")
    await user.open(f"/run/{result.run_id}")
    await user.should_see(marker="run-status")
    canvas = canvas_of(user)
    assert canvas.props["readonly"] is True
    assert canvas.props["status"]["set"] == {"state": "succeeded", "count": 2, "message": None}
    await user.should_see(marker="table:run-output:main")
    select(user, "set")
    await user.should_see(marker="table:output:main")
    assert [r["c1"] for r in one(user, "table:output:main").rows] == ["Hello Ada", "Hello Bob"]
    assert [r["c0"] for r in one(user, "table:input:main").rows] == ["Ada", "Bob"]


async def test_run_page_shows_which_item_each_output_item_came_from(user: User, app: Flowboard) -> None:
    app.save_flow(parse_flow({
        "id": "sorted", "name": "Sorted",
        "nodes": [{"id": "manual", "type": "trigger.manual", "config": {"items": [{"n": 1}, {"n": 2}, {"n": 3}]}},
                  {"id": "sort", "type": "data.sort", "position": {"x": 240, "y": 0},
                   "config": {"by": [{"field": "n", "order": "desc"}]}}],
        "edges": [{"source": "manual", "target": "sort"}]}), None)
    result = await app.run_flow("sorted")
    await user.open(f"/run/{result.run_id}")
    select(user, "sort")
    await user.should_see(marker="table:output:main")
    rows = one(user, "table:output:main").rows
    assert [(r["_from"], r["c0"]) for r in rows] == [("3", 3), ("2", 2), ("1", 1)]
    assert "_from" not in one(user, "table:input:main").rows[0]


async def test_run_page_follows_a_running_run_and_can_stop_it(user: User, app: Flowboard) -> None:
    flow = parse_flow({"id": "slow", "name": "Slow", "nodes": [
        {"id": "manual", "type": "trigger.manual"},
        {"id": "wait", "type": "logic.wait", "position": {"x": 240, "y": 0}, "config": {"seconds": 30}}],
        "edges": [{"source": "manual", "target": "wait"}]})
    app.save_flow(flow, None)
    # the editor's runs keep a wait in memory (a longer one in a stored flow's run would park it as `waiting`)
    task = asyncio.ensure_future(app.run_draft(flow, version=1))
    await until(lambda: bool(app.store.list_runs(flow_id="slow")))
    run_id = app.store.list_runs(flow_id="slow")[0].id
    await user.open(f"/run/{run_id}")
    await user.should_see(marker="cancel-run")
    user.find(marker="cancel-run").click()
    result = await task  # a 30 s wait parks the run durably: its task ends with the run waiting
    assert result.status.value in ("waiting", "cancelled")
    await until(lambda: app.store.get_run(run_id).status.value == "cancelled")
    await until(lambda: canvas_of(user).props["status"].get("wait", {}).get("state") == "cancelled")
    await user.should_see(marker="delete-run")


async def test_retention_settings_are_saved(user: User, app: Flowboard) -> None:
    await user.open("/runs")
    user.find(marker="retention").click()
    await user.should_see(marker="retention-save")
    user.find(marker="input:keep_days").clear().type("7")
    user.find(marker="input:keep_runs").clear()
    user.find(marker="input:keep_success_data").click()
    user.find(marker="retention-save").click()
    await user.should_see("Saved: runs are cleaned up by these rules")
    settings = app.store.get_settings()
    assert (settings["keep_days"], settings["keep_runs"], settings["keep_success_data"]) == (7, None, False)


async def test_unknown_flow_and_run_say_so(user: User, app: Flowboard) -> None:
    await user.open("/flow/nope")
    await user.should_see("There is no flow 'nope'")
    await user.open("/run/nope")
    await user.should_see("There is no run 'nope'")


# -- the canvas graph <-> the working copy (no page) -------------------------------------------------------------------

def test_canvas_changes_merge_into_the_working_copy(fb: Flowboard) -> None:
    sync = CanvasSync(fb.registry)
    flow = simple_flow()
    nodes, edges = sync.graph(flow)
    assert nodes[0]["name"] == "Manual trigger" and nodes[1]["config"] == flow.nodes[1].config
    assert nodes[1]["outputs"] == ["main"] and "pinned" not in nodes[0]

    # The inspector changed the config; the canvas, not told yet, reports a move with the old config.
    edited = flow.model_copy(update={"nodes": [flow.nodes[0], flow.nodes[1].model_copy(update={"config": {}})]})
    moved = json.loads(json.dumps(nodes))
    moved[1]["position"] = {"x": 999, "y": 1}
    moved[1]["disabled"] = True
    merged, adopted = sync.merge(edited, moved, edges)
    assert merged.nodes[1].config == {} and merged.nodes[1].position.x == 999 and adopted == []
    assert merged.nodes[1].settings.disabled is True

    # Undo in the canvas brings back an older copy of a node: that one is adopted.
    undone = json.loads(json.dumps(nodes))
    undone[1]["config"] = {"fields": [{"name": "x", "value": 1}]}
    merged, adopted = sync.merge(merged, undone, edges)
    assert adopted == ["set"] and merged.nodes[1].config == {"fields": [{"name": "x", "value": 1}]}
    assert merged.nodes[1].settings.disabled is False

    # A node from the palette (no extras) and a deleted one; edges to missing nodes are dropped.
    palette = {"id": "limit", "type": "data.limit", "name": "Limit", "position": {"x": 0, "y": 0},
               "inputs": ["main"], "outputs": ["main"], "disabled": False}
    merged, adopted = sync.merge(merged, [undone[0], palette], [*edges, {"source": "set", "target": "limit"}])
    assert [n.id for n in merged.nodes] == ["manual", "limit"] and adopted == ["limit"]
    assert merged.nodes[1].name == "" and merged.nodes[1].config == {}  # the type's title is not stored as a name
    assert merged.edges == []
    assert set(sync.sent) == {"manual", "limit"}


async def test_a_test_run_of_unsaved_changes_is_not_resumed_on_another_version(fb: Flowboard) -> None:
    """After a crash, an editor run of a flow that was never saved in that shape is marked crashed, not resumed on
    whatever version is stored."""
    fb.save_flow(simple_flow(), None)
    fb.store.create_run("draft-run", "greet", None, "manual", [], "editor", status="running")
    fb.store.create_run("saved-run", "greet", 1, "manual", [], "editor", status="running")
    results = await fb.resume_unfinished()
    assert [r.run_id for r in results] == ["saved-run"]
    draft = fb.store.get_run("draft-run")
    assert draft.status.value == "crashed" and "unsaved changes" in (draft.error or {}).get("message", "")


# -- credentials and API keys ------------------------------------------------------------------------------------------

async def test_credentials_are_saved_encrypted_and_never_shown(user: User, app: Flowboard) -> None:
    await user.open("/credentials")
    await user.should_see(marker="no-credentials")
    user.find(marker="new-credential").click()
    await user.should_see(marker="credential-save")
    one(user, "credential-name").value = "github"
    one(user, "credential-type").value = "basic"
    await user.should_see(marker="credential-field:password")
    one(user, "credential-field:user").value = "ada"
    user.find(marker="credential-save").click()
    await user.should_see("Password (password) is required")  # nothing saved with a field missing
    assert app.store.list_credentials() == []
    one(user, "credential-field:password").value = "s3cret-pa55word"
    user.find(marker="credential-save").click()
    await user.should_see(marker="credential:github")
    assert app.store.get_credential("github") == {"user": "ada", "password": "s3cret-pa55word"}
    [info] = app.store.list_credentials()
    assert info.type == "basic"
    with app.store.engine.connect() as conn:
        raw = conn.execute(sa.select(credentials_t).where(credentials_t.c.name == "github")).one()
    assert "s3cret-pa55word" not in repr(tuple(raw)) and "ada" not in str(raw.data)
    await user.should_not_see("s3cret-pa55word")

    # editing: the secret is not shown, a blank keeps it, the user (not secret) can change
    user.find(marker="edit-credential:github").click()
    await user.should_see(marker="credential-save")
    assert one(user, "credential-field:password").value == ""
    assert one(user, "credential-field:user").value == "ada"
    one(user, "credential-field:user").value = "grace"
    user.find(marker="credential-save").click()
    await until(lambda: app.store.get_credential("github") == {"user": "grace", "password": "s3cret-pa55word"})

    user.find(marker="delete-credential:github").click()
    await user.should_see(marker="confirm-delete")
    user.find("Cancel").click()
    await asyncio.sleep(0.1)
    assert app.store.get_credential("github") is not None
    user.find(marker="delete-credential:github").click()
    await user.should_see(marker="confirm-delete")
    user.find(marker="confirm-delete").click()
    await user.should_not_see(marker="credential:github")
    assert app.store.get_credential("github") is None


async def test_credential_forms_choices_test_connection_problems_and_refused_delete(user: User, app: Flowboard,
                                                                                   tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    sa.create_engine(f"sqlite:///{db}").dispose()
    await user.open("/credentials")
    user.find(marker="new-credential").click()
    await user.should_see(marker="credential-save")
    one(user, "credential-name").value = "shop"
    one(user, "credential-type").value = "db"
    await user.should_see(marker="credential-field:kind")
    assert one(user, "credential-field:kind").value == "postgresql"  # a choice, with the usual one preset
    one(user, "credential-field:kind").value = "sqlite"
    one(user, "credential-field:database").value = str(db)
    user.find(marker="credential-save").click()
    await user.should_see(marker="credential:shop")
    assert app.store.get_credential("shop") == {"kind": "sqlite", "database": str(db)}
    await user.should_see("Database connection (PostgreSQL, MariaDB, SQLite)")
    user.find(marker="test-credential:shop").click()
    await user.should_see("Connected to the database and ran SELECT 1")

    # an OAuth2 sign-in shows the redirect URL to register, and a failed renewal on its row
    user.find(marker="new-credential").click()
    await user.should_see(marker="credential-save")
    one(user, "credential-type").value = "oauth2_code"
    await user.should_see(marker="credential-redirect-url")
    assert one(user, "credential-redirect-url").text.endswith("/oauth/callback")
    user.find("Cancel").click()
    app.store.set_credential("crm", "oauth2_code", {"authorize_url": "https://id.example.com/a",
                                                    "token_url": "https://id.example.com/t", "client_id": "c"})
    app.store.set_credential_problem("crm", "2026-11-29 10:00: Renewing the sign-in failed. Press Connect.")
    await user.open("/credentials")
    await user.should_see(marker="credential-problem:crm")
    await user.should_see(marker="connect-credential:crm")

    # a credential that a flow uses is not deleted: the flows are named
    flow = simple_flow()
    node = flow.nodes[1].model_copy(update={"type": "sql.query", "config": {"credential": "shop",
                                                                             "query": "SELECT 1"}})
    app.save_flow(flow.model_copy(update={"nodes": [flow.nodes[0], node]}), None)
    user.find(marker="delete-credential:shop").click()
    await user.should_see(marker="credential-in-use")
    await user.should_see(marker="credential-user:Greet")
    user.find("OK").click()
    assert app.store.get_credential("shop") is not None


async def test_inspector_imports_a_curl_command(user: User, app: Flowboard) -> None:
    flow = simple_flow()
    node = flow.nodes[1].model_copy(update={"type": "http.request", "config": {"url": "https://example.com"}})
    app.save_flow(flow.model_copy(update={"nodes": [flow.nodes[0], node]}), None)
    await user.open("/flow/greet")
    select(user, "set")
    await user.should_see(marker="paste-import")
    user.find(marker="paste-import").click()
    await user.should_see(marker="paste-import-apply")
    one(user, "paste-import-text").value = "wget https://example.com"
    user.find(marker="paste-import-apply").click()
    await user.should_see("This is not a curl command")
    one(user, "paste-import-text").value = ("curl -X POST https://api.example.com/users -u ada:pw-123 "
                                            "-H 'X-Trace: 1' --json '{\"name\": \"Ada\"}'")
    user.find(marker="paste-import-apply").click()
    await user.should_see("Filled the form")
    canvas = canvas_of(user)
    await until(lambda: canvas.props["nodes"][1]["config"].get("method") == "POST")
    config = canvas.props["nodes"][1]["config"]
    assert config["url"] == "https://api.example.com/users" and config["body"] == {"type": "json",
                                                                                    "data": {"name": "Ada"}}
    assert config["credential"] == "api.example.com login" and "pw-123" not in json.dumps(config)
    assert app.store.get_credential("api.example.com login") == {"user": "ada", "password": "pw-123"}


async def test_api_key_is_shown_once_and_revoking_refuses_it(user: User, app: Flowboard) -> None:
    await user.open("/credentials")
    await user.should_see(marker="no-api-keys")
    user.find(marker="new-api-key").click()
    await user.should_see(marker="api-key-create")
    one(user, "api-key-name").value = "backup script"
    user.find(marker="api-key-create").click()
    await user.should_see(marker="api-key-value")
    await user.should_see("it cannot be shown again")
    key = one(user, "api-key-value").text
    assert app.store.check_api_key(key) is not None
    [info] = app.store.list_api_keys()
    assert info.name == "backup script" and key.startswith(info.prefix)
    user.find(marker="api-key-done").click()
    await user.should_not_see(marker="api-key-value")
    await user.should_see(marker=f"api-key:{info.id}")
    await user.should_see(f"{info.prefix}…")
    await user.should_not_see(key)

    user.find(marker=f"revoke:{info.id}").click()
    await user.should_see(marker="confirm-revoke")
    user.find(marker="confirm-revoke").click()
    await user.should_not_see(marker=f"api-key:{info.id}")
    assert app.store.check_api_key(key) is None


# -- runs: retry and the time filter -----------------------------------------------------------------------------------

def failing_flow() -> Flow:
    return parse_flow({"id": "call", "name": "Call", "nodes": [
        {"id": "manual", "type": "trigger.manual", "config": {"items": [{"n": 1}]}},
        {"id": "set", "type": "data.set", "position": {"x": 240, "y": 0},
         "config": {"fields": [{"name": "m", "value": "{{ item.n }}"}]}},
        {"id": "call", "type": "http.request", "position": {"x": 480, "y": 0},
         "config": {"url": "http://127.0.0.1:9/nothing", "timeout": 2}}],  # a closed port: it always fails
        "edges": [{"source": "manual", "target": "set"}, {"source": "set", "target": "call"}]})


async def test_retry_from_the_runs_page_and_the_run_page_runs_it_again(user: User, app: Flowboard) -> None:
    app.save_flow(failing_flow(), None)
    app.save_flow(simple_flow(), None)
    ok = await app.run_flow("greet")
    failed = await app.run_flow("call")
    assert failed.status.value == "failed"
    first = app.store.get_run(failed.run_id)
    first_steps = app.store.get_steps(failed.run_id)
    await user.open("/runs")
    await user.should_see(marker=f"run:{failed.run_id}")
    await user.should_not_see(marker=f"retry:{ok.run_id}")  # only failed runs
    user.find(marker=f"retry:{failed.run_id}").click()
    await until(lambda: (r := app.store.get_run(failed.run_id)).status.finished and r.finished != first.finished)
    again = app.store.get_run(failed.run_id)
    assert again.status.value == "failed" and [r.id for r in app.store.list_runs(flow_id="call")] == [failed.run_id]
    steps = app.store.get_steps(failed.run_id)
    assert steps["set"].started == first_steps["set"].started  # kept, not run again
    assert steps["call"].started > first_steps["call"].finished  # the failed step ran again

    await user.open(f"/run/{failed.run_id}")
    await user.should_see(marker="retry-run")
    user.find(marker="retry-run").click()
    await until(lambda: (r := app.store.get_run(failed.run_id)).status.finished and r.finished != again.finished)
    await user.should_see(marker="run-status")
    assert app.store.get_steps(failed.run_id)["call"].started > steps["call"].finished


async def test_runs_time_filter_hides_old_runs(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    new = await app.run_flow("greet")
    old = await app.run_flow("greet")
    with app.store.engine.begin() as conn:
        conn.execute(runs_t.update().where(runs_t.c.id == old.run_id).values(created=time.time() - 2 * 86400))
    await user.open("/runs")
    await user.should_see(marker=f"run:{old.run_id}")
    one(user, "filter-since").value = "24h"
    await user.should_not_see(marker=f"run:{old.run_id}")
    await user.should_see(marker=f"run:{new.run_id}")
    one(user, "filter-since").value = "7d"
    await user.should_see(marker=f"run:{old.run_id}")
    one(user, "filter-since").value = "1h"
    await user.should_not_see(marker=f"run:{old.run_id}")
    one(user, "filter-since").value = ""
    await user.should_see(marker=f"run:{old.run_id}")


async def test_export_duplicate_and_import_from_the_editor(user: User, app: Flowboard) -> None:
    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    user.find(marker="flow-name").clear().type("Greet people")  # unsaved: export and duplicate take the canvas's copy
    user.find(marker="export").click()
    exported = json.loads((await user.download.next()).content)
    assert exported["name"] == "Greet people" and [n["id"] for n in exported["nodes"]] == ["manual", "set"]

    user.find(marker="duplicate").click()
    await user.should_see('Created "Greet people"')
    copies = [f for f in app.store.list_flows() if f.id != "greet"]
    assert [c.name for c in copies] == ["Greet people"]

    flow, _ = app.import_flow(exported)  # the name is taken now, and so is the id
    assert (flow.name, flow.id != "greet") == ("Greet people (copy)", True)
    again, _ = app.import_flow(exported)
    assert again.name == "Greet people (copy 2)"


async def test_every_icon_button_in_the_editor_has_a_label_and_a_tooltip(user: User, app: Flowboard) -> None:
    from nicegui import ui

    app.save_flow(simple_flow(), None)
    await user.open("/flow/greet")
    select(user, "set")
    await user.should_see(marker="panel:parameters")
    with user:
        buttons = [b for b in ElementFilter(kind=ui.button) if not b.props.get("label") and b.props.get("icon")]
        tips = {t.props.get("target") for t in ElementFilter(kind=ui.tooltip)}  # a tooltip names its element
        unnamed = [b.props["icon"] for b in buttons if not b.props.get("aria-label") or f"#{b.html_id}" not in tips]
    assert len(buttons) >= 5 and not unnamed, unnamed


async def test_templates_show_the_business_flows_and_make_a_copy_to_edit(user: User, app: Flowboard) -> None:
    from flowboard.ui.templates import templates

    found = {t.flow.id: t for t in templates()}
    assert set(found) >= {"vacation-request", "invoice-approval", "crm-to-invoices", "customer-hub"}
    assert all(t.summary and t.how and t.picture.startswith("<svg") for t in found.values())
    await user.open("/")
    for flow_id in found:
        await user.should_see(marker=f"template:{flow_id}")
    await user.should_see("Start from a template")
    before = {f.id for f in app.store.list_flows()}
    user.find(marker="use-template:vacation-request").click()
    await until(lambda: len(app.store.list_flows()) == len(before) + 1)
    made = next(f for f in app.store.list_flows() if f.id not in before)
    taken = "Vacation request" in {app.store.get_flow(i).flow.name for i in before}
    assert made.name == ("Vacation request (copy)" if taken else "Vacation request")
    template_nodes = [n.id for n in found["vacation-request"].flow.nodes]
    assert [n.id for n in app.store.get_flow(made.id).flow.nodes] == template_nodes


async def test_the_inbox_lists_what_i_may_decide_and_records_my_answers(user: User, app: Flowboard) -> None:
    """Single-user mode: the local user (an admin) sees the tasks for them and for their role, not bob's; the
    header counts them; deciding records the answer, the fields and the comment; a task decided meanwhile by
    someone else says who and when."""
    async def ask(approvers: list[str], title: str, **extra: Any) -> Any:
        app.store.create_run(f"run-{title}", "f", 1, "start", [], "manual", status="waiting")  # a parked run
        (task,) = await app.approvals.ask(
            flow_id="f", run_id=f"run-{title}", node_id="ask", item_index=0, title=title, approvers=approvers,
            data={"message": f"Please decide {title}", "fields": {"days": 3, "employee": "eve"},
                  "form": [{"name": "days_granted", "label": "Days granted", "type": "number", "default": 3}]},
            **extra)
        return task

    mine = await ask(["local"], "Vacation for eve")
    role = await ask(["role:admin"], "Invoice 7")
    await ask(["bob"], "Not mine")
    late = await ask(["local"], "Already taken")
    await user.open("/inbox")
    for task in (mine, role, late):
        await user.should_see(marker=f"task:{task.id}")
    await user.should_not_see("Not mine")
    await user.should_see("Please decide Vacation for eve")
    badge = user.find(marker="badge:inbox").elements.pop()
    assert badge.text == "3"
    user.find(marker=f"comment:{mine.id}").type("enjoy")
    user.find(marker=f"decide:{mine.id}:approve").click()
    await until(lambda: app.approvals.store.get(mine.id).status == "decided")
    await until(lambda: any("Recorded: approved by local" in m for m in user.notify.messages))
    stored = app.approvals.store.get(mine.id)
    assert (stored.decision, stored.responder, stored.comment, stored.channel) == ("approve", "local", "enjoy",
                                                                                   "inbox")
    assert stored.fields == {"days_granted": 3}
    await app.approvals.decide(late.id, "reject", "carol")  # someone else, in another tab or by a link
    user.find(marker=f"decide:{late.id}:approve").click()
    await until(lambda: any("Already rejected by carol" in m for m in user.notify.messages))
    user.find(marker=f"hand-on:{role.id}").click()  # hand the role's task on: to nobody, then to carol
    await user.should_see(marker=f"hand:{role.id}")
    user.find(marker=f"hand:{role.id}").click()
    await until(lambda: any("Write who decides instead" in m for m in user.notify.messages))
    user.find(marker=f"hand-to:{role.id}").type("carol")
    user.find(marker=f"hand:{role.id}").click()
    await until(lambda: any("Handed to carol: it is theirs to decide now." in m for m in user.notify.messages))
    assert app.approvals.store.get(role.id).assignees == ["carol"]
    await user.should_not_see(marker=f"task:{role.id}")
    user.find(marker="inbox-filter").click()  # the toggle: pick "Decided by me" by setting its value
    toggle = user.find(marker="inbox-filter").elements.pop()
    toggle.set_value("decided")
    await user.should_see(marker=f"task:{mine.id}")
    await user.should_see("This request was approved by local")


async def test_the_users_page_adds_changes_and_removes_users(user: User, app: Flowboard) -> None:
    """An admin (here the local user, before anyone signs in) adds the first user (an admin) and an approver, changes
    her roles, gives her a new password, sets her away with a delegate, and removes her; the rules of the accounts
    (the last admin stays, the passwords must match) are told in words."""
    from flowboard.auth.passwords import verify_password

    accounts = app.accounts

    def value(marker: str) -> Any:
        return user.find(marker=marker).elements.pop()

    async def add(name: str, password: str, again: str, roles: tuple[str, ...] = ()) -> None:
        # the last dialog is gone (the user is stored a moment before it closes: typing into it would be lost)
        await user.should_not_see(marker="new-name")
        user.find(marker="add-user").click()
        await user.should_see(marker="new-name")
        value("new-name").set_value(name)
        value("new-full-name").set_value(name.capitalize() + " Hopper")
        for role in roles:
            value(f"role:{role}").set_value(True)
        value("new-password").set_value(password)
        value("new-password-again").set_value(again)
        user.find(marker="save-user").click()

    await user.open("/users")
    await user.should_see(marker="no-users")
    await user.should_see(marker="nav:users")
    await add("boss", "boss-password-1", "boss-password-1")  # the first user: admin is ticked already
    await until(lambda: [u.name for u in accounts.list_users()] == ["boss"], timeout=15)  # argon2, loaded
    assert accounts.get_user("boss").roles == ["admin"]

    await add("grace", "grace-pass-1", "grace-pass-2")
    await user.should_see("The two passwords are not the same. Type the password twice.")
    value("new-password-again").set_value("grace-pass-1")
    user.find(marker="save-user").click()
    await until(lambda: len(accounts.list_users()) == 2, timeout=15)
    grace = accounts.get_user("grace")
    assert grace.roles == ["approver"] and grace.full_name == "Grace Hopper"
    await user.should_see(marker="user:grace")

    assert value("roles:grace").text == "Approver"  # her roles, as words
    user.find(marker="edit-roles:grace").click()
    await user.should_see(marker="save-roles")
    value("role:requester").set_value(True)
    user.find(marker="save-roles").click()
    await until(lambda: accounts.get_user("grace").roles == ["approver", "requester"])

    user.find(marker="edit-password:grace").click()
    await user.should_see(marker="reset-password")
    value("reset-password").set_value("short")
    value("reset-password-again").set_value("short")
    user.find(marker="save-password").click()
    await until(lambda: value("user-error").text != "")
    assert value("user-error").text == "The password is too short: use at least 8 characters."
    value("reset-password").set_value("grace-new-pass-9")
    value("reset-password-again").set_value("grace-new-pass-9")
    user.find(marker="save-password").click()
    await until(lambda: any("The password of grace is changed." in m for m in user.notify.messages),
                timeout=15)
    assert verify_password(accounts.get_user("grace").password_hash, "grace-new-pass-9")

    user.find(marker="edit-away:grace").click()
    await user.should_see(marker="delegate")
    value("delegate").set_value("boss")
    value("away-until").set_value("2999-12-24")
    user.find(marker="save-away").click()
    await until(lambda: app.approvals.store.delegate_of("grace") == "user:boss")
    await user.should_see("Away until 2999-12-24: new tasks go to boss")
    assert value("roles:grace").text == "Approver, Requester"
    user.find(marker="edit-away:grace").click()  # and back: new tasks are hers again
    await user.should_see(marker="back")
    user.find(marker="back").click()
    await until(lambda: app.approvals.store.delegate_of("grace") == "grace")
    await user.should_see(marker="user:grace")
    await user.should_not_see(marker="away:grace")

    user.find(marker="remove:boss").click()
    await user.should_see(marker="confirm-remove")
    user.find(marker="confirm-remove").click()
    await user.should_see("Boss is the only admin; make another user an admin first.")
