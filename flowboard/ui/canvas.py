"""The flow canvas: a NiceGUI element around the Vue Flow editor built from ``frontend/``.

Graph shape (the same in and out)::

    nodes: [{"id", "type", "name", "position": {"x", "y"}, "inputs": [...], "outputs": [...], "disabled"}, ...]
    edges: [{"source", "source_port", "target", "target_port"}, ...]

Extra keys on a node or edge (e.g. its config) are kept and come back unchanged, also on copied nodes.

Events (payload in ``e.args``): ``change`` {"nodes", "edges"} after every edit; ``select`` {"ids"};
``open`` {"id"} on double click; ``save`` (Ctrl/Cmd+S); ``run`` (Ctrl/Cmd+Enter); ``ready`` once drawn.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

from nicegui import ui
from nicegui.events import GenericEventArguments, Handler

_DIST = Path(__file__).parent / "dist"
if not (_DIST / "index.js").is_file():  # a warning, not an error: pages and tests without a browser still work
    logging.getLogger(__name__).warning(
        "The canvas bundle %s is missing, so browsers cannot show the flow canvas. Build it with "
        "`pip install -e .` (needs Node.js and npm) or `cd frontend && npm ci && npm run build`.",
        _DIST / "index.js",
    )

Graph = dict[str, list[dict[str, Any]]]


class FlowCanvas(ui.element, component="flow_canvas.js", esm={"flowboard-canvas": "dist"}):
    """Flow editor canvas: palette, nodes with ports, connections, run status.

    Give it an explicit height (it fills its parent: ``.style('height: 100%')`` or ``.classes('h-[600px]')``).
    """

    def __init__(
        self,
        catalog: list[dict[str, Any]],
        nodes: list[dict[str, Any]],
        edges: list[dict[str, Any]],
        readonly: bool = False,
        *,
        on_change: Handler[GenericEventArguments] | None = None,
        on_select: Handler[GenericEventArguments] | None = None,
        on_open: Handler[GenericEventArguments] | None = None,
        on_save: Handler[GenericEventArguments] | None = None,
        on_run: Handler[GenericEventArguments] | None = None,
    ) -> None:
        super().__init__()
        self._props["catalog"] = catalog
        self._props["nodes"] = nodes
        self._props["edges"] = edges
        self._props["readonly"] = readonly
        self._props["status"] = {}
        # Keep the props current, or the next full resend (any update()) would snap the graph back.
        self.on("change", self._remember_graph)
        for event, handler in [
            ("change", on_change),
            ("select", on_select),
            ("open", on_open),
            ("save", on_save),
            ("run", on_run),
        ]:
            if handler:
                self.on(event, handler)

    def _remember_graph(self, e: GenericEventArguments) -> None:
        # NiceGUI's props are observable: a plain assignment would resend every prop to the browser (slow for big
        # flows, and a resend that arrives after a newer edit would roll the canvas back). So: quietly.
        with self._props.suspend_updates():
            self._props["nodes"] = e.args["nodes"]
            self._props["edges"] = e.args["edges"]

    @property
    def graph(self) -> Graph:
        """The graph as last reported by the browser (or as last set from Python)."""
        return {"nodes": self._props["nodes"], "edges": self._props["edges"]}

    def on_change(self, handler: Handler[GenericEventArguments]) -> Self:
        """Call ``handler`` after every graph edit; ``e.args`` is ``{"nodes": [...], "edges": [...]}``."""
        return self.on("change", handler)

    def on_select(self, handler: Handler[GenericEventArguments]) -> Self:
        """Call ``handler`` when the selection changes; ``e.args`` is ``{"ids": [...]}``."""
        return self.on("select", handler)

    def on_open(self, handler: Handler[GenericEventArguments]) -> Self:
        """Call ``handler`` when a node is double-clicked; ``e.args`` is ``{"id": ...}``."""
        return self.on("open", handler)

    def on_save(self, handler: Handler[GenericEventArguments]) -> Self:
        """Call ``handler`` on Ctrl/Cmd+S."""
        return self.on("save", handler)

    def on_run(self, handler: Handler[GenericEventArguments]) -> Self:
        """Call ``handler`` on Ctrl/Cmd+Enter."""
        return self.on("run", handler)

    def set_graph(
        self, nodes: list[dict[str, Any]], edges: list[dict[str, Any]], *, reset_history: bool = False
    ) -> None:
        """Replace the graph (no ``change`` event). Undo can step back over it unless ``reset_history``."""
        with self._props.suspend_updates():
            self._props["nodes"] = nodes
            self._props["edges"] = edges
        self.run_method("setGraph", nodes, edges, reset_history)

    def set_status(self, statuses: dict[str, dict[str, Any] | None]) -> None:
        """Merge run state per node: ``{id: {"state", "count", "message"}}``; ``None`` clears a node."""
        with self._props.suspend_updates():  # kept for a later full render; the browser gets only the news
            status = self._props["status"]
            for node_id, state in statuses.items():
                if state is None:
                    status.pop(node_id, None)
                else:
                    status[node_id] = state
        self.run_method("setStatus", statuses)

    def replace_status(self, statuses: dict[str, dict[str, Any] | None]) -> None:
        """Show exactly these run states: every other badge goes."""
        with self._props.suspend_updates():
            self._props["status"] = {k: v for k, v in statuses.items() if v is not None}
        self.run_method("clearStatus")
        self.run_method("setStatus", statuses)

    def clear_status(self) -> None:
        """Remove every run state badge."""
        with self._props.suspend_updates():
            self._props["status"] = {}
        self.run_method("clearStatus")

    def set_readonly(self, readonly: bool) -> None:
        """Switch editing off (viewing a run or an old version) or back on."""
        self._props["readonly"] = readonly  # props are observable: this resends them

    def fit_view(self) -> None:
        """Zoom and pan so that every node is visible."""
        self.run_method("fitView")

    def auto_layout(self) -> None:
        """Arrange the nodes left to right in layers (emits ``change``, can be undone)."""
        self.run_method("autoLayout")

    def select(self, node_id: str | None) -> None:
        """Select one node (or none) and pan to it if it is off screen; emits no ``select`` event."""
        self.run_method("selectNode", node_id)
