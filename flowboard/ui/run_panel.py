"""The editor's side panel when no node is selected: the test run (live), the flow's problems, its settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nicegui import ui
from pydantic import ValidationError

from ..model import FlowSettings
from .forms import ConfigForm, errors_from_validation
from .layout import ago, duration, problem_text, status_chip

if TYPE_CHECKING:
    from .editor_state import EditorActions, EditorState

HOW = ("Run tries the flow as it is on the canvas, saved or not, starting from its Manual trigger (or the "
       "trigger's pinned items). Every test run is recorded and listed on the Runs page.")


class RunPanel:
    def __init__(self, state: EditorState, actions: EditorActions) -> None:
        self.state = state
        self.actions = actions
        self.root = ui.column().classes("w-full gap-3 p-4")
        with self.root:
            self.live = ui.column().classes("w-full gap-2")
            ui.separator()
            with ui.expansion("Flow settings", icon="tune").classes("w-full").props("dense") \
                    .mark("flow-settings"):
                self._flow_settings()
        self._unsubscribe = [state.subscribe(topic, self._render_if_shown)
                             for topic in ("selection", "run", "progress", "problems")]
        self.render()

    def close(self) -> None:
        """Stop following the state (the panel is about to be replaced)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    def _render_if_shown(self) -> None:
        if self.state.selected is None and not self.root.is_deleted:
            self.render()

    def render(self) -> None:
        state = self.state
        last = state.shown_run
        self.live.clear()
        with self.live:
            with ui.row().classes("w-full items-center gap-2"):
                ui.label("Test run").classes("font-semibold text-base")
                ui.space()
                if state.running:
                    status_chip("running")
                elif last is not None:
                    status_chip(last.status).mark("run-status")
            ui.label(HOW).classes("fb-small")
            if last is not None and not state.running:
                with ui.row().classes("items-center gap-2"):
                    ui.label(f"{ago(last.started)} · {duration(last.started, last.finished)}").classes("fb-small")
                    ui.link("Open in Runs", f"/run/{last.run_id}").classes("text-xs").mark("run-link")
                if last.error and last.error.get("message"):
                    node = last.error.get("node_id")
                    prefix = f'{self._name(node)}: ' if node else ""
                    ui.label(prefix + last.error["message"]).classes("text-negative text-sm").mark("run-error")
            if state.problems:
                self._problems()
            self._steps()

    def _name(self, node_id: str | None) -> str:
        node = self.state.node(node_id)
        return self.state.name_of(node) if node else str(node_id)

    def _problems(self) -> None:
        names = {n.id: self.state.name_of(n) for n in self.state.flow.nodes}
        count = len(self.state.problems)
        with ui.column().classes("w-full gap-1").mark("problems"):
            ui.label(f"{count} problem{'s' if count != 1 else ''} to fix before it can run") \
                .classes("text-negative font-semibold text-sm")
            for p in self.state.problems:
                text = problem_text(p.loc, p.message, p.node_id, names)
                label = ui.label(text).classes("text-sm cursor-pointer hover:underline").mark("problem")
                if p.node_id:
                    label.on("click", lambda nid=p.node_id: self.actions.select(nid))

    def _steps(self) -> None:
        state = self.state
        live = state.live if state.running else None
        last = state.shown_run
        if live is None and last is None:
            return
        with ui.column().classes("w-full gap-0").mark("steps"):
            for node in state.flow.nodes:
                if live is not None:
                    badge = live.get(node.id) or {}
                    status, count, took = badge.get("state"), badge.get("count"), ""
                else:
                    step = last.steps.get(node.id) if last else None
                    status = step.status.value if step else None
                    count = step.count if step else None
                    took = duration(step.started, step.finished) if step else ""
                with ui.row().classes("w-full items-center no-wrap gap-2 py-1 cursor-pointer hover:bg-grey-2") \
                        .on("click", lambda nid=node.id: self.actions.select(nid)).mark(f"step:{node.id}"):
                    ui.label(state.name_of(node)).classes("text-sm grow ellipsis")
                    if count is not None and status in ("succeeded", "failed", "running"):
                        ui.label(f"{count:,} item{'s' if count != 1 else ''}" + (" so far" if status == "running"
                                                                                  else "")).classes("fb-small")
                    if took:
                        ui.label(took).classes("fb-small")
                    status_chip(status, status or "not run")

    # -- the flow's own settings ------------------------------------------------------------------------------------

    def _flow_settings(self) -> None:
        flow = self.state.flow
        ui.textarea("Description", value=flow.description,
                    on_change=lambda e: self.actions.update_flow(description=e.value or "")) \
            .props("outlined dense autogrow").classes("w-full").mark("flow-description")
        with ui.column().classes("fb-settings-form w-full"):
            self.settings_form = ConfigForm(FlowSettings.model_json_schema(),
                                            flow.settings.model_dump(mode="json", exclude_defaults=True),
                                            on_change=self._settings_changed, expressions=False)

    def _settings_changed(self, value: dict[str, Any]) -> None:
        try:
            settings = FlowSettings.model_validate(value)
        except ValidationError as exc:
            self.settings_form.set_errors(errors_from_validation(exc))
            return
        self.settings_form.set_errors({})
        self.actions.update_flow(settings=settings)
