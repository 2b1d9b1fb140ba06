"""Local HTTP servers for tests: a real aiohttp server on 127.0.0.1 and a free port. No mocks.

Async tests::

    async with HttpServer() as server:
        server.url("/echo/a?x=1")          # "http://127.0.0.1:<port>/echo/a?x=1"
        server.requests[-1]["headers"]     # what the server received, lowercase header names

Sync tests, or tests that start a subprocess (the server runs in its own thread and event loop)::

    with ThreadedHttpServer() as server:
        ...

Routes (any method, unless noted):

- `/status/{code}`      answers with that status and `{"status": code}`; `?text=...` answers that text instead
- `/redirect/{n}`       302 → `/redirect/{n-1}` … → `/echo`; `/redirect-to?url=...&status=307` one redirect to `url`
- `/sleep/{ms}`         waits `ms` milliseconds, then echoes
- `/text`               `text/plain` "hello" (or `?text=...`); `/html` a small HTML page
- `/json`               `?body=<json>` answered as `application/json` (default `{"ok": true}`)
- `/bytes/{n}`          `n` bytes of `application/octet-stream`
- `/cookies/set`        echoes, and sets a cookie for every query parameter (`?session=abc`)
- anything else         echo: `{"method", "path", "query", "query_list", "headers", "body", "json", "form", "files"}`;
                        `form` holds urlencoded or multipart fields, `files` the multipart files
                        (`{"filename", "content_type", "text"}`); `body` is the raw text (None for multipart)

Every request is recorded in `server.requests` (the echo document, also for non-echo routes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Self

from aiohttp import web

__all__ = ["HttpServer", "PagedApi", "ThreadedHttpServer"]


async def serve(app: web.Application, *, host: str = "127.0.0.1", ssl_context: Any = None) -> tuple[web.AppRunner, int]:
    """Start `app` on a free port of `host`: its runner (`await runner.cleanup()` stops it) and the port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, host, 0, ssl_context=ssl_context).start()
    return runner, runner.addresses[0][1]


class HttpServer:
    """An aiohttp server on 127.0.0.1 with a free port, started and stopped on the running event loop."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    async def start(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/status/{code:\\d+}", self._status)
        app.router.add_route("*", "/redirect/{n:\\d+}", self._redirect)
        app.router.add_route("*", "/redirect-to", self._redirect_to)
        app.router.add_route("*", "/sleep/{ms:\\d+}", self._sleep)
        app.router.add_route("*", "/text", self._text)
        app.router.add_route("*", "/html", self._html)
        app.router.add_route("*", "/json", self._json)
        app.router.add_route("*", "/bytes/{n:\\d+}", self._bytes)
        app.router.add_route("*", "/cookies/set", self._set_cookies)
        app.router.add_route("*", "/{tail:.*}", self._echo)
        self._runner, self.port = await serve(app, host=self.host)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- routes -----------------------------------------------------------------------------------------------------

    async def _record(self, request: web.Request) -> dict[str, Any]:
        content_type = request.content_type
        body: str | None = None
        form: dict[str, Any] = {}
        files: dict[str, Any] = {}
        if content_type.startswith("multipart/"):
            post = await request.post()
            for name, value in post.items():
                if isinstance(value, web.FileField):
                    files[name] = {"filename": value.filename, "content_type": value.content_type,
                                   "text": value.file.read().decode("utf-8", "replace")}
                else:
                    form[name] = value
        else:
            raw = await request.read()
            body = raw.decode("utf-8", "replace")
            if content_type == "application/x-www-form-urlencoded":
                form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        parsed: Any = None
        if body and "json" in content_type:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        doc = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "query_list": [[k, v] for k, v in request.query.items()],
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body,
            "json": parsed,
            "form": form,
            "files": files,
        }
        self.requests.append(doc)
        return doc

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        doc = await self._record(request)
        if request.method == "HEAD":
            return web.Response(status=200, headers={"X-Echo": "yes"})
        return web.json_response(doc, headers={"X-Echo": "yes"})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        code = int(request.match_info["code"])
        if "text" in request.query:
            return web.Response(status=code, text=request.query["text"])
        if code in (204, 304) or request.method == "HEAD":
            return web.Response(status=code)
        return web.json_response({"status": code}, status=code)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        n = int(request.match_info["n"])
        target = f"/redirect/{n - 1}" if n > 1 else "/echo/redirected"
        return web.Response(status=302, headers={"Location": target})

    async def _redirect_to(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        status = int(request.query.get("status", "302"))
        return web.Response(status=status, headers={"Location": request.query.get("url", "/echo")})

    async def _sleep(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(int(request.match_info["ms"]) / 1000)
        return await self._echo(request)

    async def _text(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text=request.query.get("text", "hello"), content_type="text/plain")

    async def _html(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text="<!doctype html><p>hello</p>", content_type="text/html")

    async def _json(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        return web.Response(text=request.query.get("body", '{"ok": true}'), content_type="application/json")

    async def _set_cookies(self, request: web.Request) -> web.StreamResponse:
        response = await self._echo(request)
        for name, value in request.query.items():
            response.set_cookie(name, value, path="/")
        return response

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        await self._record(request)
        n = int(request.match_info["n"])
        return web.Response(body=bytes(i % 256 for i in range(n)), content_type="application/octet-stream")


class ThreadedHttpServer:
    """The same server on its own event loop in a background thread, for sync tests and subprocess tests."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.server = HttpServer(host)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.server.requests

    def url(self, path: str = "/") -> str:
        return self.server.url(path)

    def start(self, timeout: float = 10) -> Self:
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name=f"http-test-server-{id(self):x}", daemon=True)
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError("the test HTTP server did not start")
        if failure:
            raise failure[0]
        return self

    def stop(self, timeout: float = 10) -> None:
        if self._loop is not None and self._thread is not None:
            if not self._loop.is_closed():
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._loop = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a list in pages (HTTP request pagination, issue 10) -------------------------------------------------------------

RECORDS = [{"id": i, "name": f"deal {i}"} for i in range(1, 24)]
SIZE = 5
DEADLINE = 60.0  # seconds: generous, for a loaded 2-core machine


class PagedApi:
    """Pages of RECORDS: `/pages?page=N` ({"data": [...]}); `/slow` answers only when the test ends. `hold[N]` is
    awaited before page N is served (a condition the test sets up); `fail[N]` answers page N with 500."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.hold: dict[int, Callable[[], Awaitable[bool]]] = {}
        self.fail: set[int] = set()
        self.held: dict[int, bool] = {}
        self.slow_calls = 0
        self.released = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def start(self) -> PagedApi:
        app = web.Application()
        app.router.add_get("/pages", self.pages)
        app.router.add_get("/slow", self.slow)
        self.runner, port = await serve(app)
        self.base = f"http://127.0.0.1:{port}"
        return self

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.released.set()
        if self.runner is not None:
            await self.runner.cleanup()

    async def pages(self, request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        self.calls.append(page)
        condition = self.hold.get(page)
        if condition is not None:
            self.held[page] = await condition()  # what the test waited for, seen (True) or not within the deadline
        if page in self.fail:
            return web.json_response({"error": "the list is broken here"}, status=500)
        return web.json_response({"data": RECORDS[(page - 1) * SIZE: page * SIZE]})

    async def slow(self, request: web.Request) -> web.Response:
        """An answer that comes when the test ends (a flow for a page that is still running when cancelled)."""
        self.slow_calls += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.released.wait(), DEADLINE)
        return web.json_response({})
