"""Node types: the built-ins in `flowboard.nodes` plus third-party packages through the entry-point group
`flowboard.nodes` (each entry point names a module, or a NodeType class). A module may also declare credential
types (`flowboard.sdk.CredentialType` instances at module level): they join the credential types."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
from collections.abc import Iterator
from functools import cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from .credential_types import CredentialType
from .credential_types import register as register_credential_type
from .sdk import Category, NodeType

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "flowboard.nodes"


class Registry:
    def __init__(self) -> None:
        self._types: dict[tuple[str, int], type[NodeType]] = {}
        self._latest: dict[str, int] = {}
        #: Which package each node type comes from ("flowboard" for the built-ins, "name version" for a package).
        self._packages: dict[str, str] = {}
        #: Counts changes (a connector's node types added or removed), so what is built from the catalog is rebuilt.
        self.generation = 0

    def copy(self) -> Registry:
        """A registry with the same node types, to which more can be added without changing this one (each
        Flowboard adds its connectors' node types to its own copy)."""
        other = Registry()
        other._types = dict(self._types)
        other._latest = dict(self._latest)
        other._packages = dict(self._packages)
        return other

    def unregister(self, type_id: str) -> None:
        """Forget every version of a node type (a connector's operation that was removed)."""
        for key in [key for key in self._types if key[0] == type_id]:
            del self._types[key]
        self._latest.pop(type_id, None)
        self._packages.pop(type_id, None)
        self.generation += 1

    def register(self, cls: type[NodeType], package: str = "") -> type[NodeType]:
        for attr in ("type", "title", "category"):
            if not getattr(cls, attr, None):
                raise TypeError(f"node type {cls.__name__} must set `{attr}`")
        key = (cls.type, cls.version)
        if key in self._types and self._types[key] is not cls:
            raise TypeError(f"two node types claim {cls.type} v{cls.version}: "
                            f"{self._types[key].__module__} and {cls.__module__}")
        self._types[key] = cls
        self._latest[cls.type] = max(self._latest.get(cls.type, 0), cls.version)
        if package:
            self._packages[cls.type] = package
        self.generation += 1
        return cls

    def package(self, type_id: str) -> str:
        """The package a node type comes from: "flowboard" (built in), a package's "name version", or ""
        (registered by hand, or a connector's operation)."""
        return self._packages.get(type_id, "")

    def register_module(self, module: ModuleType, package: str = "") -> None:
        for value in list(vars(module).values()):
            if isinstance(value, CredentialType):
                register_credential_type(value)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, NodeType) and obj is not NodeType and obj.__module__ == module.__name__ \
                    and "type" in vars(obj):
                self.register(obj, package)

    def get(self, type_id: str, version: int | None = None) -> type[NodeType] | None:
        if version is None:
            version = self._latest.get(type_id)
            if version is None:
                return None
        return self._types.get((type_id, version))

    def versions(self, type_id: str) -> list[int]:
        return sorted(v for (t, v) in self._types if t == type_id)

    def __contains__(self, type_id: str) -> bool:
        return type_id in self._latest

    def __iter__(self) -> Iterator[type[NodeType]]:
        return iter(self._types[(t, v)] for t, v in sorted(self._latest.items()))

    def catalog(self) -> list[dict[str, Any]]:
        """Every node type's latest version, as the editor and the API consume it."""
        order = {Category.trigger: 0, Category.logic: 1, Category.integration: 2}
        types = sorted(self, key=lambda c: (order[c.category], c.title.lower()))
        return [describe(cls) for cls in types]


def describe(cls: type[NodeType]) -> dict[str, Any]:
    return {
        "type": cls.type,
        "version": cls.version,
        "title": cls.title,
        "category": cls.category.value,
        "icon": cls.icon,
        "description": cls.description,
        "doc": inspect.cleandoc(cls.__doc__ or ""),
        "inputs": list(cls.inputs),
        "outputs": list(cls.outputs),
        "side_effects": cls.side_effects,
        "config_schema": cls.Config.model_json_schema(),
        "group": getattr(cls, "group", "") or "",  # a connector's node types: the API's name (a palette section)
    }


def load_builtins(registry: Registry) -> None:
    import flowboard.nodes as package

    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        registry.register_module(importlib.import_module(info.name), "flowboard")


def load_entry_points(registry: Registry) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception:
            log.exception("node package %s could not be loaded; its node types are missing", ep.value)
            continue
        package = f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else ep.value.partition(":")[0]
        if isinstance(obj, ModuleType):
            registry.register_module(obj, package)
        elif inspect.isclass(obj) and issubclass(obj, NodeType):
            registry.register(obj, package)
        else:
            log.error("entry point %s in group %s is neither a module nor a NodeType", ep.value, ENTRY_POINT_GROUP)


@cache
def default_registry() -> Registry:
    registry = Registry()
    load_builtins(registry)
    load_entry_points(registry)
    return registry
