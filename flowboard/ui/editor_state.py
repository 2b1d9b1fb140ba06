"""What the editor shows, in one observable place, and what its panels may ask of it.

The editor (editor.py) owns an `EditorState` and implements `EditorActions`. Each panel (inspector, run panel) is
given those two and nothing else: it reads the state, subscribes to the parts it draws, and changes things only by
calling an action. So no panel reaches into the editor, and the editor imports its panels, never the other way round.

    state.subscribe("run", panel.render)       # topics: selection, run (started, finished), progress, problems
    state.notify("run")                         # the editor, after it changed state.last_run / live / running
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ..engine import Progress
from ..engine.scope import node_name
from ..errors import Problem
from ..model import Flow, Node
from ..registry import Registry
from .run_data import RunView, Statuses

Topic = Literal["selection", "run", "progress", "problems"]


@dataclass(eq=False)
class EditorState:
    flow: Flow  # the working copy, saved or not
    registry: Registry  # the node types, to read (titles, config models)
    version: int = 0  # the stored version the working copy started from
    dirty: bool = False  # differs from that version
    selected: str | None = None  # the node shown in the inspector
    node_view: bool = False  # the inspector is open over the canvas: input | form | output
    last_run: RunView | None = None  # the last test run (its data feeds previews and the data tabs)
    running: bool = False  # a test run is going on
    live: Statuses = field(default_factory=dict)  # its node states so far
    refused: bool = False  # the last Run found problems and did not start
    problems: list[Problem] = field(default_factory=list)  # what stops the working copy from running
    _subscribers: dict[str, list[Callable[[], Any]]] = field(default_factory=dict, repr=False)

    def subscribe(self, topic: Topic, callback: Callable[[], Any]) -> Callable[[], None]:
        """Call `callback()` after each `notify(topic)`; returns the function that ends the subscription."""
        callbacks = self._subscribers.setdefault(topic, [])
        callbacks.append(callback)
        return lambda: callbacks.remove(callback) if callback in callbacks else None

    def notify(self, topic: Topic) -> None:
        for callback in list(self._subscribers.get(topic, [])):
            callback()

    # -- read helpers every panel needs -----------------------------------------------------------------------------

    @property
    def shown_run(self) -> RunView | None:
        """The run the canvas and the run panel show: none once a run was refused (its problems are shown)."""
        return None if self.refused else self.last_run

    def node(self, node_id: str | None) -> Node | None:
        return next((n for n in self.flow.nodes if n.id == node_id), None)

    def name_of(self, node: Node) -> str:
        """The name shown on the canvas (and usable in expressions)."""
        return node_name(node, self.registry.get(node.type, node.version))


class EditorActions(Protocol):
    """What a panel may ask the editor to do."""

    def update_node(self, node_id: str, **changes: Any) -> None: ...

    def update_flow(self, **changes: Any) -> None: ...

    def select(self, node_id: str | None) -> None: ...

    def node_view(self, open: bool) -> None:
        """Open the selected node's view over the canvas (input, form, output side by side), or close it."""
        ...

    def run_flow(self) -> Awaitable[None]: ...

    def run_node(self, node_id: str) -> Awaitable[None]: ...

    def progress(self, node_id: str) -> Progress | None:
        """What the node, running in the test run going on, last said of its progress (its items so far)."""
        ...

    def credential_names(self, types: list[str]) -> list[str]: ...

    def add_credential(self, name: str, type_: str, data: dict[str, Any]) -> str:
        """Save a new credential under `name`, or `name 2`... when taken; returns the name used."""
        ...

    def choices(self, widget: str, table: str | None = None, config: dict[str, Any] | None = None) -> list[str]:
        """What a picker field offers: data tables (`table`), a table's columns (`table_column`), flows (`flow`),
        the tables (`sql_table`) or a table's columns (`sql_column`) of the database the node's `config` names
        (may raise DatabaseUnreadable, in words)."""
        ...
