"""The Code node's code box in real Chromium: Python colours, and completion offers `items` and `item`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.model import Flow
from flowboard.store import Store
from tests.browser import browser, require_chromium, watched_tab  # noqa: F401
from tests.serve import Server
from tests.test_editor_browser import node

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("code-node-data")


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Server]:
    require_chromium()
    srv = Server(data_dir)
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Any]:  # noqa: F811
    with watched_tab(browser, 1800, 1000, timeout=30_000) as page:
        yield page


def test_the_code_box_completes_items_and_item(tab: Any, server: Server, data_dir: Path) -> None:
    page = tab
    store = Store(data_dir=data_dir)
    store.save_flow(Flow.model_validate({"id": "code", "name": "Code", "nodes": [
        {"id": "t", "type": "trigger.manual"},
        {"id": "code", "type": "code", "position": {"x": 300, "y": 0}, "config": {"code": "x = 1\n"}}],
        "edges": [{"source": "t", "target": "code"}]}), None)
    store.close()
    page.goto(server.url + "/flow/code")
    page.wait_for_function("window.__flowboardCanvasReady === true")
    node(page, "code").click()
    box = page.locator(".fb-inspector .fb-code[data-loc='code']")
    box.locator(".cm-content[data-language='python']").wait_for()
    box.locator(".cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.type("ite", delay=30)
    menu = page.locator(".cm-tooltip-autocomplete")
    menu.wait_for()
    labels = menu.locator(".cm-completionLabel").all_inner_texts()
    assert "items" in labels and "item" in labels, labels
    page.keyboard.press("Escape")
