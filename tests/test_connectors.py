"""OpenAPI connectors against a real FastAPI app (tests/apps/shop_api.py) on a local port: import its own
/openapi.json, call its operations from a flow, re-import a changed version, carry the connector in a flow export."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.connectors import ConnectorInUse
from flowboard.errors import FlowInvalid
from flowboard.model import parse_flow
from flowboard.services import Flowboard

from .apps.shop_api import ACCESS_TOKEN, API_KEY, CLIENT_ID, CLIENT_SECRET, TOKEN, Served, make_app
from .clihelp import flowboard
from .conftest import make_flow


@pytest.fixture(scope="module")
def shop() -> Iterator[Served]:
    with Served(make_app(1)) as served:
        yield served


@pytest.fixture
async def fb(tmp_path: Path) -> AsyncIterator[Flowboard]:
    app = Flowboard(data_dir=tmp_path)
    app.store.set_credential("shop reader", "secret", {"value": API_KEY})
    app.store.set_credential("shop writer", "bearer", {"token": TOKEN})
    yield app
    await app.aclose()


def shop_flow(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """A manual trigger, then the nodes in a row."""
    ids = ["start"] + [n["id"] for n in nodes]
    return make_flow([{"id": "start", "type": "trigger.manual"}, *nodes], list(itertools.pairwise(ids)),
                     name="shop flow")


async def test_import_and_call_every_kind_of_operation(fb: Flowboard, shop: Served) -> None:
    preview = fb.connectors.fetch(shop.url + "/openapi.json")
    assert not preview.existing
    fb.connectors.save(preview)
    types = {t: fb.registry.get(t) for t in ("api.shop_api.list_items", "api.shop_api.get_item",
                                            "api.shop_api.create_item", "api.shop_api.delete_item")}
    assert all(types.values()), types
    assert types["api.shop_api.get_item"].group == "Shop API"  # type: ignore[union-attr]
    schema = types["api.shop_api.create_item"].Config.model_json_schema()  # type: ignore[union-attr]
    props = schema["properties"]
    assert props["category"]["default"] == "books"  # the enum's default, through a $ref with a sibling default
    assert props["quantity"]["default"] == 1
    assert "oneOf" in json.dumps(props["delivery"])  # the discriminated oneOf
    assert props["credential"]["credential_types"] == ["bearer", "secret", "oauth2_client", "oauth2_code"]

    seen_before = len(shop.seen)
    flow = parse_flow(shop_flow([
        {"id": "create", "type": "api.shop_api.create_item",
         "config": {"name": "Flowboard book", "price": {"amount": 12.5}, "tags": ["new"],
                    "delivery": {"kind": "shipping", "address": "Main street 1"}, "credential": "shop writer"}},
        {"id": "get", "type": "api.shop_api.get_item",
         "config": {"item_id": "{{ item.id }}", "x_request_id": "req-{{ item.id }}", "credential": "shop reader"}},
        {"id": "list", "type": "api.shop_api.list_items",
         "config": {"category": "tools", "credential": "shop reader"}},
    ]))
    stored, _ = fb.import_flow(flow.model_dump(mode="json"))
    result = await fb.run_flow(stored.id)
    assert result.status.value == "succeeded", result
    created = result.steps["create"].outputs["main"]
    assert created == [{"id": 6, "name": "Flowboard book", "category": "books", "quantity": 1, "tags": ["new"],
                        "price": {"amount": 12.5, "currency": "EUR"},
                        "delivery": {"kind": "shipping", "address": "Main street 1", "express": False}}]
    assert result.steps["get"].outputs["main"][0]["name"] == "Flowboard book"
    listed = result.steps["list"].outputs["main"]
    assert [i["id"] for i in listed] == [1, 2, 3, 4, 5]  # every page (2 per page), each record an item

    calls = shop.seen[seen_before:]
    post = next(c for c in calls if c["method"] == "POST")
    assert post["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(post["body"])["delivery"] == {"kind": "shipping", "address": "Main street 1", "express": False}
    get = next(c for c in calls if c["path"] == "/items/6")
    assert get["headers"]["x-api-key"] == API_KEY and get["headers"]["x-request-id"] == "req-6"
    pages = [c["query"] for c in calls if c["path"] == "/items" and c["method"] == "GET"]
    assert pages == [f"per_page=2&category=tools&page={n}" for n in (1, 2, 3, 4)]  # until a page is empty
    assert fb.data_dir is not None  # the secrets are nowhere in the data folder (run data, flows, connectors)
    stored_bytes = b"".join(p.read_bytes() for p in fb.data_dir.rglob("*") if p.is_file())
    assert API_KEY.encode() not in stored_bytes and TOKEN.encode() not in stored_bytes


async def test_a_paginated_operation_hands_each_page_to_a_flow(fb: Flowboard, shop: Served) -> None:
    """The connector's list goes through the HTTP node's pagination: with a flow for each page, each page of the
    shop's items is a recorded child run, in order, and the node passes on one item per page."""
    fb.connectors.save(fb.connectors.fetch(shop.url + "/openapi.json"))
    fb.import_flow({"id": "count", "name": "Count a page", "nodes": [
        {"id": "called", "type": "trigger.called"},
        {"id": "mark", "type": "data.set", "config": {"fields": [{"name": "counted", "value": True}]}}],
        "edges": [{"source": "called", "target": "mark"}]})
    stored, _ = fb.import_flow(shop_flow([{"id": "list", "type": "api.shop_api.list_items", "config": {
        "category": "tools", "credential": "shop reader", "each_page": "Count a page"}}]))
    assert fb.plan(stored.id).nodes["list"].unsafe  # its pages' flows must not run twice after a stop
    result = await fb.run_flow(stored.id)
    assert result.status.value == "succeeded", result.error
    assert result.output == [{"page": 1, "records": 2}, {"page": 2, "records": 2}, {"page": 3, "records": 1}]
    runs = sorted(fb.store.list_runs("count", source="call"), key=lambda r: r.created)
    assert [[i["id"] for i in r.input] for r in runs] == [[1, 2], [3, 4], [5]]
    assert all(r.status.value == "succeeded" for r in runs)


async def test_a_wrong_credential_is_said_plainly(fb: Flowboard, shop: Served) -> None:
    fb.connectors.save(fb.connectors.fetch(shop.url + "/openapi.json"))
    fb.store.set_credential("basic one", "basic", {"user": "ada", "password": "pw-123456"})
    stored, _ = fb.import_flow(shop_flow([{"id": "get", "type": "api.shop_api.get_item",
                                           "config": {"item_id": 1, "credential": "basic one"}}]))
    result = await fb.run_flow(stored.id)
    assert result.status.value == "failed"
    message = result.steps["get"].error["message"]
    assert "credential 'basic one' does not fit Shop API" in message and "X-API-Key" in message


async def test_reimport_lists_changes_and_the_flows_they_touch(fb: Flowboard, shop: Served) -> None:
    fb.connectors.save(fb.connectors.fetch(shop.url + "/openapi.json"))
    keeps, _ = fb.import_flow(shop_flow([{"id": "get", "type": "api.shop_api.get_item",
                                          "config": {"item_id": 2, "credential": "shop reader"}}]))
    loses, _ = fb.import_flow({**shop_flow([{"id": "del", "type": "api.shop_api.delete_item",
                                             "config": {"item_id": 2, "credential": "shop writer"}}]),
                               "name": "cleanup"})
    fb.import_flow({**shop_flow([{"id": "make", "type": "api.shop_api.create_item", "name": "Make one",
                                  "config": {"name": "x", "price": {"amount": 1}, "credential": "shop writer"}}]),
                    "name": "restock"})
    with Served(make_app(2)) as v2:
        preview = fb.connectors.fetch(v2.url + "/openapi.json")
        assert preview.existing and preview.changes is not None
        assert preview.changes.as_dict() == {"added": ["get_stock", "rename_item"], "removed": ["delete_item"],
                                             "changed": ["create_item"]}
        assert preview.removed_in_use == {"cleanup": ["delete_item"]}
        assert list(preview.broken) == ["restock"]  # its node lacks the sku the changed operation needs
        assert preview.broken["restock"] == ['node "Make one", field sku: is required']
        assert "flow 'restock' no longer fits the changed operations" in "\n".join(preview.lines())
        assert preview.server_change == (shop.url, v2.url)
        fb.connectors.save(preview)
        assert fb.registry.get("api.shop_api.delete_item") is None
        assert fb.registry.get("api.shop_api.rename_item") is not None
        assert fb.check(fb.store.get_flow(keeps.id).flow) == []  # unchanged operations keep working
        problems = fb.check(fb.store.get_flow(loses.id).flow)
        assert "unknown node type 'api.shop_api.delete_item'" in str(problems[0])
        result = await fb.run_flow(keeps.id)
        assert result.status.value == "succeeded", result
        assert result.steps["get"].outputs["main"][0]["id"] == 2
        assert v2.seen[-1]["path"] == "/items/2"  # the connector's new server address
    with pytest.raises(ConnectorInUse, match="cleanup, restock, shop flow"):
        fb.connectors.remove("shop_api")


async def test_export_carries_the_connector_and_import_installs_it(fb: Flowboard, shop: Served, tmp_path: Path) -> None:
    fb.connectors.save(fb.connectors.fetch(shop.url + "/openapi.json"))
    stored, _ = fb.import_flow(shop_flow([{"id": "get", "type": "api.shop_api.get_item",
                                           "config": {"item_id": 3, "credential": "shop reader"}}]))
    exported = fb.export_flow(stored.id)
    data = json.loads(exported)
    assert data["connectors"]["shop_api"]["document"]["info"]["title"] == "Shop API"
    assert API_KEY not in exported
    assert "connectors" not in fb.store.get_flow(stored.id).flow.model_dump(exclude_defaults=True)

    other = Flowboard(data_dir=tmp_path / "other")
    try:
        other.store.set_credential("shop reader", "secret", {"value": API_KEY})
        imported, _ = other.import_flow(exported)
        assert [c.name for c in other.connectors.all()] == ["shop_api"]
        result = await other.run_flow(imported.id)
        assert result.status.value == "succeeded" and result.steps["get"].outputs["main"][0]["id"] == 3

        broken = json.loads(exported)
        broken["connectors"] = {"other_api": {"document": {"openapi": "3.1.0", "info": {"title": "x"}}}}
        broken["nodes"][1]["type"] = "api.other_api.get_item"
        with pytest.raises(FlowInvalid) as caught:
            other.import_flow(json.dumps(broken))
        assert "connectors.other_api.document.info: the field `version` is missing here" in str(caught.value)
        assert [c.name for c in other.connectors.all()] == ["shop_api"]  # a failed import changes nothing

        third = Flowboard(data_dir=tmp_path / "third")  # `flowboard run FILE` of the export: nothing installed
        try:
            third.store.set_credential("shop reader", "secret", {"value": API_KEY})
            ran = await third.run_file(third.parse(exported))
            assert ran.status.value == "succeeded" and ran.steps["get"].outputs["main"][0]["id"] == 3
            assert third.connectors.all() == [] and third.registry.get("api.shop_api.get_item") is None
        finally:
            await third.aclose()

        other_version = json.loads(exported)  # the file's version of a connector this Flowboard has differs
        other_version["connectors"]["shop_api"]["document"]["info"]["version"] = "9.0"
        other_version["nodes"][1]["config"]["no_such_field"] = 1
        with pytest.raises(FlowInvalid) as caught:
            other.import_flow(json.dumps(other_version))
        assert "nodes[1].config.no_such_field" in str(caught.value)
        assert "the file carries another version of the connector 'shop_api'" in str(caught.value)
    finally:
        await other.aclose()


async def test_remove_a_connector_nobody_uses(fb: Flowboard, shop: Served) -> None:
    fb.connectors.save(fb.connectors.fetch(shop.url + "/openapi.json"))
    fb.connectors.remove("shop_api")
    assert fb.registry.get("api.shop_api.get_item") is None and fb.connectors.all() == []
    again = Flowboard(data_dir=fb.data_dir)  # and it stays removed
    try:
        assert again.registry.get("api.shop_api.get_item") is None
    finally:
        await again.aclose()


def test_cli_import_list_reimport_and_remove(tmp_path: Path, shop: Served) -> None:
    data = tmp_path / "cli"
    url = shop.url + "/openapi.json"
    done = flowboard(data, "connector", "import", url)
    assert done.returncode == 0, done.stderr
    assert "imported connector shop_api (Shop API 1.0): 5 operations" in done.stdout
    assert "GET /items/{item_id}: Get an item" in done.stdout
    listed = flowboard(data, "connector", "list")
    assert "api.shop_api.create_item" in listed.stdout and "POST   /items" in listed.stdout
    nodes = flowboard(data, "nodes")
    assert "api.shop_api.list_items" not in nodes.stdout  # `flowboard nodes` lists the installed types only

    with Served(make_app(2)) as v2:
        document = json.dumps(v2.app.openapi())
    changed = tmp_path / "shop-v2.json"
    changed.write_text(document)
    check = flowboard(data, "connector", "import", str(changed), "--name", "shop_api", "--server", shop.url,
                      "--check")
    assert check.returncode == 0, check.stderr
    assert "would re-import connector shop_api (Shop API 2.0)" in check.stdout
    assert "added: Stock of an item (get_stock), Rename an item (rename_item)" in check.stdout
    assert "removed: Delete an item (delete_item)" in check.stdout
    assert "api.shop_api.delete_item" in flowboard(data, "connector", "list").stdout  # --check changed nothing

    broken = tmp_path / "broken.yaml"
    broken.write_text("openapi: 3.1.0\ninfo:\n  title: Broken\npaths: {}\n")
    failed = flowboard(data, "connector", "import", str(broken))
    assert failed.returncode == 2
    assert "info: the field `version` is missing here" in failed.stderr
    assert flowboard(data, "connector", "remove", "shop_api").returncode == 0
    assert "no connectors yet" in flowboard(data, "connector", "list").stdout


async def test_oauth2_client_credentials_fetch_a_token_once(fb: Flowboard, shop: Served) -> None:
    fb.connectors.save(fb.connectors.fetch(shop.url + "/openapi.json"))
    node_type = fb.registry.get("api.shop_api.sales_report")
    assert node_type is not None
    assert "oauth2_client" in node_type.Config.model_json_schema()["properties"]["credential"]["credential_types"] \
        or "bearer" in node_type.Config.model_json_schema()["properties"]["credential"]["credential_types"]
    fb.store.set_credential("reports", "oauth2_client", {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                                         "token_url": shop.url + "/token"})
    stored, _ = fb.import_flow(shop_flow([{"id": "sales", "type": "api.shop_api.sales_report",
                                           "config": {"credential": "reports"}}]))
    tokens = shop.app.state.tokens
    for _ in range(2):
        result = await fb.run_flow(stored.id)
        assert result.status.value == "succeeded", result
        assert result.steps["sales"].outputs["main"][0]["items"] >= 5
    assert shop.app.state.tokens == tokens + 1  # the token is kept until it expires
    calls = [c for c in shop.seen if c["path"] == "/reports/sales"]
    assert calls[-1]["headers"]["authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert fb.data_dir is not None
    stored_bytes = b"".join(p.read_bytes() for p in fb.data_dir.rglob("*") if p.is_file())
    assert CLIENT_SECRET.encode() not in stored_bytes and ACCESS_TOKEN.encode() not in stored_bytes
