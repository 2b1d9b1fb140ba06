"""The Code node in the pages: what the code printed is shown with the step's data, on the run page and after a
failure too (NiceGUI's simulated `user` against a real Flowboard); and the code box's completion words."""

from __future__ import annotations

import pytest
from nicegui.testing import User

from flowboard.model import parse_flow
from flowboard.services import Flowboard
from flowboard.ui.forms.widgets.code import item_keys
from tests.pagekit import page_fixtures
from tests.test_ui_pages import one, select

pytest_plugins = ["nicegui.testing.user_plugin"]
_keep_modules, fb, app = page_fixtures()


def code_flow(code: str) -> dict[str, object]:
    return {"id": "code", "name": "Code", "nodes": [
        {"id": "manual", "type": "trigger.manual", "config": {"items": [{"name": "Ada"}, {"name": "Bob"}]}},
        {"id": "code", "type": "code", "position": {"x": 240, "y": 0}, "config": {"code": code}}],
        "edges": [{"source": "manual", "target": "code"}]}


@pytest.mark.parametrize(("code", "printed", "error"), [
    ("for item in items:\n    print('hello', item['name'])\nreturn items", ["hello Ada", "hello Bob"], None),
    ("print('<b>before</b> the failure')\nreturn [{'x': 1 / 0}]", ["<b>before</b> the failure"],
     "line 2: ZeroDivisionError: division by zero"),
])
async def test_the_run_page_shows_what_the_code_printed(user: User, app: Flowboard, code: str,
                                                        printed: list[str], error: str | None) -> None:
    app.save_flow(parse_flow(code_flow(code)), None)
    result = await app.run_flow("code")
    assert app.store.get_steps(result.run_id)["code"].logs == printed
    await user.open(f"/run/{result.run_id}")
    await user.should_see(marker="run-status")
    select(user, "code")
    await user.should_see(marker="data:logs")
    shown = one(user, "data:logs").content
    assert "\n".join(printed).replace("<", "&lt;").replace(">", "&gt;") in shown  # as text, never as HTML
    if error:
        await user.should_see(error)


def test_completion_offers_the_keys_of_the_last_runs_items() -> None:
    names = ["item.email", "item['first name']", 'item["q"]', "item.address.city", "nodes['Look up'].items[0].x",
             "item.email"]
    assert [o["label"] for o in item_keys(names)] == ['item["email"]', 'item["first name"]', 'item["q"]',
                                                      'item["address"]']
