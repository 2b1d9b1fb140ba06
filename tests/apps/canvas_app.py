"""A tiny NiceGUI app with one FlowCanvas, for the browser tests and bench/canvas_render.py.

    python tests/apps/canvas_app.py PORT

Page `/` shows a full-window canvas. Query parameters: `n` (nodes in a generated flow), `layout` (`chain`: one long
row; `grid`: rows of 20, every node visible at "fit"), `readonly`, `edges` (false: nodes only).

Test routes, outside NiceGUI's middleware: `GET /test/events` (every event the canvas sent, as {"event", "args"};
`DELETE` empties the list), `GET /test/graph` (the element's own props graph), `POST /test/call/{method}` with a JSON
list of arguments (calls `FlowCanvas.<method>(*args)` on the canvas of the page opened last).
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from nicegui import ui

from flowboard.ui.canvas import FlowCanvas

CATALOG: list[dict[str, Any]] = [
    {
        "type": "core.manual",
        "version": 1,
        "title": "Manual trigger",
        "category": "trigger",
        "icon": "play_circle",
        "description": "Starts the flow when you click Run.",
        "inputs": [],
        "outputs": ["main"],
    },
    {
        "type": "core.schedule",
        "version": 1,
        "title": "Schedule",
        "category": "trigger",
        "icon": "schedule",
        "description": "Starts the flow on a timetable (cron or every N minutes).",
        "inputs": [],
        "outputs": ["main"],
    },
    {
        "type": "logic.if",
        "version": 1,
        "title": "If",
        "category": "logic",
        "icon": "call_split",
        "description": "Routes each item to true or false by a condition.",
        "inputs": ["main"],
        "outputs": ["true", "false"],
    },
    {
        "type": "logic.merge",
        "version": 1,
        "title": "Merge",
        "category": "logic",
        "icon": "merge",
        "description": "Waits for both inputs and combines their items.",
        "inputs": ["a", "b"],
        "outputs": ["main"],
    },
    {
        "type": "http.request",
        "version": 1,
        "title": "HTTP request",
        "category": "integration",
        "icon": "http",
        "description": "Calls a web address and returns the answer as items.",
        "inputs": ["main"],
        "outputs": ["main"],
    },
    {
        "type": "mail.send",
        "version": 1,
        "title": "Send email",
        "category": "integration",
        "icon": "mail",
        "description": "Sends an email through your SMTP server.",
        "inputs": ["main"],
        "outputs": ["main"],
    },
    {  # an OpenAPI connector's operation: listed in a section under its API's name
        "type": "api.shop_api.list_items",
        "version": 1,
        "title": "List items",
        "category": "integration",
        "group": "Shop API",
        "icon": "api",
        "description": "Shop API: GET /items",
        "inputs": ["main"],
        "outputs": ["main"],
    },
]
KINDS = ["http.request", "logic.if", "mail.send"]


def generated_flow(n: int, layout: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A chain of `n` nodes: a manual trigger, then HTTP / If / email steps, each fed by the one before."""
    spec = {e["type"]: e for e in CATALOG}
    nodes, edges = [], []
    for i in range(n):
        kind = "core.manual" if i == 0 else KINDS[i % len(KINDS)]
        col, row = (i, 0) if layout == "chain" else (i % 20, i // 20)
        nodes.append(
            {
                "id": f"n{i}",
                "type": kind,
                "name": f"Step {i}",
                "position": {"x": col * 300, "y": row * 120},
                "inputs": spec[kind]["inputs"],
                "outputs": spec[kind]["outputs"],
                "disabled": False,
            }
        )
        if i:
            prev = nodes[i - 1]
            edges.append(
                {"source": prev["id"], "source_port": prev["outputs"][0], "target": f"n{i}", "target_port": "main"}
            )
    return nodes, edges


app = FastAPI()
events: list[dict[str, Any]] = []
canvases: list[FlowCanvas] = []


@app.get("/test/events")
def get_events() -> list[dict[str, Any]]:
    return events


@app.delete("/test/events")
def clear_events() -> dict[str, bool]:
    events.clear()
    return {"ok": True}


@app.get("/test/graph")
def get_graph() -> dict[str, Any]:
    return canvases[-1].graph


@app.post("/test/call/{method}")
async def call(method: str, request: Request) -> dict[str, bool]:
    getattr(canvases[-1], method)(*await request.json())
    return {"ok": True}


@ui.page("/")
def index(n: int = 0, layout: str = "chain", readonly: bool = False, edges: bool = True) -> None:
    nodes, links = generated_flow(n, layout)
    with ui.element("div").style("position: fixed; inset: 0"):
        canvas = FlowCanvas(CATALOG, nodes, links if edges else [], readonly).style("height: 100%")
    canvas.on_change(lambda e: events.append({"event": "change", "args": e.args}))  # as the editor gets them
    for name in ["select", "open", "save", "run", "ready"]:
        canvas.on(name, lambda e, name=name: events.append({"event": name, "args": e.args}))
    canvases.append(canvas)


ui.run_with(app, title="Flowboard canvas test", show_welcome_message=False)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
