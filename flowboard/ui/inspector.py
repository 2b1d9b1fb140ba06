"""The editor's inspector for one node: Parameters, Settings and its data from the last run.

Two layouts of the same panel: beside the canvas (tabs Parameters, Settings, Data), and the node view over the canvas
(`state.node_view`): the items coming in on the left (their fields ready to drag into the form), the form in the
middle, the node's output on the right, so running the node shows its output at once.

Both forms are generated (ConfigForm): the node type's config model, and NodeSettings plus the node's name. Every
change is checked on the server with the models themselves and the messages go back to their fields.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nicegui import ui
from pydantic import ValidationError

from .. import expressions
from ..errors import ExpressionError, format_loc, problems_from_validation
from ..model import Node, NodeSettings
from ..sdk import Category, NodeType, PasteImport
from .data_view import CSS as DATA_CSS
from .data_view import SO_FAR_EVERY, field_chip, input_view, output_view, progress_view, step_state, step_view
from .forms import ConfigForm, errors_from_validation
from .forms.schema import NoPreview
from .naming import taken_names
from .run_data import paths

MAX_CHIPS = 40  # fields offered to drag; the picker (data_object) lists the rest

if TYPE_CHECKING:
    from .editor_state import EditorActions, EditorState

CSS = """
.fb-inspector .q-tab { min-height: 36px; padding: 0 12px; }
.fb-inspector .q-tab__label { font-size: 13px; text-transform: none; }
.fb-inspector .q-tab-panel { padding: 14px 16px 24px; }
.fb-settings-form .fb-fx { display: none; }
.fb-input-fields { margin-bottom: 10px; }
.fb-nv-body { flex: 1 1 0; min-height: 0; }
.fb-nv-col { width: 30%; min-width: 0; height: 100%; overflow: auto; padding: 12px 16px 24px; background: #f8fafc; }
.fb-nv-mid { width: 40%; min-width: 0; height: 100%; overflow: auto; background: #fff;
  border-left: 1px solid #e3e6ec; border-right: 1px solid #e3e6ec; }
.fb-nv-head { border-bottom: 1px solid #e3e6ec; }
"""
_NAME = {"type": "string", "title": "Name", "maxLength": 200,
         "description": "The name on the canvas, e.g. Look up leave. Later nodes read this node's items by it. Leave "
                        "it empty to use the node type's name."}


def settings_schema() -> dict[str, Any]:
    """NodeSettings' own JSON Schema with the node's name first (notes as a text area)."""
    schema = copy.deepcopy(NodeSettings.model_json_schema())
    props = schema.get("properties", {})
    if "notes" in props:
        props["notes"]["widget"] = "textarea"
    schema["properties"] = {"name": _NAME, **props}
    return schema


def settings_value(node: Node) -> dict[str, Any]:
    return {"name": node.name, **node.settings.model_dump(mode="json", exclude_defaults=True)}


def config_errors(cls: type[NodeType], config: dict[str, Any]) -> dict[str, str]:
    """The config's problems as ConfigForm shows them. A field holding an expression is checked after it is
    evaluated, at run time; here only the expression's own syntax is."""
    paths = expressions.expression_paths(config)
    out: dict[str, str] = {}
    for path in paths:
        value: Any = config
        for part in path:
            value = value[part]
        try:
            expressions.compile_string(value)
        except ExpressionError as exc:
            out[format_loc(list(path))] = exc.message
    try:
        cls.Config.model_validate(config)
    except ValidationError as exc:
        for problem, err in zip(problems_from_validation(exc), exc.errors(), strict=True):
            loc = tuple(err["loc"])
            if loc and any(loc[:len(p)] == p or p[:len(loc)] == loc for p in paths):
                continue
            out[problem.loc] = f"{out[problem.loc]}; {problem.message}" if problem.loc in out else problem.message
    return out


class Inspector:
    def __init__(self, state: EditorState, actions: EditorActions) -> None:
        self.state = state
        self.actions = actions
        self.tab = "parameters"  # the tab last chosen, kept when another node is selected
        self.node_id: str | None = None
        self.form: ConfigForm | None = None
        self.settings_form: ConfigForm | None = None
        self.data_panel: ui.column | None = None  # the Data tab, or the node view's output column
        self.input_panel: ui.column | None = None  # the node view's input column
        self.name_label: ui.label | None = None
        self.chips: ui.column | None = None  # the fields coming in, to drag
        self.explained: ui.column | None = None  # what the node will do (NodeType.explain), under its form
        self.tab_panels: dict[str, ui.tab_panel] = {}
        ui.add_css(CSS)
        ui.add_css(DATA_CSS)
        self.root = ui.column().classes("fb-inspector w-full gap-0 no-wrap").mark("inspector")
        self.root.on("keydown.esc", self._escape)
        state.subscribe("selection", lambda: self.show(state.selected))
        state.subscribe("run", self._run_ended)
        state.subscribe("progress", self._progress)
        self._data_shown = 0.0  # when the data of a running node was last drawn (redrawn at most every second)
        self._data_due: asyncio.TimerHandle | None = None

    @property
    def node(self) -> Node | None:
        return self.state.node(self.node_id)

    def show(self, node_id: str | None) -> None:
        self.node_id = node_id
        self.root.clear()
        self.form = self.settings_form = None
        self.explained = None
        self.data_panel = self.input_panel = self.chips = None
        node = self.node
        wide = self.state.node_view and node is not None
        self.root.classes(add="h-full fb-node-view" if wide else "", remove="" if wide else "h-full fb-node-view")
        if node is None:
            self.node_id = None
            return
        cls = self.state.registry.get(node.type, node.version)
        with self.root:
            if wide:
                self._node_view(node, cls)
                return
            self._head(node, cls)
            with ui.tabs().classes("w-full") \
                    .props("dense align=left active-color=primary indicator-color=primary") as tabs:
                ui.tab("parameters", "Parameters").mark("tab:parameters")
                ui.tab("settings", "Settings").mark("tab:settings")
                ui.tab("data", "Data").mark("tab:data")
            self._panels(node, cls, tabs, data=True)

    def _panels(self, node: Node, cls: type[NodeType] | None, tabs: ui.tabs, *, data: bool) -> None:
        """The tab panels; each is drawn when first shown (a node with many items opens faster)."""

        def parameters() -> None:
            if cls is None:
                ui.label(f"Unknown node type {node.type!r}: install the package that provides it.") \
                    .classes("text-negative")
            else:
                self._parameters(node, cls, chips=data)

        def data_tab() -> None:
            self.data_panel = ui.column().classes("w-full gap-2")
            self.refresh_data()

        builders: dict[str, Callable[[], None]] = {"parameters": parameters, "settings": lambda: self._settings(node)}
        if data:
            builders["data"] = data_tab
        tab = self.tab if self.tab in builders else "parameters"
        panels = self.tab_panels = {}

        def build(name: str) -> None:
            panel = panels.get(name)
            if panel is not None and not panel.default_slot.children:
                with panel:
                    builders[name]()

        def changed(e: Any) -> None:
            self.tab = e.value
            build(e.value)

        tabs.set_value(tab)
        tabs.on_value_change(changed)
        ui.separator()
        with ui.tab_panels(tabs, value=tab, animated=False, keep_alive=False).classes("w-full"):
            for name in builders:
                panels[name] = ui.tab_panel(name).mark(f"panel:{name}")
        build(tab)

    def _node_view(self, node: Node, cls: type[NodeType] | None) -> None:
        """Input items | form | output items, over the whole canvas."""
        with ui.row().classes("fb-nv-head w-full items-center no-wrap gap-2 px-4 py-2"):
            ui.icon(cls.icon if cls else "help_outline", size="24px").classes("text-primary")
            with ui.column().classes("grow gap-0 min-w-0"):
                self.name_label = ui.label(self.state.name_of(node)) \
                    .classes("font-semibold text-base ellipsis").mark("inspector:name")
                ui.label(cls.description if cls and cls.description else (cls.title if cls else node.type)) \
                    .classes("fb-small ellipsis")
            ui.button("Run this node", icon="play_arrow", on_click=lambda: self.actions.run_node(node.id)) \
                .props("unelevated no-caps dense color=primary").classes("px-3").mark("run-node") \
                .tooltip("Run this node with the earlier nodes' last output, and show its output on the right")
            ui.button(icon="close_fullscreen", on_click=lambda: self.actions.node_view(False)) \
                .props('flat round dense aria-label="Back to the canvas"') \
                .mark("node-view-close").tooltip("Back to the canvas (Esc)")
        with ui.row().classes("fb-nv-body w-full no-wrap gap-0"):
            self.input_panel = ui.column().classes("fb-nv-col fb-data gap-2 no-wrap").mark("node-view:input")
            with ui.column().classes("fb-nv-mid gap-0 no-wrap").mark("node-view:form"):
                with ui.tabs().classes("w-full") \
                        .props("dense align=left active-color=primary indicator-color=primary") as tabs:
                    ui.tab("parameters", "Parameters").mark("tab:parameters")
                    ui.tab("settings", "Settings").mark("tab:settings")
                self._panels(node, cls, tabs, data=False)
            self.data_panel = ui.column().classes("fb-nv-col fb-data gap-2 no-wrap").mark("node-view:output")
        self.refresh_data()

    def _escape(self) -> None:
        if self.state.node_view:
            self.actions.node_view(False)

    def _head(self, node: Node, cls: type[NodeType] | None) -> None:
        with ui.row().classes("w-full items-center no-wrap gap-2 px-4 pt-3 pb-1"):
            ui.icon(cls.icon if cls else "help_outline", size="22px").classes("text-primary")
            with ui.column().classes("grow gap-0 min-w-0"):
                self.name_label = ui.label(self.state.name_of(node)) \
                    .classes("font-semibold text-base ellipsis").mark("inspector:name")
                ui.label(f"{cls.title if cls else node.type} · {node.id}").classes("fb-small")
            ui.button(icon="play_arrow", on_click=lambda: self.actions.run_node(node.id)) \
                .props('flat round dense color=primary aria-label="Run this node"') \
                .mark("run-node").tooltip("Run this node (reuses the last run's earlier outputs)")
            ui.button(icon="open_in_full", on_click=lambda: self.actions.node_view(True)) \
                .props('flat round dense aria-label="Open the node view"').mark("node-view-open") \
                .tooltip("Open the node view: input, settings and output side by side (or double-click the node)")
            ui.button(icon="close", on_click=lambda: self.actions.select(None)) \
                .props('flat round dense aria-label="Close the node"') \
                .tooltip("Close")
        if cls is not None and cls.description:
            ui.label(cls.description).classes("fb-small px-4 pb-2")

    # -- parameters -------------------------------------------------------------------------------------------------

    def _parameters(self, node: Node, cls: type[NodeType], *, chips: bool) -> None:
        state = self.state
        last = state.last_run
        names = last.field_names(state.flow, state.registry, node.id) if last else []
        if chips and cls.category is not Category.trigger:
            self._input_fields(node)
        if cls.paste_import is not None:
            paste = cls.paste_import
            ui.button(paste.label, icon="content_paste", on_click=lambda: self._paste(paste)) \
                .props("flat dense no-caps color=primary").mark("paste-import")
        self.form = ConfigForm(cls.Config.model_json_schema(), node.config, on_change=self._config_changed,
                               field_names=names, preview=self._preview, credentials=self.actions.credential_names,
                               choices=self.actions.choices,
                               expressions=cls.category is not Category.trigger)
        self.form.set_errors(config_errors(cls, self.form.value))  # as shown (a field may have filled itself in)
        self.explained = ui.column().classes("w-full gap-1 pt-2").mark("inspector:explain")
        self._explain(cls, node.config)

    def _explain(self, cls: type[NodeType], config: dict[str, Any]) -> None:
        """Show what the node will do with this config (its `explain`), or nothing while the config is not valid."""
        if self.explained is None:
            return
        try:
            text = cls.explain(cls.Config.model_validate(config))
        except Exception:  # not valid yet (the form shows why), or nothing to say
            text = None
        self.explained.clear()
        self.explained.set_visibility(bool(text))
        if text:
            with self.explained:
                ui.label("The statement it runs for each item (values are sent separately, shown as :name)") \
                    .classes("fb-small")
                ui.label(text).classes("fb-explain w-full").style(
                    "white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; "
                    "background: #f4f5f7; border-radius: 4px; padding: 8px")

    async def _paste(self, paste: PasteImport) -> None:
        """Fill the form from pasted text (a curl command): the config's fields are replaced by what it says, and a
        login in it is saved as a new credential the node then uses (a secret never goes into the flow)."""
        node_id = self.node_id
        with self.root, ui.dialog() as dialog, ui.card().classes("w-[640px] gap-3"):
            ui.label(paste.label).classes("text-lg font-semibold")
            text = ui.textarea(placeholder=paste.hint).props("outlined autofocus autogrow input-style=min-height:8em") \
                .classes("w-full fb-mono").mark("paste-import-text")
            error = ui.label("").classes("text-negative text-sm").mark("paste-import-error")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat no-caps")
                ui.button("Fill the form", on_click=lambda: dialog.submit(True)).props("unelevated no-caps") \
                    .mark("paste-import-apply")
        result = None
        while await dialog:
            try:
                result = paste.parse(str(text.value or ""))
            except ValueError as exc:
                error.text = str(exc)[:1].upper() + str(exc)[1:]
                continue
            break
        dialog.delete()
        if result is None or node_id is None or self.node_id != node_id:
            return
        config = dict(result.config)
        notes = list(result.notes)
        if result.credential is not None:
            suggested, type_, data = result.credential
            config["credential"] = self.actions.add_credential(suggested, type_, data)
            notes.insert(0, f"the login is saved as the credential {config['credential']!r}")
        self.actions.update_node(node_id, config=config)
        self.show(node_id)
        ui.notify("Filled the form" + (": " + "; ".join(notes) if notes else ""), type="positive", multi_line=True,
                  timeout=8000)

    def _input_fields(self, node: Node) -> None:
        """The fields of the items coming in (from the last run), as chips to drag into a form field: the drop
        writes the expression that reads it (`{{ item.email }}`), so mapping data needs no typing. Drawn again when
        a run ends (the editor runs the nodes before a new one by itself)."""
        self.chips = ui.column().classes("w-full gap-1 fb-input-fields").mark("input-fields")
        self._draw_chips(node)

    def _draw_chips(self, node: Node) -> None:
        if self.chips is None or self.chips.is_deleted:
            return
        last = self.state.last_run
        inputs = last.inputs_of(self.state.flow, node.id) if last else {}
        items = inputs.get("main") or next(iter(inputs.values()), [])
        if not items and last is not None:  # its branch was not taken: the fields of the other branch
            items = last.branch_items(self.state.flow, node.id)
        fields = paths(items)[:MAX_CHIPS]
        self.chips.clear()
        with self.chips:
            if not fields:
                ui.label("Run the flow to see the fields of the items coming in; then drag one into a field below.") \
                    .classes("fb-small")
                return
            ui.label("Fields coming in: drag one into a field below").classes("fb-small")
            with ui.row().classes("w-full gap-1"):
                for path in fields:
                    field_chip(path)

    def _run_ended(self) -> None:
        """A run ended or started: its data, and the fields offered to drag and pick in the form."""
        self.refresh_data()
        node = self.node
        if node is None or self.state.running:
            return
        self._draw_chips(node)
        last = self.state.last_run
        if self.form is not None and last is not None:
            self.form.field_names[:] = last.field_names(self.state.flow, self.state.registry, node.id)

    def _config_changed(self, value: dict[str, Any]) -> None:
        node = self.node
        if node is None:
            return
        self.actions.update_node(node.id, config=value)
        renamed = self.node
        if renamed is not None and renamed.name != node.name:  # named after what it now does (naming.py)
            self._show_name(renamed)
        cls = self.state.registry.get(node.type, node.version)
        if cls is not None and self.form is not None:
            self.form.set_errors(config_errors(cls, value))
            self._explain(cls, value)

    def _preview(self, text: str) -> Any:
        last = self.state.last_run
        if last is None or self.node_id is None:
            raise NoPreview("No data yet: run the flow to preview this with real items.")
        scope = last.scope(self.state.flow, self.state.registry, self.node_id)
        return expressions.evaluate(expressions.compile_string(text), scope)

    # -- settings ---------------------------------------------------------------------------------------------------

    def _settings(self, node: Node) -> None:
        with ui.column().classes("fb-settings-form w-full"):
            self.settings_form = ConfigForm(settings_schema(), settings_value(node), on_change=self._settings_changed,
                                            expressions=False)

    def _show_name(self, node: Node) -> None:
        if self.name_label is not None:
            self.name_label.text = self.state.name_of(node)
        settings = self.tab_panels.get("settings")
        if settings is not None and self.tab != "settings":  # drawn again with the new name when shown
            settings.clear()
            self.settings_form = None

    def _settings_changed(self, value: dict[str, Any]) -> None:
        node = self.node
        if node is None or self.settings_form is None:
            return
        value = dict(value)
        name = str(value.pop("name", "") or "")
        errors: dict[str, str] = {}
        if len(name) > 200:
            errors["name"] = "at most 200 characters"
        elif name and name in taken_names(self.state.flow, self.state.registry, node.id):
            errors["name"] = f"Another node is already called “{name}”: choose another name."
        try:
            settings = NodeSettings.model_validate(value)
        except ValidationError as exc:
            errors.update(errors_from_validation(exc))
            settings = None
        self.settings_form.set_errors(errors)
        if errors or settings is None:
            return
        self.actions.update_node(node.id, name=name, settings=settings)
        renamed = self.node
        if renamed is not None and self.name_label is not None:
            self.name_label.text = self.state.name_of(renamed)

    # -- data -------------------------------------------------------------------------------------------------------

    def _progress(self) -> None:
        """A test run went on: a node shown while it runs gets its items so far, redrawn at most every second."""
        node = self.node
        if node is None or not self.state.running or (self.state.live.get(node.id) or {}).get("state") != "running":
            return
        if self._data_due is not None:
            return
        wait = self._data_shown + SO_FAR_EVERY - time.monotonic()
        if wait <= 0:
            self.refresh_data()
        else:
            self._data_due = asyncio.get_running_loop().call_later(wait, self._progress_due)

    def _progress_due(self) -> None:
        self._data_due = None
        if not self.root.is_deleted:
            self._progress()

    def _running_data(self, node_id: str) -> bool:
        """Draw a node still running in the test run going on, with its items so far, if it said any."""
        if not self.state.running or (self.state.live.get(node_id) or {}).get("state") != "running":
            return False
        progress = self.actions.progress(node_id)
        if progress is None:
            return False
        self._data_shown = time.monotonic()
        progress_view(progress)
        return True

    def refresh_data(self) -> None:
        node = self.node
        if self.data_panel is None or self.data_panel.is_deleted or node is None:
            return
        state = self.state
        last = state.last_run
        step = last.steps.get(node.id) if last else None
        inputs = last.inputs_of(state.flow, node.id) if last else {}
        cls = state.registry.get(node.type, node.version)
        trigger = cls is not None and cls.category is Category.trigger

        def actions() -> None:
            if trigger and step is not None and step.outputs:
                items = next(iter(step.outputs.values()))
                ui.button("Pin output", icon="push_pin", on_click=lambda: self._pin(items)) \
                    .classes("fb-sm").props("flat dense no-caps").mark("pin") \
                    .tooltip("Start test runs with these items")

        self.data_panel.clear()
        with self.data_panel:
            if trigger and node.pinned is not None:
                self._pinned(node.pinned)
            if self._running_data(node.id):
                return
            if self.input_panel is None:
                step_view(step, inputs, not_run="No data yet: run the flow, or this node (▶ above).", actions=actions)
                return
            if step is None:
                ui.label("Output").classes("font-semibold text-sm")
            step_state(step, not_run="No output yet: press Run this node (above) to see what it makes of its input.",
                       actions=actions)
            if step is not None:
                output_view(step, inputs)
        if self.input_panel.is_deleted:
            return
        self.input_panel.clear()
        with self.input_panel:
            if trigger:
                ui.label("Input").classes("font-semibold text-sm")
                ui.label("A trigger starts the flow: it has no input. Its test data is in the form, and what it "
                         "passes on is on the right.").classes("fb-small")
            elif last is None or not inputs:
                ui.label("Input").classes("font-semibold text-sm")
                ui.label("No input yet: run the flow (or Run this node) to see the items coming in; then drag a "
                         "field from here into the form.").classes("fb-small").mark("input:none")
            else:
                input_view(inputs, default="schema", draggable=True, run_id=last.run_id)

    def _pinned(self, pinned: list[dict[str, Any]]) -> None:
        with ui.row().classes("w-full items-center gap-2 fb-pinned").mark("pinned"):
            ui.icon("push_pin", size="18px").classes("text-amber-8")
            ui.label(f"{len(pinned)} pinned item{'s' if len(pinned) != 1 else ''}: test runs "
                     "start with them").classes("text-sm grow")
            ui.button("Unpin", on_click=lambda: self._pin(None)).props("flat dense no-caps").mark("unpin")

    def _pin(self, items: list[dict[str, Any]] | None) -> None:
        node = self.node
        if node is None:
            return
        self.actions.update_node(node.id, pinned=copy.deepcopy(items))
        self.refresh_data()
        ui.notify("Pinned: test runs start with these items" if items is not None else "Unpinned")
