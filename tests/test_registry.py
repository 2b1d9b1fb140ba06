"""Node types come from the built-ins and from any installed package's `flowboard.nodes` entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowboard.engine import Engine, build_plan
from flowboard.model import parse_flow
from flowboard.registry import Registry, load_builtins, load_entry_points

from .conftest import make_flow

PLUGIN = '''
from pydantic import BaseModel
from flowboard.sdk import Category, NodeType


class Config(BaseModel):
    field: str


class Shout(NodeType):
    """Uppercases one field."""

    type = "acme.shout"
    title = "Shout"
    category = Category.logic
    description = "Uppercases a field."
    Config = Config

    async def run(self, ctx, config, inputs):
        return [{**i, config.field: str(i[config.field]).upper()} for i in inputs["main"]]
'''


def install_plugin(root: Path, value: str) -> None:
    (root / "acme_nodes.py").write_text(textwrap.dedent(PLUGIN))
    info = root / "acme_nodes-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-nodes\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[flowboard.nodes]\nacme = {value}\n")


@pytest.mark.parametrize("value", ["acme_nodes", "acme_nodes:Shout"])
async def test_a_third_party_package_adds_a_node_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      value: str) -> None:
    install_plugin(tmp_path, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    load_builtins(registry)
    load_entry_points(registry)
    assert "acme.shout" in registry
    entry = next(e for e in registry.catalog() if e["type"] == "acme.shout")
    assert entry["category"] == "logic" and entry["config_schema"]["required"] == ["field"]
    plan = build_plan(parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                            {"id": "s", "type": "acme.shout", "config": {"field": "name"}}],
                                           [("t", "s")])), registry)
    result = await Engine().run(plan, [{"name": "ada"}])
    assert result.output == [{"name": "ADA"}]


def test_a_broken_plugin_is_logged_and_the_rest_still_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    install_plugin(tmp_path, "acme_missing_module")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    load_builtins(registry)
    load_entry_points(registry)
    assert "acme.shout" not in registry and "http.request" in registry
    assert "node package acme_missing_module could not be loaded" in caplog.text


def test_catalog_is_grouped_trigger_logic_integration(registry: Registry) -> None:
    categories = [e["category"] for e in registry.catalog()]
    assert categories == sorted(categories, key=["trigger", "logic", "integration"].index)


def test_built_in_node_types_are_imported_when_first_asked_for() -> None:
    """Start-up imports no node module: a type asked for imports its own module only, and the scan of the sources
    that says where each type lives agrees with what the modules register (so no type costs the import of all)."""
    import importlib
    import sys

    lazy = Registry()
    load_builtins(lazy)
    assert lazy._unloaded, "the built-in modules were imported at once"
    declared = {type_id: names for type_id, names in lazy._declared.items()}
    for name in lazy._unloaded:  # what each module really registers, module by module
        module = importlib.import_module(name)
        found = Registry()
        found.register_module(module, "flowboard")
        for cls in found:
            assert name in declared.get(cls.type, []), f"{name} declares {cls.type} in a way the scan does not read"

    one = Registry()
    load_builtins(one)
    before = set(one._unloaded)
    webhook = one.get("trigger.webhook")
    assert webhook is not None and webhook.__module__ in sys.modules
    assert set(one._unloaded) == before - {"flowboard.nodes.webhook"}  # only the module it lives in
    assert one.get("no.such.type") is None and not one._unloaded  # an unknown type: every module, then None

    every = Registry()
    load_builtins(every)
    assert [(c.type, c.version) for c in every] == [(c.type, c.version) for c in one]
    assert len(list(every)) > 30 and every.package("data.set") == "flowboard"
