"""One run (`/run/{id}`) on a read-only canvas: each node's state from the stored steps, its items in the side panel.
A run still going is followed live (events, and a poll for runs that end without one)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from nicegui import ui

from ..engine import Event
from ..model import Flow
from ..services import RETRYABLE, Flowboard
from ..store import NotFound
from .canvas import FlowCanvas
from .data_view import SO_FAR_EVERY, ItemsView, progress_view, step_view
from .graph import display_name, to_canvas
from .layout import ago, duration, frame, status_chip
from .run_data import RunView, Statuses
from .runs_page import POLL, retry, watch_runs


class RunPage:
    """One run on a read-only canvas; click a node to see its data."""

    def __init__(self, fb: Flowboard, run_id: str) -> None:
        self.fb = fb
        self.run_id = run_id
        self.selected: str | None = None
        self.shown_progress = 0.0  # when a running node's items so far were last drawn
        self.due: asyncio.TimerHandle | None = None
        self.running: dict[str, int] = {}  # node id -> items so far, for nodes the events say are running
        self.load()
        ui.add_css(".fb-side { width: 440px; min-width: 440px; border-left: 1px solid #e3e6ec; background: #fff;"
                   " overflow-y: auto; }")
        with ui.column().classes("w-full h-screen gap-0 no-wrap"):
            frame("runs")
            self.head = ui.row().classes("w-full shrink-0 items-center no-wrap gap-3 px-4 bg-white border-b h-[52px]")
            with ui.row().classes("w-full grow basis-0 no-wrap gap-0 min-h-0"):  # not sized by the panel (editor.py)
                with ui.element("div").classes("grow h-full relative min-w-0"):
                    nodes, edges = to_canvas(self.flow, fb.registry) if self.flow else ([], [])
                    self.canvas = FlowCanvas(fb.registry.catalog(), nodes, edges, readonly=True,
                                             on_select=self._selected).classes("absolute-full").mark("canvas")
                    self.canvas.set_status(self.view.statuses())
                self.side = ui.column().classes("fb-side h-full gap-3 p-4 no-wrap").mark("side")
        self.render()
        if not self.record.status.finished:
            # Events come only for runs that started while someone listened, and not from other processes: poll too.
            watch_runs(fb, self._events, run_id=run_id)
            self.poll = ui.timer(POLL, self._poll)

    def _poll(self) -> None:
        if self.fb.store.get_run(self.run_id).status.finished:
            self.poll.deactivate()
            self._reload()

    def load(self) -> None:
        store = self.fb.store
        self.record = store.get_run(self.run_id)
        self.view = RunView.from_store(store, self.record)
        self.note = ""
        self.flow: Flow | None = None
        try:
            if self.record.flow_version is not None:
                self.flow = store.get_version(self.record.flow_id, self.record.flow_version)
            else:
                self.flow = store.get_flow(self.record.flow_id).flow
                self.note = "This test run used unsaved changes; the canvas shows the flow as it is saved now."
        except NotFound:
            self.note = "The flow of this run is gone."

    def render(self) -> None:
        record, view = self.record, self.view
        self.head.clear()
        with self.head:
            ui.button(icon="arrow_back", on_click=lambda: ui.navigate.to("/runs")) \
                .props('flat round dense aria-label="All runs"').tooltip("All runs")
            name = self.flow.name if self.flow else record.flow_id
            ui.link(name, f"/flow/{record.flow_id}").classes("font-semibold")
            status_chip(record.status.value).mark("run-status")
            ui.label(f"{record.source or ''} · {ago(record.created)} · {duration(record.started, record.finished)}"
                     + (f" · version {record.flow_version}" if record.flow_version else "")).classes("fb-small")
            ui.space()
            ui.label(record.id[:12]).classes("fb-small fb-mono")
            if not record.status.finished:
                ui.button("Stop", icon="stop", on_click=lambda: self.fb.cancel(record.id) or None) \
                    .props("no-caps unelevated dense color=negative").mark("cancel-run")
            else:
                if record.status in RETRYABLE:
                    ui.button("Retry", icon="replay", on_click=self._retry) \
                        .props("no-caps unelevated dense color=primary").mark("retry-run") \
                        .tooltip("Run it again from the step that failed")
                ui.button(icon="delete_outline", on_click=self._delete) \
                    .props('flat round dense aria-label="Delete this run"') \
                    .mark("delete-run").tooltip("Delete this run")
        self.side.clear()
        with self.side:
            if self.note:
                ui.label(self.note).classes("fb-small bg-amber-50 p-2 rounded")
            node = next((n for n in self.flow.nodes if n.id == self.selected), None) if self.flow else None
            if node is None:
                self._summary()
            else:
                ui.label(display_name(node, self.fb.registry)).classes("font-semibold text-base")
                ui.label(f"{node.type} · {node.id}").classes("fb-small")
                step = view.steps.get(node.id)
                progress = self.fb.engine.progress(self.run_id, node.id) if step is None else None
                running = self.running.get(node.id) if step is None else None
                if progress is not None:
                    self.shown_progress = time.monotonic()
                    progress_view(progress)
                elif running is not None:  # no items so far to show (elsewhere: a worker's run), its count if any
                    status_chip("running")
                    so_far = f" ({running:,} item{'s' if running != 1 else ''} so far)" if running >= 0 else ""
                    where = "" if self.fb.engine.runs_here(self.run_id) else " in another Flowboard process"
                    ui.label(f"This node is running{where}{so_far}; its items show here when it ends.") \
                        .classes("fb-small").mark("data:running")
                else:
                    step_view(step, view.inputs_of(self.flow, node.id) if self.flow else {},
                              not_run="This node did not run in this run, or has not yet.")

    def _summary(self) -> None:
        record = self.record
        ui.label("Run").classes("font-semibold text-base")
        ui.label("Click a node to see its input and output items.").classes("fb-small")
        if record.error and record.error.get("message"):
            ui.label(record.error["message"]).classes("text-negative text-sm").mark("run-error")
        ItemsView("Run input", {"main": record.input}, "run-input", "No input items.", run_id=record.id)
        ItemsView("Run output", {"main": record.output or []}, "run-output", "No output items.", run_id=record.id)

    def _selected(self, e: Any) -> None:
        ids = e.args.get("ids") or []
        self.selected = ids[0] if len(ids) == 1 else None
        self.render()

    def _events(self, events: list[Event]) -> None:
        statuses: Statuses = {ev.node_id: {"state": ev.status or "running", "count": ev.count, "message": ev.message}
                              for ev in events if ev.node_id}
        if statuses:
            self.canvas.set_status(statuses)
        for node_id, state in statuses.items():  # nodes running now, with their count so far (-1: none said)
            if state is not None and state["state"] == "running":
                self.running[node_id] = state["count"] if state["count"] is not None else -1
            else:
                self.running.pop(node_id, None)
        if self.selected is not None and self.selected in statuses and self.due is None:
            # the selected node's state and items so far, redrawn at most every SO_FAR_EVERY seconds
            wait = max(0.0, self.shown_progress + SO_FAR_EVERY - time.monotonic())
            self.due = asyncio.get_running_loop().call_later(wait, self._progress_due)
        if any(ev.kind == "run.finished" for ev in events):
            asyncio.get_running_loop().call_later(0.2, self._reload)

    def _progress_due(self) -> None:
        self.due = None
        if not self.canvas.client.is_deleted:
            self.render()

    def _reload(self) -> None:
        if self.canvas.client.is_deleted:
            return
        self.load()
        self.canvas.set_status(self.view.statuses())
        self.render()

    async def _retry(self) -> None:
        if await retry(self.fb, self.run_id):
            ui.navigate.to(f"/run/{self.run_id}")  # the page follows the run going again

    def _delete(self) -> None:
        self.fb.store.delete_run(self.run_id)
        ui.navigate.to("/runs")
