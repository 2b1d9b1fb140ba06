"""The connectors' REST API over real HTTP against `flowboard serve` (the `server` fixture of test_api.py), with the
shop API of tests/apps/shop_api.py as the imported document."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from .apps.shop_api import make_app
from .test_api import Server, server  # noqa: F401  (the module's server fixture)


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:  # noqa: F811
    with server.client() as client:
        yield client


def test_import_check_list_export_and_remove(api: httpx.Client) -> None:
    v1 = json.dumps(make_app(1).openapi())
    made = api.post("/connectors", params={"server": "http://127.0.0.1:9"}, content=v1,
                    headers={"Content-Type": "application/json"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "shop_api" and made.json()["stored"] and not made.json()["existing"]
    listed = api.get("/connectors").json()["connectors"]
    [shop] = [c for c in listed if c["name"] == "shop_api"]
    assert shop["server"] == "http://127.0.0.1:9"
    assert {"type": "api.shop_api.delete_item", "method": "DELETE", "path": "/items/{item_id}"}.items() <= \
        next(o for o in shop["operations"] if o["key"] == "delete_item").items()
    assert any(n["type"] == "api.shop_api.get_item" and n["group"] == "Shop API" for n in api.get("/nodes").json()[
        "nodes"])  # the node catalog follows

    flow = api.post("/flows/import", json={"name": "api cleanup", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "del", "type": "api.shop_api.delete_item", "config": {"item_id": 1}}],
        "edges": [{"source": "start", "target": "del"}]})
    assert flow.status_code == 201, flow.text
    exported = api.get(f"/flows/{flow.json()['id']}/export").json()
    assert exported["connectors"]["shop_api"]["server"] == "http://127.0.0.1:9"

    check = api.post("/connectors", params={"check": "true", "name": "shop_api"},
                     content=json.dumps(make_app(2).openapi()))
    assert check.status_code == 200, check.text
    body = check.json()
    assert not body["stored"] and body["existing"]
    assert body["changes"] == {"added": ["get_stock", "rename_item"], "removed": ["delete_item"],
                               "changed": ["create_item"]}
    assert body["removed_in_use"] == {"api cleanup": ["delete_item"]}
    assert any(n["type"] == "api.shop_api.delete_item" for n in api.get("/nodes").json()["nodes"])  # nothing stored

    refused = api.delete("/connectors/shop_api")
    assert refused.status_code == 409 and refused.json()["flows"] == ["api cleanup"]
    assert api.delete(f"/flows/{flow.json()['id']}").status_code == 204
    assert api.delete("/connectors/shop_api").status_code == 204
    assert api.delete("/connectors/shop_api").status_code == 404


def test_a_broken_document_is_answered_with_located_problems(api: httpx.Client) -> None:
    broken = api.post("/connectors", content=b"openapi: 3.1.0\ninfo: {title: Broken}\npaths: {}\n",
                      headers={"Content-Type": "application/yaml"})
    assert broken.status_code == 422
    assert {"loc": "info", "message": "the field `version` is missing here"} in broken.json()["problems"]
    assert all(c["name"] != "broken" for c in api.get("/connectors").json()["connectors"])
