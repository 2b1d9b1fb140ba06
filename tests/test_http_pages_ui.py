"""HTTP pages as they come, on screen (issue 10): the form offers a stored flow for each page, and while a paginating
HTTP node runs, the editor's canvas badge counts the records read so far, the run panel says so, and the node's data
tab shows its items so far; the run page does the same for a stored flow's run. A local API holds page 3 back until
the test has looked, then lets the run finish. Driven in-process by NiceGUI's simulated `user` against a real
Flowboard (SQLite in a temp folder)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nicegui import ElementFilter
from nicegui.testing import User

from flowboard.model import Flow, parse_flow
from flowboard.services import Flowboard
from flowboard.ui.canvas import FlowCanvas

from .pagekit import page_fixtures
from .servers import DEADLINE, RECORDS, PagedApi

pytest_plugins = ["nicegui.testing.user_plugin"]
_keep_modules, fb, app = page_fixtures()


@pytest.fixture
async def api() -> AsyncIterator[PagedApi]:
    async with PagedApi() as server:
        yield server


async def until(check: Any, deadline: float = DEADLINE) -> None:
    end = asyncio.get_running_loop().time() + deadline
    while not check():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError(f"still not true after {deadline} s: {check}")
        await asyncio.sleep(0.02)


RETRIES = int(DEADLINE / 0.05)  # should_see tries 3 times in 0.3 s by default: too short on a loaded machine


async def see(user: User, *args: Any, **kwargs: Any) -> None:
    """`user.should_see`, waiting up to the deadline (the views redraw a running node at most once a second)."""
    await user.should_see(*args, retries=RETRIES, **kwargs)


def lister(api: PagedApi) -> Flow:
    return parse_flow({"id": "deals", "name": "Deals", "nodes": [
        {"id": "manual", "type": "trigger.manual"},
        {"id": "list", "name": "List deals", "type": "http.request", "version": 2, "position": {"x": 240, "y": 0},
         "config": {"url": api.base + "/pages", "pagination": {"type": "page", "records": "data"}}}],
        "edges": [{"source": "manual", "target": "list"}]})


def badge(user: User, node_id: str) -> dict[str, Any]:
    with user:
        canvas = next(iter(ElementFilter(kind=FlowCanvas, marker="canvas")))
    return canvas.props["status"].get(node_id) or {}


def held_until_released(api: PagedApi, page: int) -> asyncio.Event:
    release = asyncio.Event()

    async def wait() -> bool:
        await asyncio.wait_for(release.wait(), DEADLINE)
        return True

    api.hold[page] = wait
    return release


async def test_the_editor_counts_records_as_pages_come_and_shows_the_items_so_far(user: User, app: Flowboard,
                                                                                  api: PagedApi) -> None:
    app.save_flow(lister(api), None)
    release = held_until_released(api, 3)
    await user.open("/flow/deals")
    user.find(marker="run").click()
    await until(lambda: badge(user, "list") == {"state": "running", "count": 10,
                                                "message": "2 pages read, 10 records so far"})
    await see(user, "10 items so far")  # the run panel's row of the node
    user.find(marker="canvas").trigger("select", {"ids": ["list"]})
    user.find(marker="tab:data").click()
    with user.scope(marker="panel:data"):
        await see(user, "2 pages read, 10 records so far")
        await see(user, marker="table:so-far:main")
        rows = next(iter(user.find(marker="table:so-far:main").elements)).rows
        assert [r["c1"] for r in rows] == [r["name"] for r in RECORDS[:10]]
    release.set()
    await until(lambda: badge(user, "list").get("state") == "succeeded")
    assert badge(user, "list")["count"] == 23
    with user.scope(marker="panel:data"):
        await see(user, marker="table:output:main")
        await user.should_not_see(retries=RETRIES, marker="table:so-far:main")


async def test_the_run_page_shows_a_running_nodes_items_so_far(user: User, app: Flowboard, api: PagedApi) -> None:
    app.save_flow(lister(api), None)
    release = held_until_released(api, 3)
    task = app.start_run("deals")
    await until(lambda: 3 in api.calls)  # pages 1 and 2 read, page 3 held
    run_id = app.store.list_runs(flow_id="deals")[0].id
    await user.open(f"/run/{run_id}")
    user.find(marker="canvas").trigger("select", {"ids": ["list"]})
    await see(user, "2 pages read, 10 records so far")
    rows = next(iter(user.find(marker="table:so-far:main").elements)).rows
    assert len(rows) == 10
    release.set()
    result = await asyncio.wait_for(task, DEADLINE)
    assert result.output == RECORDS
    await until(lambda: badge(user, "list").get("state") == "succeeded")
    await see(user, marker="table:output:main")


async def test_the_form_offers_a_flow_for_each_page_among_the_stored_flows(user: User, app: Flowboard,
                                                                           api: PagedApi) -> None:
    app.import_flow({"id": "body", "name": "Save one page", "nodes": [{"id": "called", "type": "trigger.called"}],
                     "edges": []})
    app.save_flow(lister(api), None)
    await user.open("/flow/deals")
    user.find(marker="canvas").trigger("select", {"ids": ["list"]})
    await see(user, "Hand each page on as it arrives: run this flow for each page")
    with user:
        pickers = list(ElementFilter(marker="input:pagination.each_page"))
    assert len(pickers) == 1 and "Save one page" in pickers[0].options  # type: ignore[attr-defined]
    assert pickers[0].value is None  # never chosen by itself: each page's flow is asked for, not assumed


async def test_the_run_page_shows_the_count_of_a_node_running_in_another_process(user: User, app: Flowboard,
                                                                                  api: PagedApi) -> None:
    """A run a worker runs: this server hears its node events (the count, no items) and says where the items are."""
    from flowboard.engine import Event

    app.save_flow(lister(api), None)
    app.store.create_run("elsewhere", "deals", 1, "manual", [{}], "manual", status="running", owner="a worker")
    await user.open("/run/elsewhere")
    user.find(marker="canvas").trigger("select", {"ids": ["list"]})
    await see(user, "This node did not run in this run, or has not yet.")
    app.bus.publish(Event("node.started", "elsewhere", "deals", "list", "running"))
    await see(user, "This node is running in another Flowboard process; its items show here when it ends.")
    app.bus.publish(Event("node.progress", "elsewhere", "deals", "list", "running", 1500))
    await see(user, "This node is running in another Flowboard process (1,500 items so far); its items show "
                          "here when it ends.")
    await until(lambda: badge(user, "list") == {"state": "running", "count": 1500, "message": None})


async def test_the_run_page_says_a_node_here_is_running_before_it_says_its_progress(user: User, app: Flowboard,
                                                                                    api: PagedApi) -> None:
    from flowboard.engine import Event

    app.save_flow(lister(api), None)
    release = held_until_released(api, 1)  # the node runs, and has read nothing yet
    then = held_until_released(api, 3)  # then it has read two pages
    task = app.start_run("deals")
    await until(lambda: 1 in api.calls)
    run_id = app.store.list_runs(flow_id="deals")[0].id
    await user.open(f"/run/{run_id}")
    user.find(marker="canvas").trigger("select", {"ids": ["list"]})
    app.bus.publish(Event("node.started", run_id, "deals", "list", "running"))  # (as heard by a page open before)
    await see(user, "This node is running; its items show here when it ends.")
    release.set()
    await see(user, "2 pages read, 10 records so far")  # then its progress and its items so far
    await see(user, marker="table:so-far:main")
    then.set()
    await asyncio.wait_for(task, DEADLINE)
