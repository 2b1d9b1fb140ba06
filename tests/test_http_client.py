"""The shared HTTP client (`flowboard/httpclient.py`): its short way to aiohttp sends and answers exactly what httpx's
own path does, against a real local server (tests/servers.py), and everything else still takes httpx's path."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from flowboard.httpclient import Client, _Response
from flowboard.sdk import make_http_client

from .servers import HttpServer, serve


@pytest.fixture
async def server() -> AsyncIterator[HttpServer]:
    async with HttpServer() as srv:
        yield srv


#: (method, path, headers, body): plain calls the short way takes.
CORPUS: list[tuple[str, str, Any, bytes | None]] = [
    ("GET", "/echo", None, None),
    ("GET", "/echo/a/b?x=1&y=two&x=3", None, None),
    ("GET", "/echo/caf%C3%A9?q=a%20b", None, None),
    ("GET", "/echo/café?q=a b&r=ü", None, None),  # httpx encodes these; the short way sends what httpx writes
    ("HEAD", "/echo", None, None),
    ("DELETE", "/echo/7", [("X-Trace", "1")], None),
    ("POST", "/echo", [("Content-Type", "application/json")], b'{"a": 1}'),
    ("POST", "/echo", None, None),  # no body: Content-Length 0, as httpx sends it
    ("PUT", "/echo", {"content-type": "text/plain; charset=utf-8"}, "héllo".encode()),
    ("PATCH", "/echo", [("X-A", "1"), ("x-a", "2")], b"x"),  # a header twice
    ("GET", "/echo", {"User-Agent": "flow/1", "ACCEPT": "application/json"}, None),  # over the client's defaults
    ("OPTIONS", "/echo", None, None),
    ("get", "/echo", None, None),
    ("GET", "/status/404", None, None),
    ("POST", "/status/500?text=broken", None, b"1"),
    ("GET", "/status/204", None, None),
    ("GET", "/redirect/1", None, None),  # not followed: the 302 is the answer
    ("GET", "/text", None, None),
    ("GET", "/bytes/70000", None, None),
    ("GET", "/cookies/set?session=abc", None, None),
]


def _seen(server: HttpServer) -> dict[str, Any]:
    seen = dict(server.requests[-1])
    seen["headers"] = {k: v for k, v in seen["headers"].items() if k != "host"}
    return seen


def _answer(response: httpx.Response) -> dict[str, Any]:
    headers = [(k, v) for k, v in response.headers.multi_items() if k != "date"]
    echo = response.headers.get("x-echo") == "yes" and response.content  # the request's headers, in any order
    return {"status": response.status_code, "reason": response.reason_phrase, "headers": headers,
            "content": response.json() if echo else response.content, "text": None if echo else response.text,
            "method": response.request.method,
            "url": str(response.request.url), "version": response.http_version}


@pytest.mark.parametrize(("method", "path", "headers", "body"), CORPUS)
async def test_the_short_way_sends_and_answers_as_httpx_does(http_client: Client, server: HttpServer, method: str,
                                                               path: str, headers: Any, body: bytes | None) -> None:
    url = server.url(path)
    short = await http_client.request(method, url, headers=headers, content=body, timeout=10)
    assert isinstance(short, _Response), "a plain call takes the short way"
    seen_short = _seen(server)
    own = await http_client.send(http_client.build_request(method, url, headers=headers, content=body, timeout=10))
    assert not isinstance(own, _Response)
    assert _seen(server) == seen_short
    assert _answer(short) == _answer(own)
    assert short.is_closed and short.is_stream_consumed
    assert short.elapsed.total_seconds() >= 0
    # the same call with a parsed URL gives the same
    again = await http_client.request(method, httpx.URL(url), headers=headers, content=body, timeout=10)
    assert _seen(server) == seen_short and _answer(again) == _answer(own)


async def test_raise_for_status_and_reading_again(http_client: Client, server: HttpServer) -> None:
    response = await http_client.get(server.url("/status/503"))
    assert isinstance(response, _Response)
    with pytest.raises(httpx.HTTPStatusError, match="503") as caught:
        response.raise_for_status()
    assert caught.value.request.url == httpx.URL(server.url("/status/503"))
    assert (await http_client.get(server.url("/json"))).json() == {"ok": True}
    answer = await http_client.get(server.url("/text"))
    assert await answer.aread() == b"hello" and [c async for c in answer.aiter_bytes()] == [b"hello"]


async def test_a_compressed_answer_is_unpacked() -> None:
    body = b'{"big": "' + b"x" * 5000 + b'"}'

    async def packed(request: web.Request) -> web.Response:
        assert "gzip" in request.headers["Accept-Encoding"]
        return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip",
                                                               "Content-Type": "application/json"})

    app = web.Application()
    app.router.add_get("/", packed)
    runner, port = await serve(app)
    http_client = make_http_client()
    try:
        url = f"http://127.0.0.1:{port}/"
        short = await http_client.get(url)
        own = await http_client.send(http_client.build_request("GET", url))
        assert isinstance(short, _Response)
        assert short.content == own.content == body and short.json() == own.json()
    finally:
        await http_client.aclose()
        await runner.cleanup()


async def test_no_cookies_are_kept(http_client: Client, server: HttpServer) -> None:
    await http_client.get(server.url("/cookies/set?session=abc"))
    await http_client.get(server.url("/echo"))
    assert "cookie" not in server.requests[-1]["headers"]
    with pytest.raises(TypeError, match="Cookie header"):
        http_client.cookies = {"a": "b"}


async def test_errors_are_httpx_errors_with_their_cause(http_client: Client, server: HttpServer) -> None:
    with pytest.raises(httpx.HTTPError) as refused:
        await http_client.get("http://127.0.0.1:9/")  # nothing listens on the discard port
    cause = refused.value.__cause__
    assert isinstance(cause, OSError)
    with pytest.raises(httpx.TimeoutException):
        await http_client.get(server.url("/sleep/2000"), timeout=0.2)
    with pytest.raises(httpx.UnsupportedProtocol):
        await http_client.get("ftp://127.0.0.1/file")
    with pytest.raises(httpx.UnsupportedProtocol):
        await http_client.get("/relative/path")


async def test_other_calls_take_httpx_own_path(http_client: Client, server: HttpServer) -> None:
    answers = [
        await http_client.post(server.url("/echo"), json={"a": 1}),
        await http_client.post(server.url("/echo"), data={"a": "1"}),
        await http_client.post(server.url("/echo"), files={"f": ("a.txt", b"hi")}),
        await http_client.get(server.url("/echo"), params={"q": "1"}),
        await http_client.get(server.url("/echo"), auth=("ada", "pw")),
        await http_client.get(server.url("/redirect/2"), follow_redirects=True),
    ]
    with pytest.raises(UnicodeEncodeError):  # not ASCII: httpx's own path says so, as before
        await http_client.get(server.url("/echo"), headers={"X-Name": "Zoë"})
    assert not any(isinstance(a, _Response) for a in answers)
    assert answers[0].json()["json"] == {"a": 1} and answers[1].json()["form"] == {"a": "1"}
    assert answers[2].json()["files"]["f"]["text"] == "hi" and answers[3].json()["query"] == {"q": "1"}
    assert answers[4].json()["headers"]["authorization"].startswith("Basic ")
    assert answers[5].json()["path"].startswith("/echo") and len(answers[5].history) == 2
    async with http_client.stream("GET", server.url("/bytes/10")) as streamed:
        assert len(await streamed.aread()) == 10


async def test_changed_client_headers_are_sent(http_client: Client, server: HttpServer) -> None:
    await http_client.get(server.url("/echo"))
    http_client.headers["X-Team"] = "flow"
    await http_client.get(server.url("/echo"))
    assert server.requests[-1]["headers"]["x-team"] == "flow"


async def test_a_closed_client_refuses(server: HttpServer) -> None:
    http_client = make_http_client()
    await http_client.get(server.url("/echo"))
    await http_client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await http_client.get(server.url("/echo"))


async def test_answer_headers_look_up_as_httpx_does(http_client: Client, server: HttpServer) -> None:
    url = server.url("/cookies/set?session=abc&theme=dark")  # Set-Cookie twice
    short = await http_client.get(url)
    own = await http_client.send(http_client.build_request("GET", url))
    assert isinstance(short, _Response)
    for name in ("set-cookie", "Set-Cookie", "CONTENT-TYPE", "x-echo", "location", "content-length"):
        assert short.headers.get(name) == own.headers.get(name), name
        assert (name in short.headers) == (name in own.headers), name
        assert short.headers.get_list(name) == own.headers.get_list(name), name
    assert ", " in short.headers["set-cookie"]
    with pytest.raises(KeyError):
        short.headers["location"]
    without_date = [(k, v) for k, v in short.headers.multi_items() if k != "date"]
    assert without_date == [(k, v) for k, v in own.headers.multi_items() if k != "date"]  # (a second can pass)
    short.headers["Location"] = "/elsewhere"
    assert short.headers.get("location") == "/elsewhere"
    del short.headers["location"]
    assert "location" not in short.headers
    short.headers.update({"X-Echo": "no"})
    assert short.headers["x-echo"] == "no"


def test_importing_flowboard_leaves_out_httpx_cli_and_nothing_behind() -> None:
    """flowboard/__init__.py: httpx's first import skips its command-line client (click, rich, pygments: start-up
    time), and afterwards `httpx._main` imports as usual: the import system keeps no trace of the skip."""
    import subprocess
    import sys

    script = ("import sys, flowboard, httpx\n"
              "skipped = all(m not in sys.modules for m in ('httpx._main', 'click', 'rich', 'pygments'))\n"
              "import httpx._main\n"
              "print(skipped, sys.modules['httpx._main'].__name__, "
              "sum(getattr(f, 'httpx_cli', False) for f in sys.meta_path))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "httpx._main", "0"]


def test_the_editor_imports_no_optional_socketio_or_nicegui_clients_and_nodes_still_can() -> None:
    """flowboard/__init__.py: socketio, engineio and NiceGUI's Redis storage find none of the clients they import
    when installed (requests, websocket-client, aiohttp, redis, aio-pika; ~20 MB of the server's memory), while
    Flowboard's own imports of them (ctx.http, the Redis and RabbitMQ nodes) work afterwards as usual, and socketio's
    server still runs."""
    import subprocess
    import sys

    script = ("import sys, flowboard, nicegui.ui, socketio\n"
              "names = ('requests', 'websocket', 'redis', 'aio_pika', 'aiohttp')\n"
              "print(*[n in sys.modules for n in names])\n"
              "import redis, redis.asyncio, aio_pika, requests, websocket, aiohttp\n"
              "print(*[type(sys.modules[n]).__name__ for n in names])\n"
              "print(type(socketio.AsyncServer(async_mode='asgi')).__name__)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False " * 4 + "False", "module " * 4 + "module", "AsyncServer"]
