"""What the editor fills in or runs by itself for a node just added (NodeType.suggest, NodeType.changes_world): only
from what the flow already says, never a guess that sends or writes anything, and never a crash on half-done configs."""

from __future__ import annotations

from typing import Any

import pytest

from flowboard.registry import default_registry
from flowboard.ui.editor import fill_empty

from .test_naming import CONFIG_CORPUS

REGISTRY = default_registry()


def email() -> Any:
    cls = REGISTRY.get("email.send", 1)
    assert cls is not None
    return cls


@pytest.mark.parametrize(("fields", "to"), [
    ({".employee": "ada", ".email": "ada@example.com"}, "{{ item.email }}"),
    ({".name": "Ada", ".contact.mail": " ada@example.co.uk "}, "{{ item.contact.mail }}"),
    ({"['e-mail']": "bob@example.org", ".boss": "carol@example.org"}, "{{ item['e-mail'] }}"),
    ({".employee": "ada", ".days": 3}, None),
    ({".note": "write to ada@example.com today"}, None),  # an address inside a sentence is no address field
    ({".email": "not an address"}, None),
    ({".email": None, ".count": 7, ".tags": ["a@b.c"]}, None),
    ({}, None),
])
def test_an_email_nodes_to_reads_the_first_address_field(fields: dict[str, Any], to: str | None) -> None:
    assert email().suggest({}, fields, []).get("to") == to


def test_a_to_or_sender_already_filled_in_is_left_alone() -> None:
    config = {"to": "hr@example.com", "sender": "me@example.com", "credential": "Mail"}
    assert email().suggest(config, {".email": "ada@example.com"}, [{"sender": "x@example.com"}]) == {}


def test_the_sender_comes_from_another_email_node_on_the_same_mail_server() -> None:
    others = [{"credential": "Other", "sender": "it@example.com"}, {"credential": "Mail", "sender": "hr@example.com"}]
    assert email().suggest({"credential": "Mail"}, {}, others) == {"sender": "hr@example.com"}
    assert email().suggest({"credential": "Third"}, {}, others) == {}
    assert email().suggest({"credential": "Mail"}, {}, [{"credential": "Mail", "sender": ""}]) == {}


@pytest.mark.parametrize("config", CONFIG_CORPUS)
def test_suggest_and_changes_world_never_fail_on_configs_being_edited(config: dict[str, Any]) -> None:
    for entry in REGISTRY.catalog():
        cls = REGISTRY.get(entry["type"], entry["version"])
        assert cls is not None
        assert isinstance(cls.suggest(config, {".email": "a@b.co"}, [config]), dict)
        assert isinstance(cls.changes_world(config), bool)


@pytest.mark.parametrize(("action", "changes"), [
    ({"operation": "find"}, False), (None, False), ({}, False),
    ({"operation": "insert"}, True), ({"operation": "update"}, True), ({"operation": "upsert"}, True),
    ({"operation": "delete"}, True), ({"operation": "change"}, True), ("find", True),
])
def test_only_finding_rows_in_a_data_table_changes_nothing(action: Any, changes: bool) -> None:
    cls = REGISTRY.get("data.table", 1)
    assert cls is not None
    config = {"table": "Employees"} if action is None else {"table": "Employees", "action": action}
    assert cls.changes_world(config) is changes
    assert REGISTRY.get("email.send", 1).changes_world({}) is True  # type: ignore[union-attr]
    assert REGISTRY.get("logic.if", 1).changes_world({}) is False  # type: ignore[union-attr]


TABLES = {"Employees": ["employee", "days_left", "email"], "Rules": ["rule", "limit"]}


@pytest.mark.parametrize(("config", "fields", "tables", "expected"), [
    # finding rows by the key column, read from the items' field of the same name
    ({"table": "Employees"}, {".employee": "ada", ".days": 3}, TABLES,
     {"action": {"operation": "find", "conditions": [
         {"column": "employee", "op": "is", "value": "{{ item.employee }}"}]}}),
    ({"table": "Employees", "action": {"operation": "find", "conditions": [], "limit": 50}},
     {".days": 3, ".email": "ada@example.com"}, TABLES,
     {"action": {"operation": "find", "conditions": [{"column": "email", "op": "is", "value": "{{ item.email }}"}]}}),
    # the only table is the one
    ({}, {".employee": "ada"}, {"Employees": TABLES["Employees"]},
     {"table": "Employees", "action": {"operation": "find", "conditions": [
         {"column": "employee", "op": "is", "value": "{{ item.employee }}"}]}}),
    ({}, {".employee": "ada"}, TABLES, {}),  # two tables: which one is the person's choice
    ({"table": "Employees"}, {".name": "ada", ".days": 3}, TABLES, {}),  # no field named as a column
    ({"table": "Employees"}, {".employee": "ada"}, {}, {}),  # tables unknown
    ({"table": "Missing"}, {".employee": "ada"}, TABLES, {}),
    # conditions already set, or not finding rows: left alone
    ({"table": "Employees", "action": {"operation": "find", "conditions": [{"column": "email", "value": "x"}]}},
     {".employee": "ada"}, TABLES, {}),
    ({"table": "Employees", "action": {"operation": "delete"}}, {".employee": "ada"}, TABLES, {}),
    ({"table": "Employees", "action": "find"}, {".employee": "ada"}, TABLES,
     {"action": {"operation": "find", "conditions": [
         {"column": "employee", "op": "is", "value": "{{ item.employee }}"}]}}),
])
def test_a_data_table_node_finds_the_rows_of_the_items_by_their_key(
        config: dict[str, Any], fields: dict[str, Any], tables: dict[str, list[str]], expected: dict[str, Any]) -> None:
    cls = REGISTRY.get("data.table", 1)
    assert cls is not None
    suggested = cls.suggest(config, fields, [], tables)
    assert suggested == expected
    if "action" in suggested:  # what is filled in is a valid config
        cls.Config.model_validate({**config, **suggested})


@pytest.mark.parametrize(("config", "suggested", "filled"), [
    ({}, {"to": "{{ item.email }}"}, {"to": "{{ item.email }}"}),
    ({"to": "me@example.com"}, {"to": "{{ item.email }}"}, {"to": "me@example.com"}),
    ({"to": ""}, {"to": "x"}, {"to": "x"}),
    ({"action": {"operation": "find", "conditions": [], "limit": 7}},
     {"action": {"operation": "find", "conditions": [{"column": "employee"}]}},
     {"action": {"operation": "find", "conditions": [{"column": "employee"}], "limit": 7}}),
    ({"action": {"operation": "find", "conditions": [{"column": "email"}]}},
     {"action": {"operation": "find", "conditions": [{"column": "employee"}]}},
     {"action": {"operation": "find", "conditions": [{"column": "email"}]}}),
    ({"action": "find"}, {"action": {"operation": "find"}}, {"action": "find"}),  # not an object: kept
])
def test_only_what_is_empty_is_filled_in(config: dict[str, Any], suggested: dict[str, Any],
                                         filled: dict[str, Any]) -> None:
    assert fill_empty(config, suggested) == filled
