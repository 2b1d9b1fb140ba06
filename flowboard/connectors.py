"""OpenAPI connectors, as the UI, the API and the CLI use them: import a document (file, URL or pasted text) and
every operation becomes a node type `api.<connector>.<operation>` in this Flowboard's registry; re-import shows what
changed and which flows it touches; remove is refused while flows use it; a flow's export carries the documents of
the connectors it uses, and importing that file installs them.

```
 text / URL ─▶ openapi.read_document ─▶ openapi.load (validate, resolve) ─▶ Api ─▶ openapi_nodes ─▶ registry
                                                                            │
                                                      store.connectors ◀────┘  (the document, as JSON)
```
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import openapi
from .errors import FlowboardError, FlowInvalid, Problem
from .openapi import Api, ApiInvalid, Changes
from .openapi_nodes import node_types, type_id
from .store.connectors import ConnectorRecord, ConnectorStore

if TYPE_CHECKING:
    from .model import Flow
    from .registry import Registry
    from .services import Flowboard

log = logging.getLogger(__name__)
PREFIX = "api."


class ConnectorInUse(FlowboardError):
    """The connector cannot be removed: flows use it."""

    def __init__(self, name: str, flows: list[str]):
        self.flows = flows
        super().__init__(f"connector {name!r} is used by {len(flows)} flow{'s' if len(flows) != 1 else ''}: "
                         f"{', '.join(flows)}; remove its nodes from them first")


@dataclass(slots=True)
class Preview:
    """What importing a document would do: the Api read from it; for a re-import, the changes and the flows they
    touch (flow name -> the operations it uses that are gone, or whose nodes no longer fit)."""

    api: Api
    document: dict[str, Any]
    source: str
    server: str
    existing: bool = False
    changes: Changes | None = None
    removed_in_use: dict[str, list[str]] = field(default_factory=dict)
    broken: dict[str, list[str]] = field(default_factory=dict)
    server_change: tuple[str, str] | None = None  # (before, after) when the server address changes
    old: Api | None = None  # the connector as it is now, for a re-import

    def lines(self) -> list[str]:
        """What importing does, line by line, in words (the CLI and the connectors page)."""
        api = self.api
        lines = []
        if not self.existing or self.changes is None:
            lines = [f"{op.method} {op.path}: {op.title}" for op in api.operations.values()]
        else:
            changes = self.changes
            old = self.old.operations if self.old else {}

            def named(keys: list[str]) -> str:
                ops = [api.operations.get(k) or old.get(k) for k in keys]
                return ", ".join(f"{op.title} ({op.key})" if op else k for k, op in zip(keys, ops, strict=True))

            for label, keys in (("added", changes.added), ("removed", changes.removed), ("changed", changes.changed)):
                if keys:
                    lines.append(f"{label}: {named(keys)}")
            if not changes:
                lines.append("no operation changed")
        if self.server_change:
            lines.append(f"server address: {self.server_change[0] or '(none)'} -> {self.server_change[1] or '(none)'}")
        for flow, keys in self.removed_in_use.items():
            lines.append(f"flow {flow!r} uses {', '.join(keys)}, which the API no longer has: change that flow")
        for flow, problems in self.broken.items():
            lines.append(f"flow {flow!r} no longer fits the changed operations: {'; '.join(problems)}")
        if not api.server:
            lines.append("the document names no server address: give one when importing (or set it on each node)")
        return lines + api.warnings


def _said(problem: Problem, node: Any, registry: Registry) -> str:
    """A node's problem in words: `node "Make one", field sku: is required`."""
    import re

    cls = registry.get(node.type, node.version)
    name = node.name or (cls.title if cls is not None else node.id)
    field = re.sub(r"^nodes\[\d+\]\.?(config\.?)?", "", problem.loc)
    return f'node "{name}"' + (f", field {field}" if field else "") + f": {problem.message}"


def connector_of(node_type: str) -> str | None:
    """The connector a node type belongs to (`api.shop.list_items` -> shop), None for other node types."""
    if not node_type.startswith(PREFIX):
        return None
    return node_type.split(".")[1] if node_type.count(".") >= 2 else None


class Connectors:
    def __init__(self, fb: Flowboard):
        self.fb = fb
        self.store = ConnectorStore(fb.store.engine)
        self.apis: dict[str, Api] = {}

    # -- reading -----------------------------------------------------------------------------------------------

    def read(self, text: str | bytes, *, source: str = "", server: str = "", name: str = "") -> Preview:
        """Read a document and say what importing it would change. Raises ApiInvalid (every problem, located)."""
        document = openapi.read_document(text)
        return self.preview(document, source=source, server=server, name=name)

    def fetch(self, url: str, *, server: str = "", name: str = "") -> Preview:
        """Read the document at an http(s) URL. Raises ApiInvalid saying what went wrong."""
        import httpx

        url = url.strip()
        if not url.lower().startswith(("http://", "https://")):
            raise ApiInvalid([Problem("", f"{url!r} is not a web address; give one starting with http:// or "
                                          "https://, or a file")])
        try:
            response = httpx.get(url, timeout=30, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise ApiInvalid([Problem("", f"could not load {url}: {exc or type(exc).__name__}")]) from None
        if response.status_code != 200:
            raise ApiInvalid([Problem("", f"{url} answered {response.status_code}, not the document")])
        return self.read(response.content, source=url, server=server, name=name)

    def preview(self, document: dict[str, Any], *, source: str = "", server: str = "", name: str = "") -> Preview:
        api = openapi.load(document, source=source, server=server, name=name)
        preview = Preview(api=api, document=document, source=source, server=server)
        old = self.apis.get(api.name)
        if old is None:
            return preview
        preview.existing = True
        preview.old = old
        preview.changes = openapi.diff(old, api)
        if old.server != api.server:
            preview.server_change = (old.server, api.server)
        changed = set(preview.changes.changed)
        removed = set(preview.changes.removed)
        trial = self.fb.registry.copy()
        for cls in self._types(api):
            trial.unregister(cls.type)
            trial.register(cls)
        for key in removed:
            trial.unregister(type_id(api.name, key))
        from .engine import build_plan

        for flow in self._flows_using(api.name):
            ops = {n.type.split(".", 2)[2] for n in flow.nodes if connector_of(n.type) == api.name}
            if ops & removed:
                preview.removed_in_use[flow.name] = sorted(ops & removed)
            if ops & changed:
                try:
                    build_plan(flow, trial)
                except FlowInvalid as exc:
                    nodes = {n.id: n for n in flow.nodes if connector_of(n.type) == api.name}
                    said = [_said(p, nodes[p.node_id], trial) for p in exc.problems if p.node_id in nodes][:5]
                    if said:
                        preview.broken[flow.name] = said
        return preview

    # -- changing ----------------------------------------------------------------------------------------------

    def save(self, preview: Preview) -> None:
        """Store the connector and put its node types in the registry (replacing an earlier import's). Flows that use
        its unchanged operations go on working; plans made with the old node types are forgotten."""
        api = preview.api
        self.store.put(api.name, api.title, preview.document, preview.source, preview.server)
        self._install(api)
        self.fb.forget_plans()
        log.info("connector %s imported: %d operations", api.name, len(api.operations))

    def remove(self, name: str) -> None:
        """Remove a connector and its node types. Raises ConnectorInUse naming the flows that use it."""
        users = sorted(f.name for f in self._flows_using(name))
        if users:
            raise ConnectorInUse(name, users)
        if not self.store.delete(name):
            from .store import NotFound

            raise NotFound(f"there is no connector called {name!r}")
        self._uninstall(name)
        self.fb.forget_plans()

    def load_all(self) -> None:
        """Put every stored connector's node types in the registry (at start). A connector that no longer reads
        (an upgrade made its document invalid) is logged and left out."""
        for record in self.store.all():
            try:
                api = openapi.load(record.document, source=record.source, server=record.server, name=record.name,
                                   validate=False)  # checked when it was imported
            except ApiInvalid as exc:
                log.error("connector %s cannot be read, its nodes are missing: %s", record.name, exc)
                continue
            self._install(api)

    def all(self) -> list[ConnectorRecord]:
        return self.store.all()

    def used_by(self, name: str) -> list[str]:
        """Names of the stored flows whose nodes use the connector."""
        return sorted(f.name for f in self._flows_using(name))

    # -- flow files --------------------------------------------------------------------------------------------

    def for_export(self, flow: Flow) -> dict[str, dict[str, Any]]:
        """The connectors a flow uses, as its export carries them: document, source and server address."""
        out: dict[str, dict[str, Any]] = {}
        for node in flow.nodes:
            name = connector_of(node.type)
            if name is None or name in out:
                continue
            record = self.store.get(name)
            if record is not None:
                out[name] = {"document": record.document, "source": record.source, "server": record.server}
        return out

    def install_from(self, flow: Flow) -> list[str]:
        """Install the connectors a flow file carries that this Flowboard does not have yet; returns their names
        (to take back if the import fails). One already here is kept as it is: importing a flow never changes
        connectors other flows use. Raises FlowInvalid, located at `connectors.<name>`, for a carried document that
        does not read."""
        installed: list[str] = []
        problems: list[Problem] = []
        for name, carried in flow.connectors.items():
            if name in self.apis:
                continue
            document = carried.get("document") if isinstance(carried, dict) else None
            if not isinstance(document, dict):
                problems.append(Problem(f"connectors.{name}", "the connector has no `document` (the OpenAPI "
                                                              "document as JSON)"))
                continue
            try:
                preview = self.preview(document, source=str(carried.get("source") or ""),
                                       server=str(carried.get("server") or ""), name=name)
            except ApiInvalid as exc:
                problems += [Problem(f"connectors.{name}.document" + (f".{p.loc}" if p.loc else ""), p.message)
                             for p in exc.problems]
                continue
            if problems:
                continue
            self.save(preview)
            installed.append(name)
        if problems:
            self.take_back(installed)
            raise FlowInvalid(problems)
        return installed

    def registry_for(self, flow: Flow) -> Registry:
        """The registry to check and run a flow file with: this Flowboard's, plus the node types of the connectors
        the file carries that are not installed here (`flowboard run FILE` of an export; nothing is stored). Raises
        FlowInvalid, located at `connectors.<name>`, for a carried document that does not read."""
        missing = {name: carried for name, carried in flow.connectors.items() if name not in self.apis}
        if not missing:
            return self.fb.registry
        registry = self.fb.registry.copy()
        problems: list[Problem] = []
        for name, carried in missing.items():
            document = carried.get("document") if isinstance(carried, dict) else None
            try:
                if not isinstance(document, dict):
                    raise ApiInvalid([Problem("", "the connector has no `document` (the OpenAPI document as JSON)")])
                api = openapi.load(document, source=str(carried.get("source") or ""),
                                   server=str(carried.get("server") or ""), name=name)
            except ApiInvalid as exc:
                problems += [Problem(f"connectors.{name}" + (f".document.{p.loc}" if p.loc else ""), p.message)
                             for p in exc.problems]
                continue
            for cls in self._types(api):
                registry.register(cls)
        if problems:
            raise FlowInvalid(problems)
        return registry

    def differing(self, flow: Flow) -> list[str]:
        """The connectors a flow file carries that this Flowboard has in another version (its document differs)."""
        out = []
        for name, carried in flow.connectors.items():
            record = self.store.get(name) if name in self.apis else None
            if record is not None and isinstance(carried, dict) and carried.get("document") != record.document:
                out.append(name)
        return out

    def orphans(self, name: str) -> dict[str, list[str]]:
        """Flows that use operations of the connector it no longer has (after a re-import): flow name -> operations."""
        api = self.apis.get(name)
        out: dict[str, list[str]] = {}
        for flow in self._flows_using(name):
            gone = sorted({n.type.split(".", 2)[2] for n in flow.nodes if connector_of(n.type) == name
                           and (api is None or n.type.split(".", 2)[2] not in api.operations)})
            if gone:
                out[flow.name] = gone
        return out

    def take_back(self, names: list[str]) -> None:
        for name in names:
            self.store.delete(name)
            self._uninstall(name)
        if names:
            self.fb.forget_plans()

    # -- inside ------------------------------------------------------------------------------------------------

    def _types(self, api: Api) -> list[type[Any]]:
        from .credential_types import all_types

        http = self.fb.registry.get("http.request", 2)
        if http is None:
            raise FlowboardError("the HTTP request node type (http.request v2) is missing; connectors call through it")
        return node_types(api, http, set(all_types()))

    def _install(self, api: Api) -> None:
        old = self.apis.get(api.name)
        types = self._types(api)
        if old is not None:
            for key in set(old.operations) - set(api.operations):
                self.fb.registry.unregister(type_id(api.name, key))
            for cls in types:  # replaced, not a new version: the node type is what the API is now
                self.fb.registry.unregister(cls.type)
        for cls in types:
            self.fb.registry.register(cls)
        self.apis[api.name] = api

    def _uninstall(self, name: str) -> None:
        api = self.apis.pop(name, None)
        if api is not None:
            for key in api.operations:
                self.fb.registry.unregister(type_id(name, key))

    def _flows_using(self, name: str) -> list[Flow]:
        out = []
        for summary in self.fb.store.list_flows():
            flow = self.fb.store.get_flow(summary.id).flow
            if any(connector_of(n.type) == name for n in flow.nodes):
                out.append(flow)
        return out
