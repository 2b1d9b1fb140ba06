"""The flow canvas: a NiceGUI element around the Vue Flow editor built from ``frontend/``.

Graph shape (the same in and out)::

    nodes: [{"id", "type", "name", "position": {"x", "y"}, "inputs": [...], "outputs": [...], "disabled"}, ...]
    edges: [{"source", "source_port", "target", "target_port"}, ...]

Extra keys on a node or edge (e.g. its config) are kept and come back unchanged, also on copied nodes.

Events (payload in ``e.args``): ``change`` {"nodes", "edges"} after every edit; ``select`` {"ids"};
``open`` {"id"} on double click; ``save`` (Ctrl/Cmd+S); ``run`` (Ctrl/Cmd+Enter); ``ready`` once drawn.

Python changes the graph two ways. ``update_nodes`` sends a few nodes' data (an edit in a form): the canvas keeps
where they stand and everything else, so a move or a connection made meanwhile stays. ``set_graph`` replaces the whole
graph (a restored version). Messages cross on the way: a ``change`` the browser sent before it had a node's update
still holds that node's older data. Each message is numbered and each ``change`` says up to which one the browser had
applied (``applied``), so such a change reaches ``on_change`` handlers with the nodes updated since as Python sent
them (their new position kept), and a change made before a ``set_graph`` arrived is not passed on at all (the browser
dropped it when it replaced its graph).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Self

from nicegui import events, ui
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
        self._seq = 0  # the number of the last update_nodes / set_graph message
        self._graph_seq = 0  # ... of the last set_graph
        self._pending: dict[str, tuple[int, dict[str, Any]]] = {}  # node updates the browser may not have yet
        self._change_handlers: list[Handler[GenericEventArguments]] = []
        self.on("change", self._changed)  # one listener: the browser sends a big graph once per listener
        if on_change:
            self._change_handlers.append(on_change)
        for event, handler in [
            ("select", on_select),
            ("open", on_open),
            ("save", on_save),
            ("run", on_run),
        ]:
            if handler:
                self.on(event, handler)

    def _changed(self, e: GenericEventArguments) -> None:
        applied = int(e.args.pop("applied", 0) or 0)
        if applied < self._graph_seq:
            return  # made on a graph that set_graph has replaced since
        self._pending = {k: v for k, v in self._pending.items() if v[0] > applied}
        if self._pending:
            e.args["nodes"] = [
                {**self._pending[n["id"]][1], "position": n.get("position")} if n.get("id") in self._pending else n
                for n in e.args.get("nodes", [])
            ]
        # Keep the props current, or the next full resend (any update()) would snap the graph back. NiceGUI's props
        # are observable: a plain assignment would resend every prop to the browser (slow for big flows, and a
        # resend that arrives after a newer edit would roll the canvas back). So: quietly.
        with self._props.suspend_updates():
            self._props["nodes"] = e.args["nodes"]
            self._props["edges"] = e.args["edges"]
        for handler in self._change_handlers:
            events.handle_event(handler, e)

    @property
    def graph(self) -> Graph:
        """The graph as last reported by the browser (or as last set from Python)."""
        return {"nodes": self._props["nodes"], "edges": self._props["edges"]}

    def on_change(self, handler: Handler[GenericEventArguments]) -> Self:
        """Call ``handler`` after every graph edit; ``e.args`` is ``{"nodes": [...], "edges": [...]}``."""
        self._change_handlers.append(handler)
        return self

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
        """Replace the whole graph (no ``change`` event). Undo can step back over it unless ``reset_history``.
        For a graph that changed on the server (a restored version); an edit of some nodes goes by ``update_nodes``.
        """
        with self._props.suspend_updates():
            self._props["nodes"] = nodes
            self._props["edges"] = edges
        self._seq += 1
        self._graph_seq = self._seq
        self._pending = {}
        self.run_method("setGraph", nodes, edges, reset_history, self._seq)

    def update_nodes(self, nodes: list[dict[str, Any]]) -> None:
        """Give these nodes (whole node dicts, matched by id) their new name, ports, on/off and extra keys; their
        positions, the edges and every other node stay as the browser has them (no ``change`` event)."""
        if not nodes:
            return
        self._seq += 1
        by_id = {n["id"]: n for n in nodes}
        for node_id, node in by_id.items():
            self._pending[node_id] = (self._seq, node)
        with self._props.suspend_updates():
            self._props["nodes"] = [
                {**by_id[n["id"]], "position": n.get("position")} if n.get("id") in by_id else n
                for n in self._props["nodes"]
            ]
        self.run_method("updateNodes", nodes, self._seq)

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
