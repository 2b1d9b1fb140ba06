"""Templates on the flows page: the business flows in `flows/`, each as a card with a one-line description, a small
picture of the flow (drawn from its nodes' positions) and what to press to try it. "Use this template" stores a copy
(a new id, and "(copy)" after the name when it is taken) and opens it in the editor.
"""

from __future__ import annotations

import html
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from nicegui import ui

from ..errors import FlowInvalid
from ..model import Flow, parse_flow
from ..services import Flowboard

FLOWS = Path(__file__).resolve().parent.parent.parent / "flows"
CATEGORY_COLOURS = {"trigger": "#f59e0b", "logic": "#6366f1", "integration": "#10b981"}
START = "Start Flowboard with the command flowboard demo"
HOW = {  # what to press, per template (by flow id); the default says to run it
    "vacation-request": f"{START}, switch the flow on, open /form/vacation and ask for 3 days as ada; grace's email "
                        "in the mail catcher (127.0.0.1:8091/mail) has the buttons.",
    "invoice-approval": f"{START}, switch the flow on and send an invoice at /form/invoice; change a row of the "
                        "Invoice rules table to change who approves the next one.",
    "crm-to-invoices": f"{START}, then press Run: every won deal becomes an invoice; press Run again and nothing is "
                       "billed twice.",
    "customer-hub": f"{START}, switch the flow on, then change a row of the Customers table: the CRM, invoicing and "
                    "chat stand-ins receive it.",
}


@dataclass(slots=True)
class Template:
    flow: Flow
    summary: str
    how: str
    picture: str  # SVG


def templates(folder: Path = FLOWS) -> list[Template]:
    out = []
    for path in sorted(folder.glob("*.json")):
        try:
            flow = parse_flow(path.read_text())
        except (FlowInvalid, OSError):
            continue
        summary = re.split(r"(?<=[.!?])\s", flow.description.strip(), maxsplit=1)[0] if flow.description else ""
        out.append(Template(flow, summary, HOW.get(flow.id, "Open it and press Run."), picture(flow)))
    order = list(HOW)
    out.sort(key=lambda t: order.index(t.flow.id) if t.flow.id in order else len(order))
    return out


def picture(flow: Flow, width: int = 260, height: int = 96) -> str:
    """The flow's shape as a small SVG: a box per node (coloured by kind) and a line per connection."""
    if not flow.nodes:
        return ""
    xs = [n.position.x for n in flow.nodes]
    ys = [n.position.y for n in flow.nodes]
    span_x, span_y = max(max(xs) - min(xs), 1.0), max(max(ys) - min(ys), 1.0)
    box_w, box_h, pad = 22, 12, 6

    def at(node_x: float, node_y: float) -> tuple[float, float]:
        return (pad + (node_x - min(xs)) / span_x * (width - 2 * pad - box_w),
                pad + (node_y - min(ys)) / span_y * (height - 2 * pad - box_h))

    places = {n.id: at(n.position.x, n.position.y) for n in flow.nodes}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="The flow {html.escape(flow.name)}: {len(flow.nodes)} steps">']
    for edge in flow.edges:
        (x1, y1), (x2, y2) = places[edge.source], places[edge.target]
        parts.append(f'<line x1="{x1 + box_w:.0f}" y1="{y1 + box_h / 2:.0f}" x2="{x2:.0f}" y2="{y2 + box_h / 2:.0f}" '
                     'stroke="#9aa1b1" stroke-width="1.5"/>')
    for node in flow.nodes:
        x, y = places[node.id]
        kind = "trigger" if node.type.startswith("trigger.") else (
            "integration" if node.type.split(".")[0] in ("http", "sql", "email", "chat", "data") and
            node.type not in ("data.set", "data.sort", "data.limit", "data.split_out", "data.aggregate")
            else "logic")
        parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="3" '
                     f'fill="{CATEGORY_COLOURS[kind]}"/>')
    parts.append("</svg>")
    return "".join(parts)


def use(fb: Flowboard, template: Template) -> str:
    """Store a copy of the template and return its id."""
    taken = {f.name for f in fb.store.list_flows()}
    name = template.flow.name
    while name in taken:
        name = f"{name} (copy)"
    flow = template.flow.model_copy(update={"id": uuid.uuid4().hex[:12], "name": name})
    fb.store.save_flow(flow, expected_version=None, note="from a template")
    return flow.id


def templates_section(fb: Flowboard) -> None:
    """The templates as cards, for the flows page."""
    found = templates()
    if not found:
        return
    with ui.column().classes("w-full gap-2").mark("templates"):
        ui.label("Start from a template").classes("text-base font-semibold")
        ui.label("Real business flows, ready to try with the local stand-ins that the command flowboard demo starts.") \
            .classes("fb-muted")
        with ui.row().classes("w-full gap-3"):
            for template in found:
                with ui.card().classes("w-[300px] gap-1").mark(f"template:{template.flow.id}"):
                    ui.label(template.flow.name).classes("font-semibold")
                    ui.html(template.picture, sanitize=False)
                    ui.label(template.summary).classes("fb-small")
                    ui.label(f"To try it: {template.how}").classes("fb-small text-grey-8")

                    def go(t: Template = template) -> None:
                        ui.navigate.to(f"/flow/{use(fb, t)}")

                    ui.button("Use this template", icon="content_copy", on_click=go).props("flat no-caps dense") \
                        .mark(f"use-template:{template.flow.id}")
