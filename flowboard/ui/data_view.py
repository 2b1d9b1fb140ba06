"""A node's part in a run: state, timing, attempts, error, and its input and output items as a table or as JSON."""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import Any

from nicegui import Client, context, ui

from ..engine import Step
from ..engine.lineage import sources_of
from .layout import duration, status_chip

Items = list[dict[str, Any]]
SHOWN = 100  # items drawn per port; the JSON view and the count say how many there are
CSS = """
.fb-data .q-table th { font-weight: 600; color: #4b5563; background: #f6f7f9; }
.fb-data .q-table td, .fb-data .q-table th { font-size: 12px; padding: 3px 8px; height: 26px; }
.fb-data .q-table td { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; max-width: 240px;
  overflow: hidden; text-overflow: ellipsis; }
.fb-data .fb-port { font-size: 11px; font-weight: 700; color: #6b7280; text-transform: uppercase;
  letter-spacing: .05em; }
.fb-data pre.fb-json { background: #f6f7f9; border: 1px solid #e3e6ec; border-radius: 6px; padding: 8px;
  font-size: 12px; max-height: 360px; overflow: auto; margin: 0; white-space: pre-wrap; word-break: break-word; }
.fb-data .fb-err { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; border-radius: 6px;
  padding: 8px 10px; font-size: 12.5px; white-space: pre-wrap; word-break: break-word; }
"""


def cell(value: Any) -> Any:
    """A table cell: scalars as they are, objects and lists as short JSON."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:117] + "…"


def items_table(items: Items, mark: str, sources: list[str] | None = None) -> None:
    """`sources`: per item, which input item(s) it came from (the "from item" column), when known."""
    shown = items[:SHOWN]
    keys = list(dict.fromkeys(k for item in shown if isinstance(item, dict) for k in item))
    narrow = "width: 1%; white-space: nowrap; color: #9ca3af"
    columns = [{"name": "_i", "label": "#", "field": "_i", "align": "right", "style": narrow, "headerStyle": narrow}]
    if sources:
        columns.append({"name": "_from", "label": "from item", "field": "_from", "align": "right", "style": narrow,
                        "headerStyle": narrow})
    columns += [{"name": f"c{i}", "label": str(k), "field": f"c{i}", "align": "left"} for i, k in enumerate(keys)]
    rows = [{"_i": n + 1, **({"_from": sources[n] if n < len(sources) else ""} if sources else {}),
             **{f"c{i}": cell(item.get(k)) for i, k in enumerate(keys) if isinstance(item, dict)}}
            for n, item in enumerate(shown)]
    ui.table(columns=columns, rows=rows, row_key="_i").props("dense flat bordered wrap-cells=false") \
        .classes("w-full").mark(f"table:{mark}")
    if len(items) > SHOWN:
        ui.label(f"Showing the first {SHOWN} of {len(items)} items; the JSON view has them all.").classes("fb-small")


def items_json(items: Items, mark: str) -> None:
    text = json.dumps(items, indent=2, ensure_ascii=False, default=str)
    ui.html(f'<pre class="fb-json">{_escape(text)}</pre>', sanitize=False).classes("w-full").mark(f"json:{mark}")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_modes: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()


class ItemsView:
    """Items per port with a Table / JSON switch shared by every port of one view; the choice is kept per tab."""

    def __init__(self, title: str, ports: dict[str, Items], mark: str, empty: str,
                 sources: dict[str, list[str]] | None = None) -> None:
        self.ports = ports
        self.sources = sources or {}
        self.mark = mark
        self.client = context.client
        total = sum(len(v) for v in ports.values())
        with ui.column().classes("w-full gap-1"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(f"{title}").classes("font-semibold text-sm")
                ui.label(f"{total} item{'s' if total != 1 else ''}").classes("fb-small").mark(f"count:{mark}")
                ui.space()
                if total:
                    ui.toggle({"table": "Table", "json": "JSON"}, value=self.mode, on_change=self._switch) \
                        .props("dense no-caps size=sm unelevated toggle-color=primary").mark(f"mode:{mark}")
            self.body = ui.column().classes("w-full gap-2")
        if not total:
            with self.body:
                ui.label(empty).classes("fb-small")
        else:
            self.render()

    @property
    def mode(self) -> str:
        return _modes.get(self.client, "table")

    def _switch(self, e: Any) -> None:
        _modes[self.client] = e.value
        self.render()

    def render(self) -> None:
        self.body.clear()
        many = len(self.ports) > 1 or any(p != "main" for p in self.ports)
        with self.body:
            for port, items in self.ports.items():
                if many:
                    ui.label(f"{port} · {len(items)}").classes("fb-port")
                if not items:
                    ui.label("no items").classes("fb-small")
                elif self.mode == "json":
                    items_json(items, f"{self.mark}:{port}")
                else:
                    items_table(items, f"{self.mark}:{port}", self.sources.get(port))


def logs_view(lines: list[str]) -> None:
    """What the node printed (the Code node's print() output), as it was printed."""
    with ui.column().classes("w-full gap-1"):
        ui.label(f"Printed · {len(lines)} line{'s' if len(lines) != 1 else ''}").classes("font-semibold text-sm")
        ui.html(f'<pre class="fb-json">{_escape(chr(10).join(lines))}</pre>', sanitize=False) \
            .classes("w-full").mark("data:logs")


def step_view(step: Step | None, inputs: dict[str, Items], *, not_run: str,
              actions: Callable[[], None] | None = None) -> None:
    """State line, error, then input and output items. `actions` draws buttons (pin, run) in the state line."""
    ui.add_css(CSS)
    with ui.column().classes("fb-data w-full gap-3"):
        with ui.row().classes("w-full items-center gap-2"):
            if step is None:
                ui.label(not_run).classes("fb-muted").mark("data:none")
            else:
                status_chip(step.status.value)
                ui.label(duration(step.started, step.finished)).classes("fb-small").mark("data:duration")
                if step.attempt > 1:
                    ui.label(f"attempt {step.attempt}").classes("fb-small").mark("data:attempts")
            ui.space()
            if actions is not None:
                actions()
        if step is None:
            return
        if step.error:
            error = step.error
            where = []
            if error.get("item_index") is not None:
                where.append(f"item {error['item_index'] + 1}")
            if error.get("field"):
                where.append(f"field {error['field']}")
            text = error.get("message", "failed") + (f" ({', '.join(where)})" if where else "")
            ui.label(text).classes("fb-err w-full").mark("data:error")
        if step.logs:
            logs_view(step.logs)
        ItemsView("Input", inputs, "input", "No input items (a trigger gets the run's input).")
        ItemsView("Output", step.outputs, "output", "No output items: the branches after it were not taken.",
                  source_labels(step, inputs))


def source_labels(step: Step, inputs: dict[str, Items]) -> dict[str, list[str]]:
    """Per output port, per item: the input item(s) it came from, numbered from 1 as in the input table ("3", or
    "b 3" for a node with several inputs). Empty for a trigger and when the lineage is not known."""
    if not step.lineage or not any(inputs.values()):
        return {}
    places: list[str] = []
    several = len(inputs) > 1
    for port, items in inputs.items():
        places.extend(f"{port} {n + 1}" if several else str(n + 1) for n in range(len(items)))
    labels: dict[str, list[str]] = {}
    for port, items in step.outputs.items():
        row = []
        for index in range(min(len(items), SHOWN)):
            found = [places[p] for p in sources_of(step, port, index) if p < len(places)]
            row.append(", ".join(found[:3]) + (f" … ({len(found)})" if len(found) > 3 else ""))
        if any(row):
            labels[port] = row
    return labels
