"""What the editor fills in or runs by itself for a node just added (NodeType.suggest, NodeType.changes_world): only
from what the flow already says, never a guess that sends or writes anything, and never a crash on half-done configs."""

from __future__ import annotations

from typing import Any

import pytest

from flowboard.registry import default_registry

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
