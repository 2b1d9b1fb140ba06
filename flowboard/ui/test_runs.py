"""Test runs from the editor: the whole flow, or one node with the earlier outputs of the last run.

The working copy runs as it is, saved or not (`Flowboard.run_draft`, recorded with source "editor"). Progress comes
from the event bus, subscribed before the run starts (the engine publishes only while someone listens), and goes to
the canvas as status badges, batched per event-loop tick; the graph itself is never resent.

The side panel (a row per node) is re-rendered a moment later, once for whatever changed meanwhile: rebuilding it
costs ~0.3 s for 200 nodes, and done inline it held the canvas's badges back by over a second per run
(bench/status_updates.py).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any

from nicegui import ui

from ..engine import Event, RunResult, Step, StepStatus, build_plan
from ..errors import FlowInvalid
from ..model import Flow
from .run_data import RunView, Statuses, ancestors, upstream_flow

if TYPE_CHECKING:
    from .editor import Editor

log = logging.getLogger(__name__)
_REUSABLE = (StepStatus.succeeded, StepStatus.skipped)
PANEL_DELAY = 0.05  # seconds from a change of the run to the side panel's re-render (coalesced)


class RunController:
    def __init__(self, editor: Editor) -> None:
        self.editor = editor
        self.run_id: str | None = None
        self.task: asyncio.Task[RunResult] | None = None
        self._pending: Statuses = {}
        self._flush_handle: asyncio.Handle | None = None
        self._unsubscribe: Any = None
        self._panel_handle: asyncio.Handle | None = None
        self._panel_state_changed = False

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    @property
    def live(self) -> Statuses:
        return self.editor.state.live

    async def run_flow(self) -> None:
        """Run the whole working copy from its default trigger."""
        await self._start(self.editor.flow, done={})

    async def run_node(self, node_id: str) -> None:
        """Run `node_id` and what leads to it; nodes before it that the last run finished are not run again."""
        flow = self.editor.flow
        last = self.editor.last_run
        upstream = set(ancestors(flow, node_id))
        done = {nid: step for nid, step in (last.steps.items() if last else []) if nid in upstream
                and step.status in _REUSABLE}
        await self._start(upstream_flow(flow, node_id), done=done)

    async def _start(self, flow: Flow, *, done: dict[str, Step]) -> None:
        editor = self.editor
        if self.running:
            ui.notify("A test run is going on; stop it first", type="warning")
            return
        try:
            plan = build_plan(flow, editor.fb.registry)
        except FlowInvalid as exc:
            self.editor.state.refused = True
            self.editor.state.live = {}
            editor.show_problems(exc.problems)
            editor.paint_status()  # (also when the problems were on show already: the old run's badges go)
            editor.run_progress()
            ui.notify("The flow has problems: fix them to run it (see the panel on the right)", type="negative")
            return
        self.editor.state.refused = False
        editor.problems = []
        trigger = plan.default_trigger()
        pinned = plan.nodes[trigger].node.pinned
        input_items = [dict(i) for i in pinned] if pinned is not None else None
        run_id = uuid.uuid4().hex
        self.run_id = run_id
        self.editor.state.live = {nid: state for nid, state in editor.last_run.statuses().items() if nid in done} \
            if editor.last_run and done else {}
        self._unsubscribe = editor.fb.bus.subscribe(self._on_event)
        version = None if editor.dirty else editor.version
        self.task = asyncio.create_task(editor.fb.run_draft(flow, input_items, version=version, trigger=trigger,
                                                            done=done or None, run_id=run_id))
        self.task.add_done_callback(lambda t: self._finished(t, input_items, trigger, version))
        editor.state.running = True
        editor.paint_status()  # only this run's states: the earlier steps it reuses keep their badges
        self._panel_later(state_changed=True)

    def stop(self) -> None:
        if self.run_id and self.running and not self.editor.fb.cancel(self.run_id):
            ui.notify("The run is finishing; it cannot be stopped any more")

    # -- progress ---------------------------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if event.run_id != self.run_id or event.node_id is None:
            return
        state: dict[str, Any] = {"state": event.status or "running", "count": event.count, "message": event.message}
        self.editor.state.live[event.node_id] = state
        self._pending[event.node_id] = state
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_later(0.05, self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        pending, self._pending = self._pending, {}
        if pending and not self.editor.closed:
            self.editor.canvas.set_status(pending)
            self._panel_later()

    def _panel_later(self, *, state_changed: bool = False) -> None:
        """Re-render the side panel (and, for a start or an end, the Run/Stop buttons) after PANEL_DELAY, once."""
        self._panel_state_changed |= state_changed
        if self._panel_handle is None:
            self._panel_handle = asyncio.get_running_loop().call_later(PANEL_DELAY, self._panel_now)

    def _panel_now(self) -> None:
        self._panel_handle = None
        state_changed, self._panel_state_changed = self._panel_state_changed, False
        if self.editor.closed:
            return
        if state_changed:
            self.editor.run_state_changed()
        else:
            self.editor.run_progress()

    def _finished(self, task: asyncio.Task[RunResult], input_items: Any, trigger: str, version: int | None) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._pending = {}
        editor = self.editor
        editor.state.running = False
        if task.cancelled():
            result = None
        elif task.exception() is not None:
            exc = task.exception()
            log.error("test run %s failed to start or finish: %s", self.run_id, exc, exc_info=exc)
            result = None
            if not editor.closed:
                with editor.client:
                    ui.notify(f"The run could not finish: {exc}", type="negative")
        else:
            result = task.result()
        # A run that could not finish leaves no run to show: its states would be half a truth.
        editor.last_run = RunView.from_result(result, input_items, trigger, version) if result is not None else None
        self.editor.state.live = {}
        if not editor.closed:
            editor.paint_status()
            self._panel_later(state_changed=True)
