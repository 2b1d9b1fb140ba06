"""The editor page (`/flow/{id}`): header, canvas, inspector or run panel.

What the page shows lives in one `EditorState` (editor_state.py); the Editor implements `EditorActions`, and the
panels get those two only: they subscribe to the state and ask for changes through the actions.

The working copy is a Flow held per visit. Canvas `change` events update it (see graph.CanvasSync); inspector edits
update it and reach the canvas's copy of that node a moment later, debounced, as that node's data only
(FlowCanvas.update_nodes): a move or a connection made on the canvas meanwhile stays. The whole graph goes to the
canvas only when it changed on the server (a restored version, the stored flow after a conflict). Saving uses
optimistic concurrency: a version saved elsewhere meanwhile is never overwritten, the user chooses to reload or to
save a copy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from nicegui import background_tasks, context, ui
from nicegui.events import GenericEventArguments

from .. import credential_types
from ..databases import database_of, names_in
from ..engine import Progress, StepStatus, build_plan
from ..errors import FlowInvalid, Problem
from ..model import Flow, dump_flow
from ..services import Flowboard
from ..store import NotFound, VersionConflict
from .canvas import FlowCanvas
from .conflict import resolve_conflict
from .editor_state import EditorState
from .flows_page import file_name
from .graph import CanvasSync
from .import_dialog import ImportDialog
from .inspector import Inspector
from .layout import frame
from .naming import name_after_edit
from .run_data import Items, RunView, Statuses, ancestors, field_values, upstream_flow
from .run_panel import RunPanel
from .test_runs import RunController
from .versions import versions_dialog

SYNC_DELAY = 0.4  # seconds of quiet in the inspector before the canvas gets the node's new config (one undo step)
RESELECT_WINDOW = 2.0  # seconds after sending the graph in which a selection from the browser is confirmed back
CSS = """
.fb-editor-head { height: 52px; background: #fff; border-bottom: 1px solid #e3e6ec; padding: 0 12px; }
.fb-editor-head .fb-title input { font-size: 16px; font-weight: 600; }
.fb-dirty { width: 9px; height: 9px; border-radius: 50%; background: #f59e0b; }
.fb-side { width: 400px; min-width: 400px; border-left: 1px solid #e3e6ec; background: #fff; overflow-y: auto; }
.fb-side.fb-side-wide { position: absolute; inset: 0; width: auto; min-width: 0; z-index: 20; border-left: none;
  overflow: hidden; }
"""
FOCUS_FORM = """requestAnimationFrame(() => document.querySelector(
  '.fb-node-view .fb-form :is(input, textarea, button, [contenteditable="true"])')?.focus())"""
LEAVE_GUARD = "window.onbeforeunload = (e) => { e.preventDefault(); e.returnValue = ''; return ''; };"


def fill_empty(config: dict[str, Any], suggested: dict[str, Any]) -> dict[str, Any]:
    """`config` with the suggested values where it has none (None, "", [], {}), inside objects too: nothing a person
    set is replaced."""
    out = dict(config)
    for key, value in suggested.items():
        current = out.get(key)
        if current in (None, "", [], {}):
            out[key] = value
        elif isinstance(current, dict) and isinstance(value, dict):
            out[key] = fill_empty(current, value)
    return out


class Editor:
    def __init__(self, fb: Flowboard, flow_id: str) -> None:
        self.fb = fb
        self.client = context.client
        stored = fb.store.get_flow(flow_id)
        self.state = EditorState(flow=stored.flow, registry=fb.registry, version=stored.version,
                                 problems=fb.check(stored.flow))
        self.saved = dump_flow(stored.flow)
        self.catalog = [{**e, "common": getattr(fb.registry.get(e["type"], e["version"]), "common", False)}
                        for e in fb.registry.catalog()]
        self.sync = CanvasSync(fb.registry)
        self.runs = RunController(self)
        self.last_run = self._stored_last_run()
        self._unmerged_selection: str | None = None
        self._fresh: set[str] = set()  # nodes just added, until their suggested values are filled in (_suggest)
        self._sync_generation = 0
        self._stale: set[str] = set()  # nodes edited in a form that the canvas has not been sent yet
        self._pushed = -1e9  # when the graph was last sent to the canvas (time.monotonic)
        self._build()

    @property
    def closed(self) -> bool:
        return self.client.is_deleted

    # the state's parts the editor's own code reads and writes most
    flow = property(lambda self: self.state.flow, lambda self, v: setattr(self.state, "flow", v))
    version = property(lambda self: self.state.version, lambda self, v: setattr(self.state, "version", v))
    dirty = property(lambda self: self.state.dirty, lambda self, v: setattr(self.state, "dirty", v))
    selected = property(lambda self: self.state.selected, lambda self, v: setattr(self.state, "selected", v))
    problems = property(lambda self: self.state.problems, lambda self, v: setattr(self.state, "problems", v))
    last_run = property(lambda self: self.state.last_run, lambda self, v: setattr(self.state, "last_run", v))

    def _stored_last_run(self) -> RunView | None:
        runs = self.fb.store.list_runs(flow_id=self.flow.id, limit=1)
        return RunView.from_store(self.fb.store, runs[0]) if runs else None

    # -- layout -----------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        ui.add_css(CSS)
        with ui.column().classes("w-full h-screen gap-0 no-wrap"):
            frame("flows")
            self._header()
            # Canvas and side panel get the height left under the bars, whatever the panel holds (basis-0): sized by
            # its content, a long form opening in the inspector squeezed the bars and moved the canvas up under the
            # pointer, and a connection being dragged then ended off its mark (Vue Flow keeps where the canvas was
            # when the drag began). The panel scrolls instead.
            with ui.row().classes("w-full grow basis-0 no-wrap gap-0 min-h-0 relative"):
                with ui.element("div").classes("grow h-full relative min-w-0"):
                    nodes, edges = self.sync.graph(self.flow)
                    self.canvas = FlowCanvas(self.catalog, nodes, edges, on_change=self._canvas_changed,
                                             on_select=self._canvas_selected, on_open=self._canvas_open,
                                             on_save=lambda: self.save(), on_run=lambda: self.runs.run_flow()) \
                        .classes("absolute-full").mark("canvas")
                    self.paint_status()
                with ui.column().classes("fb-side h-full gap-0 no-wrap").mark("side") as self.side:
                    self.inspector = Inspector(self.state, self)
                    self.panel_box = ui.column().classes("w-full gap-0")
                    with self.panel_box:
                        self.panel = RunPanel(self.state, self)
        if len(self.flow.nodes) == 1 and self.last_run is None:  # a new flow: its trigger, open
            self._show(self.flow.nodes[0].id)
            background_tasks.create(self._select_on_canvas(), name="select the only node")

    async def _select_on_canvas(self) -> None:
        """A flow with one node that never ran (a new one) opens with that node's form shown (its test data is the
        first thing to fill in) and the node selected on the canvas, once the page is there."""
        await self.client.connected()
        if self.selected is not None and not self.closed:
            self.canvas.select(self.selected)

    def _header(self) -> None:
        with ui.row().classes("fb-editor-head w-full shrink-0 items-center no-wrap gap-2"):
            ui.button(icon="arrow_back", on_click=lambda: ui.navigate.to("/")) \
                .props('flat round dense aria-label="All flows"') \
                .tooltip("All flows")
            self.name_input = ui.input(value=self.flow.name, on_change=self._renamed) \
                .props("borderless dense").classes("fb-title w-72").mark("flow-name")
            self.dirty_dot = ui.element("div").classes("fb-dirty").mark("dirty").tooltip("Unsaved changes")
            self.dirty_dot.set_visibility(False)
            self.version_label = ui.label().classes("fb-small").mark("version")
            ui.space()
            self.status_label = ui.label().classes("fb-small").mark("editor-status")
            ui.button("Versions", icon="history", on_click=lambda: versions_dialog(self)) \
                .props("flat no-caps dense").mark("versions")
            with ui.button("Flow", icon="more_vert").props("flat no-caps dense").mark("flow-menu") \
                    .tooltip("Export, duplicate or import a flow"), ui.menu():
                ui.menu_item("Export this flow as a file", on_click=self.export).mark("export")
                ui.menu_item("Duplicate this flow", on_click=self.duplicate).mark("duplicate")
                ui.menu_item("Import a flow file…", on_click=self.import_file).mark("import")
            self.save_button = ui.button("Save", icon="save", on_click=self.save).props("outline no-caps dense") \
                .mark("save").tooltip("Save (Ctrl+S)")
            self.stop_button = ui.button("Stop", icon="stop", on_click=self.runs.stop) \
                .props("no-caps unelevated dense color=negative").mark("stop")
            self.run_button = ui.button("Run", icon="play_arrow", on_click=self.runs.run_flow) \
                .props("no-caps unelevated dense color=primary").mark("run").tooltip("Run the flow (Ctrl+Enter)")
        self._show_state()

    def _show_state(self) -> None:
        self.dirty_dot.set_visibility(self.dirty)
        self.version_label.text = f"v{self.version}" + (" · edited" if self.dirty else "")
        running = self.runs.running
        self.stop_button.set_visibility(running)
        self.run_button.set_visibility(not running)
        self.status_label.text = "Running…" if running else ""

    # -- the working copy -------------------------------------------------------------------------------------------

    def changed(self, *, canvas_stale: str | None = None) -> None:
        """The working copy changed: recompute dirty, guard leaving, and (debounced) update the canvas's copy of the
        node `canvas_stale`, if given."""
        dirty = dump_flow(self.flow) != self.saved
        if dirty != self.dirty:
            self.dirty = dirty
            self.client.run_javascript(LEAVE_GUARD if dirty else "window.onbeforeunload = null;")
        self._show_state()
        if self.problems:  # problems on show follow the edits: a fixed node loses its mark at once
            self.show_problems(self.fb.check(self.flow))
        if canvas_stale is not None:
            self._stale.add(canvas_stale)
            self._sync_generation += 1
            background_tasks.create(self._sync_canvas(self._sync_generation), name="canvas sync")

    async def _sync_canvas(self, generation: int) -> None:
        await asyncio.sleep(SYNC_DELAY)
        if generation == self._sync_generation and not self.closed:
            self.canvas.update_nodes(self.sync.nodes(self.flow, self._stale))
            self._stale = set()

    def push_graph(self, *, reset_history: bool = False) -> None:
        """Send the whole working copy to the canvas, replacing its graph (keeps the selection)."""
        self._stale = set()
        nodes, edges = self.sync.graph(self.flow)
        self.canvas.set_graph(nodes, edges, reset_history=reset_history)
        if self.selected:
            self.canvas.select(self.selected)
        self._pushed = time.monotonic()

    def update_node(self, node_id: str, **changes: Any) -> None:
        if "config" in changes and "name" not in changes:  # a node the editor named says what it now does
            name = name_after_edit(self.flow, self.fb.registry, node_id, changes["config"])
            if name is not None:
                changes["name"] = name
        nodes = [n.model_copy(update=changes) if n.id == node_id else n for n in self.flow.nodes]
        self.flow = self.flow.model_copy(update={"nodes": nodes})
        self.changed(canvas_stale=node_id)

    def update_flow(self, **changes: Any) -> None:
        self.flow = self.flow.model_copy(update=changes)
        self.changed()

    def _renamed(self, e: Any) -> None:
        name = (e.value or "").strip()
        if name and name != self.flow.name and len(name) <= 200:
            self.update_flow(name=name)

    def load_working_copy(self, flow: Flow, *, version: int | None = None) -> None:
        """Replace the working copy (a restored version, or the stored flow after a conflict)."""
        self.flow = flow.model_copy(update={"id": self.flow.id})
        if version is not None:
            self.version = version
            self.saved = dump_flow(self.flow)
        self.name_input.value = self.flow.name
        self.deselect()
        self.push_graph(reset_history=version is not None)
        self.canvas.fit_view()
        self.problems = self.fb.check(self.flow)
        self.paint_status()
        self.panel.close()
        self.panel_box.clear()
        with self.panel_box:
            self.panel = RunPanel(self.state, self)
        self.changed()

    # -- canvas events ----------------------------------------------------------------------------------------------

    def _canvas_changed(self, e: GenericEventArguments) -> None:
        before = {n.id: n for n in self.flow.nodes}
        self.flow, adopted = self.sync.merge(self.flow, e.args.get("nodes", []), e.args.get("edges", []))
        for message in self.sync.refused:  # pasted nodes over the JSON limits (jsonlimits.py)
            ui.notify(message, type="warning", multi_line=True)
        ids = {n.id for n in self.flow.nodes}
        if self._unmerged_selection in ids:
            self._show(self._unmerged_selection)
        elif self.selected and self.selected not in ids:
            self.deselect()
        elif self.selected and (self.selected in adopted or self._toggled(before, self.selected)):
            self.inspector.show(self.selected)
        self.changed()
        for node_id in ids - before.keys():
            self._fresh.add(node_id)
            self._run_before(node_id)
            self._suggest(node_id)
        self._fresh &= ids

    def _suggest(self, node_id: str) -> None:
        """Fill in what the node type suggests (NodeType.suggest) for a node just added, once the fields coming in
        are known: only fields still empty; the form then shows them as if typed."""
        node = self.state.node(node_id)
        cls = self.fb.registry.get(node.type, node.version) if node else None
        last = self.last_run
        if node is None or cls is None or last is None or node_id not in self._fresh:
            return
        inputs = last.inputs_of(self.flow, node_id)
        items: Items = inputs.get("main") or next(iter(inputs.values()), []) or last.branch_items(self.flow, node_id)
        if not items:
            return
        self._fresh.discard(node_id)
        others = [n.config for n in self.flow.nodes if n.type == node.type and n.id != node_id]
        tables = {t.name: [c.name for c in sorted(t.schema.columns, key=lambda c: c.name != t.schema.key)]
                  for t in self.fb.tables.tables.list_tables()}
        fields = field_values(items)
        try:
            try:
                suggested = cls.suggest(node.config, fields, others, tables)
            except TypeError:  # a node package written before `tables` was passed
                suggested = cls.suggest(node.config, fields, others)
        except Exception:  # a suggestion is a help, never a failure
            return
        config = fill_empty(node.config, suggested)
        if config != node.config:
            self.update_node(node_id, config=config)
            if self.selected == node_id:
                self.inspector.show(node_id)

    def _run_before(self, node_id: str) -> None:
        """A node just added after another (with `+`, or a connection dropped on the canvas): when the node before it
        has not run yet and running it (and whatever leads to it) changes nothing outside the run (a trigger's test
        data, a lookup, a condition), run it now, so the new node's form shows the fields coming in, ready to drag."""
        parents = [e.source for e in self.flow.edges if e.target == node_id]
        if len(parents) != 1 or self.runs.running:
            return
        parent = parents[0]
        last = self.last_run
        step = last.steps.get(parent) if last else None
        if step is not None and step.status in (StepStatus.succeeded, StepStatus.skipped):
            return
        done = {nid for nid, s in (last.steps.items() if last else []) if s.status in (StepStatus.succeeded,
                                                                                      StepStatus.skipped)}
        by_id = {n.id: n for n in self.flow.nodes}
        for nid in [parent, *ancestors(self.flow, parent)]:
            node = by_id.get(nid)
            cls = self.fb.registry.get(node.type, node.version) if node else None
            if node is None or cls is None or (nid not in done and cls.changes_world(node.config)):
                return
        try:
            build_plan(upstream_flow(self.flow, parent), self.fb.registry)
        except FlowInvalid:  # not ready to run: the person runs it when it is, and sees the problems then
            return
        background_tasks.create(self.runs.run_node(parent), name="run the node before a new one")

    def _toggled(self, before: dict[str, Any], node_id: str) -> bool:
        old = before.get(node_id)
        new = next((n for n in self.flow.nodes if n.id == node_id), None)
        return old is not None and new is not None and old.settings.disabled != new.settings.disabled

    def _canvas_selected(self, e: GenericEventArguments) -> None:
        ids = e.args.get("ids") or []
        if not (len(ids) == 1 and ids[0] == self.selected and self._unmerged_selection is None):
            self._show(ids[0] if len(ids) == 1 else None)
        if len(ids) <= 1 and time.monotonic() - self._pushed < RESELECT_WINDOW:
            # This selection may have crossed a push_graph, whose re-selection the browser then applied after it:
            # say again which node is selected, so browser and inspector agree.
            self.canvas.select(ids[0] if ids else None)

    def _canvas_open(self, e: GenericEventArguments) -> None:
        self.state.node_view = True
        self._show(e.args.get("id"))
        if e.args.get("keyboard"):  # opened with Enter: the keyboard goes on in the form
            self.client.run_javascript(FOCUS_FORM)

    def _show(self, node_id: str | None) -> None:
        self._unmerged_selection = None
        self._fresh &= {node_id}  # suggestions are for the node just added, while it is the one open
        if node_id is not None and not any(n.id == node_id for n in self.flow.nodes):
            self._unmerged_selection = node_id  # a node the canvas just made: its change event follows
            node_id = None
        self.selected = node_id
        if node_id is None:
            self.state.node_view = False
        self.side.classes(add="fb-side-wide" if self.state.node_view else "",
                          remove="" if self.state.node_view else "fb-side-wide")
        self.panel_box.set_visibility(node_id is None)
        self.state.notify("selection")

    def select(self, node_id: str | None) -> None:
        """Select a node from outside the canvas (a problem, a step in the run panel), or none."""
        self.canvas.select(node_id)
        self._show(node_id)

    def deselect(self) -> None:
        self.select(None)

    def node_view(self, open: bool) -> None:
        self.state.node_view = open and self.selected is not None
        self._show(self.selected)
        if not open and self.selected:  # back on the canvas, on the node
            self.canvas.run_method("focusNode", self.selected)

    # -- runs -------------------------------------------------------------------------------------------------------

    def show_problems(self, problems: list[Problem]) -> None:
        unchanged = [(p.loc, p.message) for p in problems] == [(p.loc, p.message) for p in self.problems]
        self.problems = list(problems)
        if unchanged:
            return
        self.paint_status()
        self.state.notify("problems")

    def paint_status(self) -> None:
        """Give the canvas one truth: the states of the run going on (or of the last one shown), with the working
        copy's problems marked over them. Everything else is cleared, so no badge outlives its run."""
        run = self.state.shown_run
        statuses: Statuses = dict(self.state.live) if self.state.running else run.statuses() if run else {}
        marked: set[str] = set()
        for p in self.problems:
            if p.node_id and p.node_id not in marked:
                marked.add(p.node_id)
                statuses[p.node_id] = {"state": "failed", "count": None, "message": p.message}
        self.canvas.replace_status(statuses)

    def run_state_changed(self) -> None:
        """A test run started or finished."""
        if not self.runs.running:
            for node_id in list(self._fresh):
                self._suggest(node_id)
        self._show_state()
        self.state.notify("run")

    def run_progress(self) -> None:
        self.state.notify("progress")

    async def run_flow(self) -> None:
        await self.runs.run_flow()

    async def run_node(self, node_id: str) -> None:
        await self.runs.run_node(node_id)

    def progress(self, node_id: str) -> Progress | None:
        run_id = self.runs.run_id
        return self.fb.engine.progress(run_id, node_id) if run_id and self.runs.running else None

    def credential_names(self, types: list[str]) -> list[str]:
        return [c.name for c in self.fb.store.list_credentials() if not types or c.type in types]

    def add_credential(self, name: str, type_: str, data: dict[str, Any]) -> str:
        taken = {c.name for c in self.fb.store.list_credentials()}
        chosen, n = name, 2
        while chosen in taken:
            chosen, n = f"{name} {n}", n + 1
        self.fb.store.set_credential(chosen, type_, data)
        return chosen

    def _credential_fields(self, name: str) -> dict[str, Any] | None:
        """A credential's fields as a node sees them (a database connection's derived `url` too)."""
        found = self.fb.store.credential(name)
        return None if found is None else credential_types.for_nodes(*found)

    def choices(self, widget: str, table: str | None = None, config: dict[str, Any] | None = None) -> list[str]:
        if widget in ("sql_table", "sql_column"):
            if widget == "sql_column" and not table:
                return []
            url = database_of(config or {}, self._credential_fields)
            return names_in(url, table if widget == "sql_column" else None)
        if widget == "table":
            return [t.name for t in self.fb.tables.tables.list_tables()]
        if widget == "table_column":
            if not table:
                return []
            try:
                return [c.name for c in self.fb.tables.tables.get(table).schema.columns]
            except LookupError:
                return []
        if widget == "flow":
            return [f.name for f in self.fb.store.list_flows() if f.id != self.state.flow.id]
        return []

    # -- the flow as a file -----------------------------------------------------------------------------------------

    def export(self) -> None:
        """Download the flow as it is on the canvas (saved or not)."""
        ui.download.content(self.fb.export_text(self.flow).encode(), file_name(self.flow.name), "application/json")

    def duplicate(self) -> None:
        """Store a copy of the flow as it is on the canvas, and open it."""
        copy = self.flow.model_copy(update={"id": uuid.uuid4().hex[:12], "name": self.fb.free_name(self.flow.name)})
        self.fb.save_flow(copy, None, note=f"copy of {self.flow.id}" + (" with unsaved changes" if self.dirty else ""))
        ui.notify(f'Created "{copy.name}"', type="positive")
        ui.navigate.to(f"/flow/{copy.id}")

    async def import_file(self) -> None:
        with self.client:
            dialog = ImportDialog(self.fb)
        flow = await dialog.ask()
        if flow is not None:
            ui.notify(f'Imported "{flow.name}"', type="positive")
            ui.navigate.to(f"/flow/{flow.id}")

    # -- saving -----------------------------------------------------------------------------------------------------

    def save(self) -> None:
        try:
            version = self.fb.save_flow(self.flow, self.version)
        except VersionConflict as exc:
            background_tasks.create(resolve_conflict(self, exc.current_version), name="version conflict")
            return
        except NotFound:  # deleted in another tab
            background_tasks.create(resolve_conflict(self, None), name="flow deleted")
            return
        self.version = version
        self.saved = dump_flow(self.flow)
        self.changed()
        self.problems = self.fb.check(self.flow)
        self.paint_status()
        self.state.notify("problems")
        note = f" It has {len(self.problems)} problem(s) to fix before it can run." if self.problems else ""
        ui.notify(f"Saved as version {version}.{note}", type="warning" if self.problems else "positive")
