"""The RSGI adapter (flowboard/rsgi.py), through which granian serves the editor, the API and NiceGUI's websocket:
one ASGI app (tests/apps/asgi_corpus.py) served by uvicorn and by granian through `ASGIOnRSGI`, asked the same
things; what a caller sees must be the same. (The webhook path on RSGI is tests/test_webhooks.py's, on both servers.)
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .browser import free_port

APP = Path(__file__).parent / "apps" / "asgi_corpus.py"
KINDS = ("uvicorn", "rsgi")


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    logs = tmp_path_factory.mktemp("rsgi")
    procs, urls = {}, {}
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    for kind in KINDS:
        port = free_port()
        with (logs / f"{kind}.log").open("w") as out:
            procs[kind] = subprocess.Popen([sys.executable, str(APP), kind, str(port)], stdout=out,
                                           stderr=subprocess.STDOUT, env=env)
        urls[kind] = f"http://127.0.0.1:{port}"
    try:
        for kind, url in urls.items():
            deadline = time.monotonic() + 30
            while True:
                assert procs[kind].poll() is None, (logs / f"{kind}.log").read_text()
                try:
                    httpx.get(url + "/seen", timeout=1)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, (logs / f"{kind}.log").read_text()
                    time.sleep(0.05)
        yield urls
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)


def both(urls: dict[str, str], method: str, path: str, **kwargs: object) -> dict[str, httpx.Response]:
    return {kind: httpx.request(method, url + path, timeout=10, **kwargs) for kind, url in urls.items()}  # type: ignore[arg-type]


CALLS = [
    ("GET", "/echo", {}),
    ("GET", "/echo?a=1&b=%20x&c=%C3%A9&d", {}),
    ("GET", "/ech%6F", {}),  # a percent-escaped path: routed decoded
    ("POST", "/echo", {"content": b'{"hello": "world"}', "headers": {"Content-Type": "application/json"}}),
    ("PUT", "/echo", {"content": b"x" * 100_000}),
    ("DELETE", "/echo", {"headers": {"X-A": "1", "X-B": "two words", "Cookie": "s=abc; t=def"}}),
    ("PATCH", "/echo", {"headers": [("X-Twice", "1"), ("X-Twice", "2")]}),
    ("GET", "/stream", {}),
    ("GET", "/stream-last", {}),
    ("GET", "/status/201", {}),
    ("GET", "/status/204", {}),
    ("GET", "/status/304", {}),
    ("GET", "/status/404", {}),
    ("GET", "/status/418", {}),
    ("GET", "/status/500", {}),
    ("GET", "/nothing-here", {}),
    ("HEAD", "/echo", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CALLS, ids=[f"{m} {p}" for m, p, _ in CALLS])
def test_http_answers_as_uvicorn_does(urls: dict[str, str], method: str, path: str, kwargs: dict) -> None:
    got = both(urls, method, path, **kwargs)
    want, have = got["uvicorn"], got["rsgi"]
    assert have.status_code == want.status_code
    if want.headers.get("content-type", "").startswith("application/json") and want.content:
        mine, theirs = have.json(), want.json()
        mine.pop("server_port"), theirs.pop("server_port")
        assert mine == theirs
    else:
        assert have.content == want.content
    for name in ("content-type", "x-custom", "x-status"):
        assert have.headers.get(name) == want.headers.get(name), name
    assert have.headers.get_list("set-cookie") == want.headers.get_list("set-cookie")


def test_header_values_that_are_not_ascii_are_named_for_the_app(urls: dict[str, str]) -> None:
    """RSGI leaves such values out; the app is told their names (uvicorn passes the bytes on)."""
    headers = [(b"X-Name", "José".encode()), (b"X-Plain", b"yes"), (b"X-Twice", b"1"), (b"X-Twice", b"2")]
    mine = httpx.get(urls["rsgi"] + "/echo", headers=headers, timeout=10).json()
    theirs = httpx.get(urls["uvicorn"] + "/echo", headers=headers, timeout=10).json()
    assert mine["unreadable"] == ["x-name"] and theirs["unreadable"] is None
    assert ["x-plain", "yes"] in mine["headers"] and ["x-twice", "2"] in mine["headers"]
    assert ["x-name", "JosÃ©"] in theirs["headers"]


@pytest.mark.parametrize("how", ["length", "chunked"])
def test_big_bodies_reach_the_app_whole(urls: dict[str, str], how: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(data), 65_536):
            yield data[at:at + 65_536]

    for kind, url in urls.items():
        body = data if how == "length" else pieces()
        r = httpx.post(url + "/upload", content=body, timeout=30)
        assert r.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, kind


def test_an_app_failing_mid_answer_never_looks_complete(urls: dict[str, str]) -> None:
    """A body cut short by a failing app must not reach the caller as a whole answer; the server goes on. (uvicorn
    cuts the connection; on RSGI an answer is held until complete, so the caller gets a 500 in plain words.)"""
    for kind, url in urls.items():
        r = httpx.get(url + "/raise-before", timeout=10)
        assert r.status_code == 500, kind
        for path in ("/raise-during", "/raise-during-big"):
            try:
                r = httpx.get(url + path, timeout=10)
            except httpx.RemoteProtocolError:
                continue
            assert r.status_code == 500 and path == "/raise-during", (kind, path, r.status_code, len(r.content))
        assert httpx.get(url + "/echo", timeout=10).status_code == 200, kind
    assert "see its log" in httpx.get(urls["rsgi"] + "/raise-during", timeout=10).text


def test_an_answer_started_and_never_finished_is_ended(urls: dict[str, str]) -> None:
    r = httpx.get(urls["rsgi"] + "/start-only", timeout=10)  # (uvicorn closes the connection instead)
    assert r.status_code == 204 and r.content == b""


def test_the_app_hears_that_the_caller_went_away(urls: dict[str, str]) -> None:
    for kind, url in urls.items():
        with httpx.stream("GET", url + "/wait-disconnect", timeout=10) as r:
            assert next(r.iter_raw())[:7] == b"wwwwwww"
        deadline = time.monotonic() + 10
        while httpx.get(url + "/seen", timeout=10).json().get("disconnect") != "http.disconnect":
            assert time.monotonic() < deadline, kind
            time.sleep(0.05)


def test_websockets_echo_close_and_refuse_as_on_uvicorn(urls: dict[str, str]) -> None:
    for kind, url in urls.items():
        ws_url = url.replace("http://", "ws://")
        started = time.monotonic()
        with connect(ws_url + "/ws", open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "echo: ping"
        # the caller's close is answered at once, though the app keeps its receive and send (granian ends the
        # connection only when they are freed: the caller waited out its 10 s close timeout, every page close)
        assert time.monotonic() - started < 5, kind
        with connect(ws_url + "/ws", open_timeout=10) as ws:
            ws.send("hello")
            assert ws.recv(timeout=10) == "echo: hello", kind
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=10) == b"echo: \x00\x01", kind
            for i in range(50):
                ws.send(f"n{i}")
            assert [ws.recv(timeout=10) for _ in range(50)] == [f"echo: n{i}" for i in range(50)], kind
        deadline = time.monotonic() + 10
        while httpx.get(url + "/seen", timeout=10).json().get("ws") != "websocket.disconnect":
            assert time.monotonic() < deadline, kind
            time.sleep(0.05)
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url + "/ws-refuse", open_timeout=10).close()
        assert refused.value.response.status_code == 403, kind
        with connect(ws_url + "/ws-close", open_timeout=10) as ws:
            assert ws.recv(timeout=10) == "bye", kind
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            if kind == "uvicorn":  # (granian's RSGI sends its close frame without the app's code)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        assert httpx.get(url + "/echo", timeout=10).status_code == 200, kind  # the server goes on


@pytest.mark.parametrize("cut", [
    b"Transfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n",  # after a whole chunk
    b"Transfer-Encoding: chunked\r\n\r\n10\r\n01234",  # in a chunk
    b"Transfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n0\r\n",  # before the last empty line
    b"Content-Length: 100\r\n\r\n0123456789",  # short of its length
    b"Content-Length: 300000\r\n\r\n" + b"x" * 100_000,
], ids=["chunk", "mid-chunk", "no-end", "length", "big-length"])
def test_a_caller_that_goes_away_mid_upload_is_heard_as_gone(urls: dict[str, str], cut: bytes) -> None:
    """The app is told `http.disconnect`, never handed the part that came as a whole body (granian's RSGI ends such
    a body as if it were whole: `webhooks.next_chunk` tells them apart); the server goes on answering."""
    for kind, url in urls.items():
        httpx.post(url + "/upload", content=b"reset", timeout=10)  # (SEEN["upload"] is only set by a cut upload)
        httpx.get(url + "/seen", timeout=10)
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cut)
            time.sleep(0.2)  # the app is reading the body: then the caller is gone
        deadline = time.monotonic() + 10
        while httpx.get(url + "/seen", timeout=10).json().get("upload") != "http.disconnect":
            assert time.monotonic() < deadline, kind
            time.sleep(0.05)
        r = httpx.post(url + "/upload", content=b"after", timeout=10)
        assert r.json() == {"size": 5, "sha256": hashlib.sha256(b"after").hexdigest()}, kind
