"""A node's part in a run: state, timing, attempts, error, and its input and output items as a table, as JSON or
as their fields (schema). Fields can be chips to drag into a form field: the drop writes the expression reading it."""

from __future__ import annotations

import html
import json
import weakref
from collections.abc import Callable
from typing import Any

from nicegui import Client, context, ui

from ..blobs import FILE_KEY, files_in, is_file_ref, kind_text, size_text
from ..engine import Progress, Step
from ..engine.lineage import sources_of
from .layout import duration, status_chip
from .run_data import field_values

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
.fb-data .fb-items-table { max-height: 480px; }
.fb-data .fb-items-table thead tr th { position: sticky; top: 0; z-index: 1; }
.fb-data .fb-schema td { font-size: 12px; padding: 2px 6px; vertical-align: top; }
.fb-data .fb-schema td.fb-kind { color: #4b5563; white-space: nowrap; }
.fb-data .fb-schema td.fb-example { font-family: ui-monospace, monospace; color: #374151; max-width: 220px;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.fb-field-chip { font-family: ui-monospace, monospace; font-size: 12px; padding: 1px 8px; border-radius: 10px;
  background: #eef2ff; color: #3730a3; border: 1px solid #c7d2fe; cursor: grab; user-select: none;
  display: inline-block; }
.fb-data .fb-err { background: #fef2f2; border: 1px solid #fecaca; color: #991b1b; border-radius: 6px;
  padding: 8px 10px; font-size: 12.5px; white-space: pre-wrap; word-break: break-word; }
"""


def cell(value: Any) -> Any:
    """A table cell: scalars as they are, objects and lists as short JSON."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if is_file_ref(value):
        return f"{value.get('name')} (file, {size_text(int(value.get('size') or 0))})"
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
    # Virtual scroll: the browser draws the rows in view only (a node view with 1,000 items opens at once).
    ui.table(columns=columns, rows=rows, row_key="_i") \
        .props("dense flat bordered wrap-cells=false virtual-scroll :virtual-scroll-item-size=26 "
               ":virtual-scroll-sticky-size-start=26") \
        .classes("w-full fb-items-table").mark(f"table:{mark}")
    if len(items) > SHOWN:
        ui.label(f"Showing the first {SHOWN} of {len(items)} items; the JSON view has them all.").classes("fb-small")


def file_url(run_id: str, ref: dict[str, Any]) -> str:
    """Where a run's file downloads (the API checks that whoever asks may see the run, and that the run has it)."""
    return f"/run/{run_id}/files/{ref[FILE_KEY]}"


def files_list(items: Items, mark: str, run_id: str | None) -> None:
    """The files in the items: name, type and size, with a download link when the run is known."""
    refs = {(ref[FILE_KEY], str(ref.get("name"))): ref for ref in files_in(items[:SHOWN])}
    if not refs:
        return
    with ui.column().classes("w-full gap-1").mark(f"files:{mark}"):
        for ref in list(refs.values())[:20]:
            with ui.row().classes("items-center gap-2 no-wrap").mark(f"file:{ref.get('name')}"):
                ui.icon("attach_file", size="16px").classes("text-grey-7")
                ui.label(str(ref.get("name"))).classes("text-sm font-medium")
                ui.label(f"{kind_text(str(ref.get('mime_type')))} · {size_text(int(ref.get('size') or 0))}") \
                    .classes("fb-small").tooltip(str(ref.get("mime_type")))
                if run_id:
                    ui.link("Download", file_url(run_id, ref)).props("download").classes("text-sm") \
                        .mark(f"download:{ref.get('name')}")
        if len(refs) > 20:
            ui.label(f"and {len(refs) - 20} more files (the JSON view lists them all)").classes("fb-small")


def items_json(items: Items, mark: str) -> None:
    text = json.dumps(items, indent=2, ensure_ascii=False, default=str)
    ui.html(f'<pre class="fb-json">{_escape(text)}</pre>', sanitize=False).classes("w-full").mark(f"json:{mark}")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def field_chip(path: str) -> ui.label:
    """A field of the items coming in (`.email`, `.team.name`) as a chip to drag into a form field: the drop
    writes `{{ item.email }}`, so mapping data needs no typing."""
    name = path.lstrip(".")
    expression = f"{{{{ item{path} }}}}"
    chip = ui.label(name).classes("fb-field-chip").mark(f"input-field:{name}")
    chip.props(f'draggable=true tabindex=0 role=button aria-label="Field {html.escape(name)}: drag into a field '
               'to use it"')
    chip.tooltip(f"Drag into a field: writes {expression}")
    chip.on("dragstart", js_handler=f"(e) => {{ e.dataTransfer.setData('text/plain', {json.dumps(expression)}); "
                                    "e.dataTransfer.effectAllowed = 'copy'; }")
    return chip


def kind_of(value: Any) -> str:
    """A value's kind in plain words."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "yes/no"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return f"list of {len(value)}"
    return "group of fields"


def items_schema(items: Items, mark: str, draggable: bool) -> None:
    """The items' fields (from the first few items): name, kind and the first item's value."""
    rows = [(path, kind_of(value), "" if isinstance(value, dict) or value is None else cell(value))
            for path, value in field_values(items).items()]
    if not rows:
        ui.label("These items have no fields yet.").classes("fb-small").mark(f"schema:{mark}")
        return
    with ui.element("table").classes("fb-schema w-full").mark(f"schema:{mark}"):
        for path, kind, example in rows:
            depth = path.count(".") + path.count("[") - 1
            with ui.element("tr"):
                with ui.element("td").style(f"padding-left: {6 + 14 * depth}px"):
                    if draggable:
                        field_chip(path)
                    else:
                        ui.label(path.lstrip(".")).classes("fb-field-chip").style("cursor: default")
                ui.element("td").classes("fb-kind")._props["innerText"] = kind
                ui.element("td").classes("fb-example")._props["innerText"] = "" if example is None else str(example)


MODES = {"table": "Table", "json": "JSON", "schema": "Fields"}
_modes: weakref.WeakKeyDictionary[Client, dict[str, str]] = weakref.WeakKeyDictionary()


class ItemsView:
    """Items per port with a Table / JSON / Fields switch shared by every port of one view; the choice is kept per
    browser tab and view (`mark`). `draggable`: the Fields view's chips can be dragged into form fields."""

    def __init__(self, title: str, ports: dict[str, Items], mark: str, empty: str,
                 sources: dict[str, list[str]] | None = None, *, default: str = "table",
                 draggable: bool = False, run_id: str | None = None) -> None:
        self.ports = ports
        self.run_id = run_id
        self.sources = sources or {}
        self.mark = mark
        self.default = default
        self.draggable = draggable
        self.client = context.client
        total = sum(len(v) for v in ports.values())
        with ui.column().classes("w-full gap-1"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(f"{title}").classes("font-semibold text-sm")
                ui.label(f"{total} item{'s' if total != 1 else ''}").classes("fb-small").mark(f"count:{mark}")
                ui.space()
                if total:
                    ui.toggle(MODES, value=self.mode, on_change=self._switch) \
                        .classes("fb-sm").props("dense no-caps unelevated toggle-color=primary").mark(f"mode:{mark}")
            self.body = ui.column().classes("w-full gap-2")
        if not total:
            with self.body:
                ui.label(empty).classes("fb-small")
        else:
            self.render()

    @property
    def mode(self) -> str:
        return _modes.get(self.client, {}).get(self.mark, self.default)

    def _switch(self, e: Any) -> None:
        _modes.setdefault(self.client, {})[self.mark] = e.value
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
                elif self.mode == "schema":
                    items_schema(items, f"{self.mark}:{port}", self.draggable)
                else:
                    items_table(items, f"{self.mark}:{port}", self.sources.get(port))
                if items:
                    files_list(items, f"{self.mark}:{port}", self.run_id)


def logs_view(lines: list[str]) -> None:
    """What the node printed (the Code node's print() output), as it was printed."""
    with ui.column().classes("w-full gap-1"):
        ui.label(f"Printed · {len(lines)} line{'s' if len(lines) != 1 else ''}").classes("font-semibold text-sm")
        ui.html(f'<pre class="fb-json">{_escape(chr(10).join(lines))}</pre>', sanitize=False) \
            .classes("w-full").mark("data:logs")


def step_state(step: Step | None, *, not_run: str, actions: Callable[[], None] | None = None) -> None:
    """State line (with `actions`, buttons such as pin), then the error and what the node printed."""
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


def input_view(inputs: dict[str, Items], *, default: str = "table", draggable: bool = False,
               run_id: str | None = None) -> ItemsView:
    return ItemsView("Input", inputs, "input", "No input items (a trigger gets the run's input).",
                     default=default, draggable=draggable, run_id=run_id)


def output_view(step: Step, inputs: dict[str, Items], *, default: str = "table") -> ItemsView:
    empty = "No output: the node failed (see why above)." if step.status.value == "failed" else \
        "No output items: the branches after it were not taken."
    return ItemsView("Output", step.outputs, "output", empty, source_labels(step, inputs), default=default,
                     run_id=step.run_id)


def step_view(step: Step | None, inputs: dict[str, Items], *, not_run: str,
              actions: Callable[[], None] | None = None) -> None:
    """State line, error, then input and output items. `actions` draws buttons (pin, run) in the state line."""
    ui.add_css(CSS)
    with ui.column().classes("fb-data w-full gap-3"):
        step_state(step, not_run=not_run, actions=actions)
        if step is not None:
            input_view(inputs, run_id=step.run_id)
            output_view(step, inputs)


SO_FAR_EVERY = 1.0  # seconds: a running node's items so far are redrawn at most this often


def progress_view(progress: Progress) -> None:
    """A node still running: what it last said of its progress, and its items so far (or the latest it gave, when
    it does not keep them all: a flow run for each page)."""
    ui.add_css(CSS)
    items = list(progress.items or [])
    with ui.column().classes("fb-data w-full gap-3"):
        with ui.row().classes("w-full items-center gap-2"):
            status_chip("running")
            ui.label(progress.message or f"{progress.count:,} items so far").classes("fb-small").mark("data:progress")
        ItemsView("Items so far" if len(items) == progress.count else "The latest items", {"main": items},
                  "so-far", "No items yet.")


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
