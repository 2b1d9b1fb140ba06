"""HTTP request pagination against a local API that pages its 23 records five at a time in each common style: page
numbers, offset and limit, a cursor, a next link in the body, and the Link header. Every record arrives once, in
order, as its own item; a broken pagination setting is explained."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from flowboard.engine import Engine, RunStatus, build_plan
from flowboard.model import parse_flow
from flowboard.registry import default_registry

from .conftest import make_flow
from .servers import serve

RECORDS = [{"id": i, "name": f"deal {i}"} for i in range(1, 24)]
SIZE = 5


class Api:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> Api:
        app = web.Application()
        app.router.add_get("/pages", self.pages)
        app.router.add_get("/offset", self.offset)
        app.router.add_get("/cursor", self.cursor)
        app.router.add_get("/next", self.next)
        app.router.add_get("/link", self.link)
        app.router.add_get("/loop", self.loop)
        self.runner, port = await serve(app)
        self.base = f"http://127.0.0.1:{port}"
        return self

    def _seen(self, request: web.Request) -> None:
        self.calls.append(str(request.rel_url))

    async def pages(self, request: web.Request) -> web.Response:
        self._seen(request)
        page = int(request.query.get("page", "1"))
        return web.json_response({"data": RECORDS[(page - 1) * SIZE: page * SIZE], "page": page})

    async def offset(self, request: web.Request) -> web.Response:
        self._seen(request)
        start, limit = int(request.query["offset"]), int(request.query["limit"])
        return web.json_response(RECORDS[start: start + limit])

    async def cursor(self, request: web.Request) -> web.Response:
        self._seen(request)
        start = int(request.query.get("cursor", "0"))
        more = start + SIZE < len(RECORDS)
        return web.json_response({"results": {"items": RECORDS[start: start + SIZE]},
                                  "meta": {"next_cursor": str(start + SIZE) if more else None}})

    async def next(self, request: web.Request) -> web.Response:
        self._seen(request)
        start = int(request.query.get("from", "0"))
        following = f"/next?from={start + SIZE}" if start + SIZE < len(RECORDS) else None
        return web.json_response({"deals": RECORDS[start: start + SIZE], "links": {"next": following}})

    async def link(self, request: web.Request) -> web.Response:
        self._seen(request)
        start = int(request.query.get("from", "0"))
        headers = {}
        if start + SIZE < len(RECORDS):
            headers["Link"] = (f'<{self.base}/link?from={start + SIZE}>; rel="next", '
                               f'<{self.base}/link?from=20>; rel="last"')
        return web.json_response(RECORDS[start: start + SIZE], headers=headers)

    async def loop(self, request: web.Request) -> web.Response:
        self._seen(request)
        return web.json_response({"deals": RECORDS[:SIZE], "next": "/loop"})  # a broken API: always itself


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    server = await Api().start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    eng = Engine()
    yield eng
    await eng.aclose()


async def fetch(engine: Engine, url: str, pagination: dict[str, Any]) -> Any:
    flow = make_flow([{"id": "t", "type": "trigger.manual"},
                      {"id": "http", "type": "http.request", "config": {"url": url, "pagination": pagination}}],
                     [("t", "http")])
    return await engine.run(build_plan(parse_flow(flow), default_registry()), [{}])


STYLES = [
    ("/pages", {"type": "page", "records": "data"}, ["/pages?page=1", "/pages?page=6"]),
    ("/offset", {"type": "offset", "limit": 5}, ["/offset?offset=0&limit=5", "/offset?offset=25&limit=5"]),
    ("/cursor", {"type": "cursor", "records": "results.items", "cursor_field": "meta.next_cursor"},
     ["/cursor", "/cursor?cursor=20"]),
    ("/next", {"type": "next_link", "records": "deals", "next_field": "links.next"}, ["/next", "/next?from=20"]),
    ("/link", {"type": "next_link"}, ["/link", "/link?from=20"]),
]


@pytest.mark.parametrize(("path", "pagination", "first_last"), STYLES, ids=[s[1]["type"] + s[0] for s in STYLES])
async def test_every_record_of_every_page_becomes_an_item(engine: Engine, api: Api, path: str,
                                                         pagination: dict[str, Any], first_last: list[str]) -> None:
    result = await fetch(engine, api.base + path, pagination)
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == RECORDS
    assert [api.calls[0], api.calls[-1]] == first_last


async def test_max_pages_stops_early(engine: Engine, api: Api) -> None:
    result = await fetch(engine, api.base + "/pages", {"type": "page", "records": "data", "max_pages": 2})
    assert [r["id"] for r in result.output] == list(range(1, 11)) and len(api.calls) == 2


@pytest.mark.parametrize(("path", "pagination", "first_last"), STYLES, ids=[s[1]["type"] + s[0] for s in STYLES])
async def test_max_records_stops_every_style_early(engine: Engine, api: Api, path: str, pagination: dict[str, Any],
                                                   first_last: list[str]) -> None:
    result = await fetch(engine, api.base + path, {**pagination, "max_records": 7})
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == RECORDS[:7] and len(api.calls) == 2  # pages of 5: the third is never asked for


async def test_a_link_back_to_a_page_already_read_stops(engine: Engine, api: Api) -> None:
    result = await fetch(engine, api.base + "/loop", {"type": "next_link", "records": "deals", "next_field": "next"})
    assert result.status is RunStatus.succeeded and len(api.calls) == 1


async def test_records_in_the_wrong_place_are_explained(engine: Engine, api: Api) -> None:
    result = await fetch(engine, api.base + "/pages", {"type": "page", "records": "items"})
    assert result.status is RunStatus.failed
    assert "page 1 of" in result.error["message"] and "has no list of records at 'items'" in result.error["message"]
