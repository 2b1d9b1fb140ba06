"""The flows page (`/`): every flow with its state, and creating, renaming, copying, deleting, importing, exporting."""

from __future__ import annotations

import contextlib
import re
import uuid

from nicegui import ui

from ..errors import FlowInvalid
from ..model import Flow, Node, Position
from ..services import Flowboard
from ..store import FlowSummary, NotFound, VersionConflict
from .import_dialog import ImportDialog
from .layout import ago, frame, problem_text, status_chip
from .templates import templates_section


def new_flow(name: str) -> Flow:
    """A new flow: just a Manual trigger, ready for its first node."""
    return Flow(name=name, nodes=[Node(id="manual", type="trigger.manual", position=Position(x=0, y=0))])


def file_name(name: str) -> str:
    """`Invoice approval.json`: the flow's name, safe as a file name."""
    safe = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "-", name).strip(" .-") or "flow"
    return f"{safe[:100]}.json"


class FlowsPage:
    def __init__(self, fb: Flowboard) -> None:
        self.fb = fb
        self.query = ""
        self.connections: dict[str, ui.label] = {}  # flow id -> its listening triggers' connection state
        frame("flows")
        with ui.column().classes("fb-page gap-4") as self.root:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Flows").classes("fb-h1")
                ui.space()
                ui.input(placeholder="Search flows", on_change=self._search).props("dense outlined clearable") \
                    .classes("w-64").mark("search")
                ui.button("Import", icon="upload", on_click=self._import).props("outline no-caps").mark("import")
                ui.button("New flow", icon="add", on_click=self._create).props("no-caps unelevated") \
                    .mark("new-flow")
            self.list = ui.column().classes("w-full gap-2").mark("flow-list")
            templates_section(fb)
        self.refresh()
        ui.timer(2.0, self._show_connections)

    def _search(self, e: object) -> None:
        self.query = (getattr(e, "value", None) or "").strip().lower()
        self.refresh()

    def refresh(self) -> None:
        flows = self.fb.store.list_flows()
        shown = [f for f in flows if not self.query or self.query in f.name.lower()
                 or self.query in (f.description or "").lower()]
        self.list.clear()
        self.connections.clear()
        with self.list:
            if not flows:
                with ui.column().classes("fb-row w-full items-center gap-2 py-10"):
                    ui.icon("account_tree", size="48px").classes("text-grey-5")
                    ui.label("No flows yet. Create one, or import a flow file.").classes("fb-muted")
            elif not shown:
                ui.label(f'No flow matches "{self.query}".').classes("fb-muted").mark("no-match")
            for summary in shown:
                self._row(summary)

    def _row(self, f: FlowSummary) -> None:
        with ui.row().classes("fb-row w-full items-center no-wrap gap-4").mark(f"flow:{f.id}"):
            with ui.column().classes("grow gap-0 min-w-0"):
                ui.link(f.name, f"/flow/{f.id}").classes("fb-name").mark(f"open:{f.id}")
                if f.description:
                    ui.label(f.description).classes("fb-muted ellipsis w-full").tooltip(f.description)
                self.connections[f.id] = ui.label().classes("fb-small").mark(f"connection:{f.id}")
                self._show_connection(f.id)
            with ui.column().classes("items-end gap-0"):
                status_chip(f.last_run_status.value if f.last_run_status else None)
                ui.label(ago(f.last_run_at)).classes("fb-small")
            ui.label(f"v{f.version}").classes("fb-small w-10 text-right").tooltip("Saved version")
            switch = ui.switch(value=f.active).props("dense color=green").mark(f"active:{f.id}")
            switch.tooltip("Active: its triggers (webhooks, schedules, forms, messages) start runs")
            switch.on_value_change(lambda e, fid=f.id: self._set_active(fid, bool(e.value), e.sender))
            with ui.button(icon="more_vert").props('flat round dense aria-label="More actions for this flow"') \
                    .mark(f"menu:{f.id}").tooltip("Rename, duplicate, export or delete"), ui.menu():
                ui.menu_item("Open", on_click=lambda fid=f.id: ui.navigate.to(f"/flow/{fid}"))
                ui.menu_item("Rename", on_click=lambda s=f: self._rename(s)).mark(f"rename:{f.id}")
                ui.menu_item("Duplicate", on_click=lambda fid=f.id: self._duplicate(fid)).mark(f"duplicate:{f.id}")
                ui.menu_item("Export", on_click=lambda fid=f.id: self.export(fid)).mark(f"export:{f.id}")
                ui.separator()
                ui.menu_item("Delete", on_click=lambda s=f: self._delete(s)).classes("text-negative") \
                    .mark(f"delete:{f.id}")

    def _show_connections(self) -> None:
        for flow_id in self.connections:
            self._show_connection(flow_id)

    def _show_connection(self, flow_id: str) -> None:
        """"Connected to RabbitMQ (queue orders)", or "Reconnecting to Redis: connection refused, next try in 4 s"."""
        label = self.connections[flow_id]
        states = self.fb.connection_states(flow_id)
        text = "; ".join(state.text() for state in states)
        if label.text != text:
            label.set_text(text)
        up = all(state.up for state in states)
        label.classes(add="text-positive" if up else "text-orange-9",
                      remove="text-orange-9" if up else "text-positive")
        label.set_visibility(bool(states))

    # -- actions ----------------------------------------------------------------------------------------------------

    def _set_active(self, flow_id: str, active: bool, switch: object) -> None:
        try:
            if active:
                self.fb.activate(flow_id)
                ui.notify("Active: its triggers now start runs", type="positive")
            else:
                self.fb.deactivate(flow_id)
                ui.notify("Inactive: its triggers are off")
        except FlowInvalid as exc:
            names = {}
            with contextlib.suppress(NotFound):
                names = {n.id: n.name or n.id for n in self.fb.store.get_flow(flow_id).flow.nodes}
            lines = "\n".join(problem_text(p.loc, p.message, p.node_id, names) for p in exc.problems)
            ui.notify(f"This flow cannot be switched on:\n{lines}", type="negative", multi_line=True,
                      classes="whitespace-pre-line", timeout=10000)
            self.refresh()

    async def _create(self) -> None:
        name = await self._ask_name("New flow", "Name", "My flow", "Create")
        if name is None:
            return
        flow = new_flow(name)
        self.fb.save_flow(flow, None, note="created")
        ui.navigate.to(f"/flow/{flow.id}")

    async def _rename(self, summary: FlowSummary) -> None:
        name = await self._ask_name("Rename flow", "Name", summary.name, "Rename")
        if name is None or name == summary.name:
            return
        stored = self.fb.store.get_flow(summary.id)
        try:
            self.fb.save_flow(stored.flow.model_copy(update={"name": name}), stored.version, note="renamed")
        except VersionConflict:
            ui.notify("Someone saved this flow meanwhile; try again", type="warning")
        self.refresh()

    def _duplicate(self, flow_id: str) -> None:
        stored = self.fb.store.get_flow(flow_id)
        copy = stored.flow.model_copy(update={"id": uuid.uuid4().hex[:12], "name": f"{stored.flow.name} (copy)"[:200]})
        self.fb.save_flow(copy, None, note=f"copy of {flow_id} v{stored.version}")
        ui.notify(f'Created "{copy.name}"', type="positive")
        self.refresh()

    async def _delete(self, summary: FlowSummary) -> None:
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[440px]"):
            ui.label(f'Delete "{summary.name}"?').classes("text-lg font-semibold")
            ui.label("Its versions and all its runs are deleted too. This cannot be undone.").classes("fb-muted")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button("Delete", on_click=lambda: dialog.submit(True)).props("color=negative no-caps unelevated") \
                    .mark("confirm-delete")
        confirmed = await dialog
        dialog.delete()
        if confirmed:
            self.fb.delete_flow(summary.id)
            ui.notify(f'Deleted "{summary.name}"')
            self.refresh()

    def export(self, flow_id: str) -> None:
        stored = self.fb.store.get_flow(flow_id)
        ui.download.content(self.fb.export_flow(flow_id).encode(), file_name(stored.flow.name), "application/json")

    async def _import(self) -> None:
        with self.root:
            dialog = ImportDialog(self.fb)
        flow = await dialog.ask()
        if flow is not None:
            ui.notify(f'Imported "{flow.name}"', type="positive")
            self.refresh()

    async def _ask_name(self, title: str, label: str, value: str, action: str) -> str | None:
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[420px]"):
            ui.label(title).classes("text-lg font-semibold")
            field = ui.input(label, value=value, validation={"Give it a name": lambda v: bool((v or "").strip()),
                                                             "At most 200 characters": lambda v: len(v or "") <= 200})
            field.props("autofocus outlined dense").classes("w-full").mark("name-input")

            def done() -> None:
                if field.validate():
                    dialog.submit(field.value.strip())

            field.on("keydown.enter", done)
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(None)).props("flat no-caps")
                ui.button(action, on_click=done).props("no-caps unelevated").mark("name-ok")
        result = await dialog
        dialog.delete()
        return result
