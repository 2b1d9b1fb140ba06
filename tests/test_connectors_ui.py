"""The connectors page, driven in-process by NiceGUI's simulated `user` against a real Flowboard and the real shop
API (tests/apps/shop_api.py): import by web address, re-import with the change list, removal refused while used,
a broken pasted document's located problems."""

from __future__ import annotations

from pathlib import Path

from nicegui.testing import User

from flowboard.model import parse_flow
from flowboard.services import Flowboard

from .apps.shop_api import Served, make_app
from .pagekit import page_fixtures

pytest_plugins = ["nicegui.testing.user_plugin"]


_keep_modules, fb, app = page_fixtures()


async def test_import_reimport_and_remove_on_the_page(user: User, app: Flowboard) -> None:
    await user.open("/connectors")
    await user.should_see(marker="no-connectors")
    with Served(make_app(1)) as v1, Served(make_app(2)) as v2:
        user.find(marker="import-api").click()
        await user.should_see(marker="connector-url")
        user.find(marker="connector-url").type(v1.url + "/openapi.json")
        user.find(marker="connector-check").click()
        await user.should_see("GET /items/{item_id}: Get an item", retries=100)  # the document is fetched
        user.find(marker="connector-save").click()
        await user.should_see(marker="connector:shop_api")
        assert app.registry.get("api.shop_api.delete_item") is not None

        app.import_flow({"name": "cleanup", "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "del", "type": "api.shop_api.delete_item", "config": {"item_id": 1}}],
            "edges": [{"source": "start", "target": "del"}]})
        user.find(marker="reimport:shop_api").click()
        await user.should_see("Re-import Shop API")
        user.find(marker="connector-url").clear().type(v2.url + "/openapi.json")
        user.find(marker="connector-check").click()
        await user.should_see("added: Stock of an item (get_stock), Rename an item (rename_item)", retries=100)
        await user.should_see("removed: Delete an item (delete_item)")
        await user.should_see("flow 'cleanup' uses delete_item, which the API no longer has: change that flow")
        user.find(marker="connector-save").click()
        await user.should_see("Shop API 2.0")
    assert app.registry.get("api.shop_api.delete_item") is None
    assert app.registry.get("api.shop_api.get_stock") is not None

    await user.should_see(marker="orphan:cleanup")  # the card keeps saying which flow lost an operation
    user.find(marker="remove:shop_api").click()
    await user.should_see(marker="remove-refused")
    await user.should_see("cleanup")
    assert [c.name for c in app.connectors.all()] == ["shop_api"]


async def test_a_broken_pasted_document_lists_its_problems(user: User, app: Flowboard) -> None:
    await user.open("/connectors")
    user.find(marker="import-api").click()
    await user.should_see(marker="connector-text")
    user.find(marker="connector-text").type('{"openapi": "3.1.0", "info": {"title": "x"}, "paths": {"/a/{id}": '
                                            '{"get": {"responses": {"200": {"description": "ok"}}}}}}')
    user.find(marker="connector-check").click()
    await user.should_see("info: the field `version` is missing here")
    await user.should_see(marker="connector-problem")
    assert app.connectors.all() == []


async def test_the_generated_form_is_an_ordinary_node_form(fb: Flowboard) -> None:
    """A connector's node type reads like any other to the planner: bad config is located at its field."""
    with Served(make_app(1)) as v1:
        fb.connectors.save(fb.connectors.fetch(v1.url + "/openapi.json"))
    flow = parse_flow({"name": "bad", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "make", "type": "api.shop_api.create_item",
         "config": {"price": {"amount": "lots"}, "category": "food", "colour": "red"}}],
        "edges": [{"source": "start", "target": "make"}]})
    problems = {p.loc: p.message for p in fb.check(flow)}
    assert set(problems) == {"nodes[1].config.name", "nodes[1].config.price.amount", "nodes[1].config.category",
                             "nodes[1].config.colour"}, problems
    assert "books" in problems["nodes[1].config.category"]


async def test_a_yaml_file_is_read_when_chosen(user: User, app: Flowboard, tmp_path: Path) -> None:
    import json

    import yaml
    from nicegui import ui

    document = yaml.safe_dump(json.loads(json.dumps(make_app(1).openapi())))
    await user.open("/connectors")
    user.find(marker="import-api").click()
    await user.should_see(marker="connector-upload")
    user.find(marker="connector-server").type("http://127.0.0.1:9")
    upload = next(iter(user.find(marker="connector-upload").elements))
    assert isinstance(upload, ui.upload)
    await upload.handle_uploads([ui.upload.SmallFileUpload("shop.yaml", "application/yaml", document.encode())])
    await user.should_see("POST /items: Create an item", retries=50)
    user.find(marker="connector-save").click()
    await user.should_see(marker="connector:shop_api")
    [record] = app.connectors.all()
    assert record.source == "shop.yaml" and record.server == "http://127.0.0.1:9"
