# ruff: noqa: F811
"""A form edit and a canvas edit made at nearly the same time both stay: Chromium pastes into a node's form, types
the last words at 10 ms per key and, within 100 ms of the last key, moves a node and connects it on the canvas, many
times over, over a slow connection (what the browser sends arrives 0.4 s later); the saved flow holds every typed
text, every move and every connection, and so does the canvas.

Before the fix, a form edit reached the canvas 0.4 s later as the whole graph, which replaced what the canvas held:
a move or a connection still on its way to the server crossed it, vanished from the canvas and then from the flow,
and the form's edit was overwritten by the canvas's older copy of the node (this test failed every time).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowboard.model import Flow
from flowboard.store import Store
from tests.browser import browser, center, watched_tab  # noqa: F401
from tests.serve import Server, data_dir, server  # noqa: F401
from tests.test_editor_browser import field_input, node

pytestmark = pytest.mark.browser
KEY_DELAY = 10  # ms between keys
ROUNDS = 12
LATENCY = 400  # ms from browser to server: a slow connection


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Any]:
    with watched_tab(browser, 1800, 1000, timeout=15_000) as page:
        yield page


def race_flow() -> dict[str, Any]:
    """A manual trigger and ROUNDS unconnected Stop nodes in a column, each with a message to type."""
    nodes = [{"id": "manual", "type": "trigger.manual", "position": {"x": 0, "y": 560}, "config": {}}]
    nodes += [{"id": f"stop_{i}", "type": "logic.stop", "name": f"Stop {i}",
               "position": {"x": 400, "y": 100 * i}, "config": {"message": "old"}}
              for i in range(ROUNDS)]
    return {"id": "race", "name": "Race", "nodes": nodes, "edges": []}


# What the browser sends reaches the server LATENCY ms later, in order (as over a slow network).
DELAY_SENDING = """latency => {
  const emit = window.socket.emit.bind(window.socket)
  let last = 0
  window.socket.emit = (...args) => {
    const at = Math.max(performance.now() + latency, last)
    last = at
    setTimeout(() => emit(...args), at - performance.now())
  }
}"""


def slowly(page: Any, start: tuple[float, float], end: tuple[float, float], seconds: float) -> None:
    """Move the pressed mouse from `start` to `end` as a hand does: in small steps over `seconds` (the pace of the
    gesture, not a wait for something)."""
    steps = 10
    began = time.monotonic()
    for k in range(1, steps + 1):
        page.mouse.move(start[0] + (end[0] - start[0]) * k / steps, start[1] + (end[1] - start[1]) * k / steps)
        ahead = began + seconds * k / steps - time.monotonic()
        if ahead > 0:
            page.wait_for_timeout(ahead * 1000)


def edges_on_canvas(page: Any) -> int:
    return int(page.evaluate("document.querySelectorAll('.vue-flow__edge').length"))


@pytest.mark.timeout(300)
def test_a_form_edit_and_a_canvas_edit_at_once_both_stay(tab: Any, server: Server, data_dir: Path) -> None:
    page = tab
    store = Store(data_dir=data_dir)
    store.save_flow(Flow.model_validate(race_flow()), None)
    page.goto(server.url + "/flow/race")
    page.wait_for_function("window.__flowboardCanvasReady === true")
    # The server is 100 ms away (as a shared server is), so messages spend a while on their way and cross there.
    page.evaluate(DELAY_SENDING, LATENCY)

    typed: dict[str, str] = {}
    # Nearest to the trigger first: a connection drawn never lies over a node still to be clicked.
    for i in sorted(range(ROUNDS), key=lambda k: abs(100 * k - 560)):
        node_id = f"stop_{i}"
        node(page, node_id).click()
        page.locator(".fb-inspector").get_by_text(re.compile(rf"· {node_id}$")).wait_for()  # this node's form
        message = field_input(page, "Message")
        message.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(f"Round {i}: not enough ")  # a paste, then the last words typed key by key
        page.keyboard.type("days left", delay=KEY_DELAY)
        typed[node_id] = f"Round {i}: not enough days left"
        # At once (well within 100 ms): drag the node to the right. The form's edit goes to the canvas 0.4 s after
        # the last key (editor.SYNC_DELAY): the drags last from 0.15 to 0.7 s, so that edit arrives while the hand is
        # still moving, or crosses the drop on its way, or comes just after it ...
        x, y = center(page, f'.vue-flow__node[data-id="{node_id}"] .fb-node-name')
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 3, y + 3)
        slowly(page, (x + 3, y + 3), (x + 200, y), 0.15 + 0.05 * i)
        page.mouse.up()
        # ... and connect the trigger to it.
        start = center(page, '.vue-flow__node[data-id="manual"] .fb-handle-out')
        page.mouse.move(*start)
        page.mouse.down()
        slowly(page, start, center(page, f'.vue-flow__node[data-id="{node_id}"] .fb-handle-in'), 0.15)
        page.mouse.up()
    page.wait_for_timeout(1000)  # the last form edit reaches the canvas (editor.SYNC_DELAY), whatever it does
    assert edges_on_canvas(page) == ROUNDS, "every connection made is still drawn"

    page.locator(".fb-flow-wrap").click(position={"x": 30, "y": 700})  # the canvas has the keyboard
    page.keyboard.press("Control+s")
    page.get_by_text("Saved as version 2.").wait_for()
    saved = store.get_flow("race").flow
    store.close()
    by_id = {n.id: n for n in saved.nodes}
    assert {n: by_id[n].config.get("message") for n in typed} == typed, "every typed text is saved"
    before = {n["id"]: n["position"] for n in race_flow()["nodes"]}
    not_moved = [n for n in typed if by_id[n].position.x - before[n]["x"] < 60]
    assert not not_moved, f"these nodes were dragged to the right but are saved where they were: {not_moved}"
    assert sorted(e.target for e in saved.edges if e.source == "manual") == sorted(typed), "every connection saved"
    assert edges_on_canvas(page) == ROUNDS
