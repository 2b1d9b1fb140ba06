"""Node types: the built-ins in `flowboard.nodes` plus third-party packages through the entry-point group
`flowboard.nodes` (each entry point names a module, or a NodeType class). A module may also declare credential
types (`flowboard.sdk.CredentialType` instances at module level): they join the credential types.

The built-in modules are imported when first needed, not at start: importing all of them was a fifth of the CPU
`flowboard serve` spent before its first webhook answer (docs/engine.md, start-up). Which module declares which type
is read from their source (`type = "..."` in a class body, `_declared_types`); a type asked for is imported with its
module, and anything else that needs the whole list (iterating, the catalog, an unknown type) imports them all. The
scan only decides what is imported first: a type it misses costs the import of every module, never a wrong answer.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil
import re
import threading
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
_LOADING = threading.RLock()  # a type asked for in two threads at once is registered before either looks again


class Registry:
    def __init__(self) -> None:
        self._types: dict[tuple[str, int], type[NodeType]] = {}
        self._latest: dict[str, int] = {}
        #: Which package each node type comes from ("flowboard" for the built-ins, "name version" for a package).
        self._packages: dict[str, str] = {}
        #: Counts changes (a connector's node types added or removed), so what is built from the catalog is rebuilt.
        self.generation = 0
        #: Built-in modules not imported yet (name -> package), and the modules each type id is declared in.
        self._unloaded: dict[str, str] = {}
        self._declared: dict[str, list[str]] = {}

    def copy(self) -> Registry:
        """A registry with the same node types, to which more can be added without changing this one (each
        Flowboard adds its connectors' node types to its own copy)."""
        other = Registry()
        other._types = dict(self._types)
        other._latest = dict(self._latest)
        other._packages = dict(self._packages)
        other._unloaded = dict(self._unloaded)
        other._declared = self._declared
        return other

    def add_lazy_module(self, name: str, package: str, declared: list[str]) -> None:
        """A module whose node types (`declared`, as far as its source tells) are registered when first needed."""
        self._unloaded[name] = package
        for type_id in declared:
            self._declared.setdefault(type_id, []).append(name)

    def _load(self, name: str) -> None:
        with _LOADING:
            package = self._unloaded.get(name)
            if package is not None:
                module = importlib.import_module(name)
                del self._unloaded[name]
                self.register_module(module, package)

    def load_all(self) -> None:
        """Import every module not imported yet (for whatever needs the whole list of node types)."""
        with _LOADING:
            for name in sorted(self._unloaded):
                self._load(name)

    def _load_for(self, type_id: str) -> None:
        with _LOADING:
            for name in self._declared.get(type_id, ()):
                self._load(name)
            if type_id not in self._latest:  # not where the scan said, or nowhere: every module, then we know
                self.load_all()

    def _complete(self, type_id: str) -> bool:
        """Every module declaring this type is imported (so its latest version is known)."""
        return type_id in self._latest and not any(name in self._unloaded for name in self._declared.get(type_id, ()))

    def unregister(self, type_id: str) -> None:
        """Forget every version of a node type (a connector's operation that was removed)."""
        self.load_all()
        for key in [key for key in self._types if key[0] == type_id]:
            del self._types[key]
        self._latest.pop(type_id, None)
        self._packages.pop(type_id, None)
        self.generation += 1

    def register(self, cls: type[NodeType], package: str = "") -> type[NodeType]:
        for attr in ("type", "title", "category"):
            if not getattr(cls, attr, None):
                raise TypeError(f"node type {cls.__name__} must set `{attr}`")
        if self._unloaded:
            self._load_for_register(cls.type)
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

    def _load_for_register(self, type_id: str) -> None:
        """A type registered by hand or by a package meets the built-ins it would clash with, as if they were loaded."""
        with _LOADING:
            for name in self._declared.get(type_id, ()):
                self._load(name)

    def package(self, type_id: str) -> str:
        """The package a node type comes from: "flowboard" (built in), a package's "name version", or ""
        (registered by hand, or a connector's operation)."""
        if self._unloaded and not self._complete(type_id):
            self._load_for(type_id)
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
        if self._unloaded and not self._complete(type_id):
            self._load_for(type_id)
        if version is None:
            version = self._latest.get(type_id)
            if version is None:
                return None
        return self._types.get((type_id, version))

    def versions(self, type_id: str) -> list[int]:
        self.load_all()
        return sorted(v for (t, v) in self._types if t == type_id)

    def __contains__(self, type_id: str) -> bool:
        if self._unloaded and type_id not in self._latest:
            self._load_for(type_id)
        return type_id in self._latest

    def __iter__(self) -> Iterator[type[NodeType]]:
        self.load_all()
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


_TYPE_LINE = re.compile(r'^    type = "([^"]+)"', re.MULTILINE)


def _declared_types(path: str) -> list[str]:
    """The node type ids a module's source declares (`type = "..."` at a class body's first indent)."""
    try:
        with open(path, encoding="utf-8") as source:
            return _TYPE_LINE.findall(source.read())
    except OSError:
        return []


def load_builtins(registry: Registry) -> None:
    """The built-in node modules, each imported when one of its types is first needed."""
    import flowboard.nodes as package

    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        spec = getattr(info.module_finder, "find_spec", lambda name: None)(info.name)
        origin = spec.origin if spec is not None else None
        registry.add_lazy_module(info.name, "flowboard", _declared_types(origin) if origin else [])


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
