# ruff: noqa: F811
"""The Code node's code box in real Chromium: Python colours, and completion offers `items` and `item`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flowboard.model import Flow
from flowboard.store import Store
from tests.browser import browser  # noqa: F401
from tests.serve import Server, data_dir, server, tab  # noqa: F401
from tests.test_editor_browser import node

pytestmark = pytest.mark.browser


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
