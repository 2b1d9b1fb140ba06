"""Node names the editor gives (flowboard/ui/naming.py and each node type's `name_for`): never two alike, saying what
the node does once its config says it, and never a rename the user did not ask for or that breaks an expression."""

from __future__ import annotations

from typing import Any

import pytest

from flowboard.model import Flow, parse_flow
from flowboard.registry import default_registry
from flowboard.ui.naming import name_after_edit, unique

REGISTRY = default_registry()
FIND = {"table": "Employees", "action": {"operation": "find"}}

# Configs as they are while being edited: empty, half done, expressions, wrong types.
CONFIG_CORPUS: list[dict[str, Any]] = [
    {}, {"table": ""}, {"table": None}, {"table": 5}, {"table": ["a"]}, {"table": "{{ item.t }}"},
    {"action": "find"}, {"action": {"operation": 3}}, {"url": "not a url"}, {"url": "https://"}, {"url": 7},
    {"url": "{{ item.url }}"}, {"to": ""}, {"to": []}, {"to": [None]}, {"to": {"a": 1}}, {"to": "a@"},
    {"to": "{{ item.manager }}"}, {"service": None}, {"service": "irc"}, {"flow": ""}, {"flow": "{{ x }}"},
    {"query": "SELECT 1"}, {"method": None, "url": "http://h"}, {"table": "x" * 500},
]


def flow(*nodes: dict[str, Any]) -> Flow:
    return parse_flow({"id": "f", "name": "F", "nodes": list(nodes), "edges": []})


def table_node(node_id: str, name: str = "", config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "data.table", "name": name, "config": config or FIND}


def test_unique_counts_on_from_the_number_a_name_has() -> None:
    assert unique("Send email", set()) == "Send email"
    assert unique("Send email", {"Send email"}) == "Send email 2"
    assert unique("Send email", {"Send email", "Send email 2"}) == "Send email 3"
    assert unique("Send email 2", {"Send email", "Send email 2"}) == "Send email 3"


@pytest.mark.parametrize("cls", list(REGISTRY), ids=lambda c: c.type)
def test_every_node_type_names_any_config_without_failing(cls: Any) -> None:
    for config in CONFIG_CORPUS:
        name = cls.name_for(config)
        assert name is None or (isinstance(name, str) and name.strip() and "{{" not in name), (config, name)
        assert name is None or len(name) <= 60, name


@pytest.mark.parametrize(("node_type", "config", "name"), [
    ("data.table", FIND, "Find rows in Employees"),
    ("data.table", {"table": "Leave", "action": {"operation": "update"}}, "Change rows in Leave"),
    ("data.table", {"table": "Leave", "action": {"operation": "delete"}}, "Remove rows from Leave"),
    ("http.request", {"method": "GET", "url": "https://api.example.com/v1/people"}, "Get from api.example.com"),
    ("http.request", {"method": "POST", "url": "https://hr.example.com/leave"}, "Send to hr.example.com"),
    ("email.send", {"to": "Grace Hopper <grace@example.com>"}, "Email Grace Hopper"),
    ("email.send", {"to": ["ada@example.com", "bob@example.com"]}, "Email ada@example.com"),
    ("chat.post", {"service": "teams"}, "Post to Microsoft Teams"),
    ("logic.call_flow", {"flow": "Invoice rules"}, "Run Invoice rules"),
])
def test_names_say_what_the_config_does(node_type: str, config: dict[str, Any], name: str) -> None:
    cls = REGISTRY.get(node_type)
    assert cls is not None and cls.name_for(config) == name


def test_a_node_the_editor_named_takes_its_configs_name_and_never_a_taken_one() -> None:
    f = flow(table_node("a", "Data table"), table_node("b", "Find rows in Employees"))
    assert name_after_edit(f, REGISTRY, "a", FIND) == "Find rows in Employees 2"
    f = flow(table_node("a", ""))  # unnamed in the file: the title, so the editor's
    assert name_after_edit(f, REGISTRY, "a", FIND) == "Find rows in Employees"
    f = flow(table_node("a", "Data table 3"))
    assert name_after_edit(f, REGISTRY, "a", {**FIND, "table": ""}) is None  # the config does not say yet
    # Named after an earlier config: follows the new one.
    f = flow(table_node("a", "Find rows in Employees"))
    assert name_after_edit(f, REGISTRY, "a", {"table": "Leave", "action": {"operation": "update"}}) == \
        "Change rows in Leave"
    assert name_after_edit(f, REGISTRY, "a", FIND) is None  # unchanged


def test_a_name_the_user_gave_or_an_expression_uses_is_kept() -> None:
    assert name_after_edit(flow(table_node("a", "Look up leave")), REGISTRY, "a", FIND) is None
    reader = {"id": "r", "type": "data.set", "config": {"fields": [
        {"name": "x", "value": "{{ nodes['Data table'].items[0].days }}"}]}}
    assert name_after_edit(flow(table_node("a", "Data table"), reader), REGISTRY, "a", FIND) is None
    reader["config"]["fields"][0]["value"] = '{{ nodes["Data table"].items[0].days }}'
    assert name_after_edit(flow(table_node("a", "Data table"), reader), REGISTRY, "a", FIND) is None
