"""Webhooks over real HTTP: the `flowboard serve` server in a subprocess (flows imported and activated with the CLI
and the services), on both of its servers (granian's RSGI interface, the default, and uvicorn's ASGI: each reads a
call its own way, flowboard/api/webhooks.py), and, for what needs the services in hand (test URL, deactivation), the
same routes served by uvicorn inside the test."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from flowboard.api import webhooks
from flowboard.blobs import BlobStore
from flowboard.services import Flowboard
from flowboard.store import Store
from flowboard.triggers import ActivationConflict

from .clihelp import env_for, flowboard, flowboard_here
from .jsoncorpus import BAD_JSON, DEEP_AT_LIMIT

TOKEN = f"tok-{secrets.token_hex(10)}"
PASSWORD = f"pw-{secrets.token_hex(8)}"
HMAC_SECRET = f"hm-{secrets.token_hex(10)}"
SECRETS = (TOKEN, PASSWORD, HMAC_SECRET)


def hook(path: str, **config: Any) -> dict[str, Any]:
    return {"id": "hook", "type": "trigger.webhook", "config": {"path": path, **config}}


def flow(flow_id: str, *nodes: dict[str, Any], **settings: Any) -> dict[str, Any]:
    """A flow whose nodes run in a row."""
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return {"id": flow_id, "name": flow_id, "nodes": list(nodes), "edges": edges, "settings": settings}


def mark(name: str = "seen", value: Any = True) -> dict[str, Any]:
    return {"id": "mark", "type": "data.set", "config": {"fields": [{"name": name, "value": value}]}}


def wait(seconds: float) -> dict[str, Any]:
    return {"id": "wait", "type": "logic.wait", "config": {"seconds": seconds}}


FLOWS = [
    flow("echo", hook("echo", methods=["POST", "PUT"], headers=["content-type", "x-custom", "authorization"]), mark()),
    flow("plain", hook("plain"), mark()),
    flow("all-headers", hook("all-headers", headers=["*"], auth={"type": "header", "name": "X-Api-Key",
                                                               "credential": "hook-token"}), mark()),
    flow("inactive", hook("inactive"), mark()),
    flow("token", hook("token", auth={"type": "header", "name": "X-Api-Key", "credential": "hook-token"}), mark()),
    flow("basic", hook("basic", auth={"type": "basic", "credential": "hook-basic"}), mark()),
    flow("signed", hook("signed", auth={"type": "hmac", "header": "X-Hub-Signature-256", "credential": "hook-hmac"}),
         mark()),
    flow("small", hook("small", max_body=100), mark()),
    flow("later", hook("later", respond="immediately"), wait(0.2), mark()),
    flow("answer", hook("answer"), {"id": "respond", "type": "webhook.respond", "config": {
        "status": 201, "headers": [{"name": "X-Flow", "value": "answered {{ item.body.name }}"}],
        "body": "{{ {'hello': item.body.name, 'n': item.query.n} }}"}}),
    flow("queued", hook("queued"), wait(0.4), mark(), run_mode="queued"),
    flow("parallel", hook("parallel"), wait(0.4), mark()),
    flow("skip", hook("skip"), wait(0.5), mark(), run_mode="skip"),
    flow("burst", hook("burst"), mark()),
]
CREDENTIALS = {"hook-token": ("header", {"value": TOKEN}),
               "hook-basic": ("basic", {"user": "ada", "password": PASSWORD}),
               "hook-hmac": ("hmac", {"secret": HMAC_SECRET})}


@dataclass
class Server:
    url: str
    data: Path
    log: Path

    def runs(self, flow_id: str) -> list[Any]:
        store = Store(data_dir=self.data)
        try:
            return store.list_runs(flow_id, limit=10_000)
        finally:
            store.close()

    def table_text(self) -> str:
        """Every stored run and step, as text."""
        with contextlib.closing(sqlite3.connect(self.data / "flowboard.db")) as db:
            rows = db.execute("SELECT * FROM runs").fetchall() + db.execute("SELECT * FROM steps").fetchall()
        return json.dumps(rows, default=str)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("webhooks")
    files = data / "files"
    files.mkdir()
    for f in FLOWS:
        (files / f"{f['id']}.json").write_text(json.dumps(f))
    for name in ("echo", "inactive"):  # the command line as a user would (its code, in this process)
        proc = flowboard_here(data, "import", str(files / f"{name}.json"))
        assert proc.returncode == 0, proc.stderr
    proc = flowboard_here(data, "activate", "echo")
    assert proc.returncode == 0 and "activated echo" in proc.stdout, proc.stderr
    proc = flowboard_here(data, "activate", "inactive")
    assert proc.returncode == 0, proc.stderr
    proc = flowboard_here(data, "deactivate", "inactive")
    assert proc.returncode == 0, proc.stderr

    fb = Flowboard(data_dir=data)
    for name, (kind, fields) in CREDENTIALS.items():
        fb.store.set_credential(name, kind, fields)
    for f in FLOWS:
        if f["id"] not in ("echo", "inactive"):
            fb.import_flow(json.dumps(f))
            fb.activate(f["id"])
    asyncio.run(fb.aclose())

    port = free_port()
    log = data / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(port), "--no-browser",
                                 "--data-dir", str(data)], env={**env_for(data), "FLOWBOARD_SERVER": request.param},
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the server stopped:\n{log.read_text()}"
            try:
                if httpx.get(f"{url}/webhook/echo", timeout=1).status_code == 405:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not answer:\n{log.read_text()}"
            time.sleep(0.1)
        yield Server(url, data, log)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        yield c


def error_of(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}, body
    return str(body["error"])


# -- production URL ---------------------------------------------------------------------------------------------


async def test_an_active_flow_answers_with_its_result(client: httpx.AsyncClient) -> None:
    r = await client.post("/webhook/echo", json={"name": "Ada", "n": 1})
    assert r.status_code == 200
    item = r.json()
    assert item["seen"] is True
    assert item["body"] == {"name": "Ada", "n": 1}
    assert item["method"] == "POST" and item["path"] == "echo" and item["query"] == {}
    r = await client.put("/webhook/echo", json=[1, 2])
    assert r.status_code == 200 and r.json()["body"] == [1, 2] and r.json()["method"] == "PUT"


async def test_unknown_inactive_and_wrong_method(client: httpx.AsyncClient, server: Server) -> None:
    r = await client.post("/webhook/inactive", json={})
    assert r.status_code == 404 and "active" in error_of(r)
    assert (await client.post("/webhook/nothing-here", json={})).status_code == 404
    r = await client.get("/webhook/echo")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST, PUT"
    assert "POST, PUT" in error_of(r)
    assert not server.runs("inactive")
    log = server.log.read_text()
    assert "WARNING flowboard.webhook: POST /webhook/inactive refused (404)" in log
    assert "GET /webhook/echo refused (405)" in log


async def test_bodies_query_and_headers_reach_the_item(client: httpx.AsyncClient, server: Server) -> None:
    r = await client.post("/webhook/echo?a=1&a=2&b=x%20y", data={"name": "Ada", "tags": ["p", "q"]},
                          headers={"X-Custom": "Yes", "Authorization": "Bearer not-for-the-record"})
    item = r.json()
    assert item["body"] == {"name": "Ada", "tags": ["p", "q"]}
    assert item["query"] == {"a": ["1", "2"], "b": "x y"}
    assert item["headers"]["x-custom"] == "Yes"
    assert item["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert "authorization" not in item["headers"]

    r = await client.post("/webhook/echo", data={"title": "report"},
                          files={"doc": ("notes.txt", b"hello file", "text/plain")})
    body = r.json()["body"]
    assert body["title"] == "report"
    assert body["doc"] == {"$file": hashlib.sha256(b"hello file").hexdigest(), "name": "notes.txt",
                           "mime_type": "text/plain", "size": 10}
    assert BlobStore(server.data / "blobs").get(body["doc"]) == b"hello file"  # kept, not in the item

    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    r = await client.post("/webhook/echo", files=[("scans", ("a.pdf", pdf, "application/pdf")),
                                                  ("scans", ("b.png", b"\x89PNG\r\n\x1a\n", "image/png"))])
    scans = r.json()["body"]["scans"]
    assert [(f["name"], f["mime_type"], f["size"]) for f in scans] == [("a.pdf", "application/pdf", len(pdf)),
                                                                       ("b.png", "image/png", 8)]
    r = await client.post("/webhook/echo", content=pdf, headers={"Content-Type": "application/pdf"})
    assert r.json()["body"] == {"$file": hashlib.sha256(pdf).hexdigest(), "name": "body",
                                "mime_type": "application/pdf", "size": len(pdf)}

    r = await client.post("/webhook/echo", content=b"just text", headers={"Content-Type": "text/plain"})
    assert r.json()["body"] == "just text"
    r = await client.post("/webhook/echo", content=b"")
    assert r.json()["body"] == {}


async def _post_raw(url: str, path: str, body: bytes, how: str) -> tuple[int, bytes]:
    """POST `body` as JSON over a plain socket (`how`: whole, pieces with pauses, chunked, chunked with a length);
    the answer's status and body."""
    parsed = httpx.URL(url)
    reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\nContent-Type: application/json\r\n"
        if how.startswith("chunked"):  # "chunked with a length": a Content-Length that fits its first chunk too
            declared = f"Content-Length: {min(len(body), 7_000)}\r\n" if how == "chunked with a length" else ""
            writer.write(f"{head}{declared}Transfer-Encoding: chunked\r\n\r\n".encode())
            for at in range(0, len(body), 7_000):
                piece = body[at:at + 7_000]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
                await asyncio.sleep(0.02)
            writer.write(b"0\r\n\r\n")
        else:
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
            if how == "whole":
                writer.write(body)
            else:  # the server gets the body in several messages, the first one (a byte) shorter than declared
                half = max(len(body) // 2, 1)
                for piece in (body[:1], body[1:half], body[half:]):
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.05)
        await writer.drain()
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, await reader.readexactly(length)
    finally:
        writer.close()


@pytest.mark.parametrize("how", ["whole", "pieces", "chunked", "chunked with a length"])
async def test_every_body_reaches_the_item_whole_however_it_is_sent(server: Server, how: str) -> None:
    """A body in one message, a declared one that comes in parts (the first part shorter than declared), a chunked
    one, and a chunked one that also declares a Content-Length its first chunk fills: the item holds every byte, for
    sizes from 2 bytes to ~600 KiB (or the server refuses the ambiguous call as a whole)."""
    for size in (2, 100, 4_000, 65_000, 600_000):
        text = ("0123456789" * (size // 10 + 1))[:max(size - 8, 0)]
        body = json.dumps({"t": text}).encode()
        try:
            status, answer = await _post_raw(server.url, "/webhook/echo", body, how)
        except ConnectionResetError:  # uvicorn answers the ambiguous call with 400 and closes while it is sent
            assert how == "chunked with a length", (how, size)
            continue
        if how == "chunked with a length" and status == 400:
            continue
        assert status == 200, (how, size, answer[:200])
        assert json.loads(answer)["body"] == {"t": text}, (how, size)


@pytest.mark.parametrize("cut", [
    b"Content-Length: 100\r\n\r\n{marker} and then",  # short of its length
    b"Transfer-Encoding: chunked\r\n\r\n20\r\n{marker} and then nothing..\r\n",  # after a whole chunk
    b"Transfer-Encoding: chunked\r\n\r\n40\r\n{marker} and",  # in a chunk
], ids=["length", "chunked", "mid-chunk"])
async def test_a_body_cut_short_starts_no_run(server: Server, cut: bytes) -> None:
    """A caller that goes away before its whole body came starts nothing: never a run on part of the body."""
    marker = f"cut-{secrets.token_hex(4)}"
    parsed = httpx.URL(server.url)
    _reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
    writer.write(f"POST /webhook/echo HTTP/1.1\r\nHost: {parsed.host}:{parsed.port}\r\nContent-Type: text/plain\r\n"
                 .encode() + cut.replace(b"{marker}", marker.encode()))
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.close()
    deadline = time.monotonic() + 10
    while "caller went away before sending the whole body" not in server.log.read_text():
        assert time.monotonic() < deadline, server.log.read_text()[-2000:]
        await asyncio.sleep(0.05)
    assert marker not in server.table_text()


async def test_bad_json_is_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/webhook/echo", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON at line 1" in error_of(r)


async def test_bad_json_corpus_is_refused_with_its_place(client: httpx.AsyncClient) -> None:
    for name, (raw, expected) in BAD_JSON.items():
        for content_type in ("application/json", "application/vnd.api+json"):
            r = await client.post("/webhook/echo", content=raw, headers={"Content-Type": content_type})
            assert r.status_code == 400, (name, r.text)
            assert expected in error_of(r), (name, error_of(r))
    r = await client.post("/webhook/echo", content=DEEP_AT_LIMIT, headers={"Content-Type": "application/json"})
    assert r.status_code == 200  # the limit itself is fine


async def test_items_keep_only_the_headers_the_node_lists(client: httpx.AsyncClient) -> None:
    noise = {f"X-Noise-{i}": "n" * 200 for i in range(40)}
    r = await client.post("/webhook/plain", json={}, headers={**noise, "User-Agent": "tests/1", "Cookie": "s=1"})
    assert r.status_code == 200 and r.json()["headers"] == {"content-type": "application/json", "user-agent": "tests/1"}
    r = await client.post("/webhook/all-headers", json={}, headers={**noise, "X-Api-Key": TOKEN})
    kept = r.json()["headers"]
    assert r.status_code == 200 and kept["x-noise-39"] == "n" * 200 and "x-api-key" not in kept
    r = await client.post("/webhook/echo", json={}, headers={"X-Noise-1": "n", "Authorization": "Basic eDp5"})
    assert set(r.json()["headers"]) == {"content-type"}  # listed but never kept: the authorization header


NOT_ASCII = ["José".encode(), "Zürich".encode("latin-1"), b"\xff\xfe", "日本".encode(), b"caf\xc3\xa9 au lait"]


async def test_a_kept_header_that_is_not_ascii_text_is_refused_by_name(client: httpx.AsyncClient,
                                                                        server: Server) -> None:
    """Header values are ASCII text; one that is not cannot be read the same way by both servers (granian's RSGI
    leaves it out), so a header the item keeps refuses the call with a 400 that names it, never a run without it.
    A header the item does not keep is ignored, as every other header it does not keep."""
    for value in NOT_ASCII:
        for path, name in (("/webhook/echo", "X-Custom"), ("/webhook/plain", "User-Agent"),
                           ("/webhook/all-headers", "X-Anything")):
            key = [(b"X-Api-Key", TOKEN.encode())] if path == "/webhook/all-headers" else []
            twice = [(b"X-Twice", b"1"), (b"X-Twice", b"2")]  # (a repeated name must not hide the missing one)
            r = await client.post(path, json={"v": 1}, headers=[(name.encode(), value), *key, *twice])
            assert r.status_code == 400, (path, value, r.text)
            assert f"the {name.lower()} header holds characters other than plain ASCII" in error_of(r)
        r = await client.post("/webhook/plain", json={"v": 2}, headers=[(b"X-Not-Kept", value)])
        assert r.status_code == 200 and r.json()["body"] == {"v": 2}, (value, r.text)
    r = await client.post("/webhook/echo", json={}, headers={"X-Custom": "plain ASCII, with spaces; and = signs"})
    assert r.json()["headers"]["x-custom"] == "plain ASCII, with spaces; and = signs"
    assert "refused (400): the x-custom header holds characters" in server.log.read_text()


async def test_oversized_bodies_are_413(client: httpx.AsyncClient) -> None:
    assert (await client.post("/webhook/small", json={"x": "a" * 50})).status_code == 200
    r = await client.post("/webhook/small", json={"x": "a" * 200})  # Content-Length says too much
    assert r.status_code == 413 and "at most 100" in error_of(r)

    async def chunks(pause: float) -> AsyncIterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(10):
            yield b"0123456789abcdef"
            await asyncio.sleep(pause)  # with a pause, the server receives the body in several pieces

    for pause in (0, 0.02):
        r = await client.post("/webhook/small", content=chunks(pause), headers={"Content-Type": "text/plain"})
        assert r.status_code == 413 and "bigger than 100" in error_of(r)


async def test_header_token(client: httpx.AsyncClient, server: Server) -> None:
    r = await client.post("/webhook/token", json={"a": 1}, headers={"X-Api-Key": TOKEN})
    assert r.status_code == 200 and r.json()["seen"] is True
    assert "x-api-key" not in r.json()["headers"]
    r = await client.post("/webhook/token", json={"a": 1})
    assert r.status_code == 401 and "X-Api-Key" in error_of(r)
    r = await client.post("/webhook/token", json={"a": 1}, headers={"X-Api-Key": TOKEN + "x"})
    assert r.status_code == 403
    assert len(server.runs("token")) == 1


async def test_basic_auth(client: httpx.AsyncClient) -> None:
    r = await client.post("/webhook/basic", json={}, auth=("ada", PASSWORD))
    assert r.status_code == 200 and "authorization" not in r.json()["headers"]
    r = await client.post("/webhook/basic", json={})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert (await client.post("/webhook/basic", json={}, auth=("ada", "wrong"))).status_code == 403
    assert (await client.post("/webhook/basic", json={}, auth=("eve", PASSWORD))).status_code == 403
    r = await client.post("/webhook/basic", json={}, headers={"Authorization": "Basic %%%"})
    assert r.status_code == 401


async def test_hmac_signature(client: httpx.AsyncClient) -> None:
    raw = b'{"order": 42, "total": 9.5}'
    good = hmac.new(HMAC_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    r = await client.post("/webhook/signed", content=raw, headers={**headers, "X-Hub-Signature-256": f"sha256={good}"})
    assert r.status_code == 200 and r.json()["body"] == {"order": 42, "total": 9.5}
    assert "x-hub-signature-256" not in r.json()["headers"]
    assert (await client.post("/webhook/signed", content=raw, headers={**headers, "X-Hub-Signature-256": good})
            ).status_code == 200
    tampered = raw.replace(b"42", b"43")
    r = await client.post("/webhook/signed", content=tampered, headers={**headers, "X-Hub-Signature-256": good})
    assert r.status_code == 401 and "signature" in error_of(r)
    r = await client.post("/webhook/signed", content=raw, headers=headers)
    assert r.status_code == 401


async def test_respond_immediately_then_the_run_succeeds(client: httpx.AsyncClient, server: Server) -> None:
    started = time.monotonic()
    r = await client.post("/webhook/later", json={"job": 7})
    assert r.status_code == 202
    assert time.monotonic() - started < 0.2  # answered before the flow's 0.2 s wait
    run_id = r.json()["run_id"]
    assert set(r.json()) == {"run_id"}
    store = Store(data_dir=server.data)
    try:
        queued = store.get_run(run_id)  # accepted means written
        assert queued.input[0]["body"] == {"job": 7} and queued.source == "webhook"
        deadline = time.monotonic() + 10
        while (run := store.get_run(run_id)).status.value != "succeeded":
            assert run.status.value in ("queued", "running"), run
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert run.output == [{**queued.input[0], "seen": True}]
        assert run.flow_id == "later" and run.trigger == "hook" and run.flow_version == 1
    finally:
        store.close()


async def test_respond_node_sets_status_headers_and_body(client: httpx.AsyncClient) -> None:
    r = await client.post("/webhook/answer?n=5", json={"name": "Ada"})
    assert r.status_code == 201
    assert r.headers["x-flow"] == "answered Ada"
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"hello": "Ada", "n": "5"}


async def test_queued_runs_one_after_another(client: httpx.AsyncClient, server: Server) -> None:
    for name in ("queued", "parallel"):
        began = time.monotonic()
        answers = await asyncio.gather(*(client.post(f"/webhook/{name}", json={"i": i}) for i in range(2)))
        took = time.monotonic() - began
        assert [a.status_code for a in answers] == [200, 200]
        runs = sorted(server.runs(name), key=lambda r: r.started)
        assert len(runs) == 2
        first, second = runs
        if name == "queued":
            assert second.started >= first.finished - 0.005, "the second run started before the first ended"
            assert took >= 0.8
        else:  # the control: without a queue the same calls overlap
            assert second.started < first.finished
            assert took < 0.8


async def test_skip_ignores_calls_while_a_run_is_going(client: httpx.AsyncClient, server: Server) -> None:
    first = asyncio.ensure_future(client.post("/webhook/skip", json={"i": 1}))
    await asyncio.sleep(0.2)
    second = await client.post("/webhook/skip", json={"i": 2})
    assert second.status_code == 200 and second.json()["skipped"] is True
    assert (await first).json()["body"] == {"i": 1}
    third = await client.post("/webhook/skip", json={"i": 3})
    assert third.json()["body"] == {"i": 3}
    assert sorted(r.input[0]["body"]["i"] for r in server.runs("skip")) == [1, 3]


async def test_every_answered_call_is_a_recorded_run(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60,
                                 limits=httpx.Limits(max_connections=200)) as c:
        answers = await asyncio.gather(*(c.post("/webhook/burst", json={"i": i}) for i in range(200)))
    ok = [a for a in answers if 200 <= a.status_code < 300]
    assert len(ok) == 200
    runs = server.runs("burst")
    assert len(runs) == len(ok)
    assert sorted(r.input[0]["body"]["i"] for r in runs) == list(range(200))
    assert all(r.status.value == "succeeded" for r in runs)


async def test_secrets_are_never_recorded_or_logged(client: httpx.AsyncClient, server: Server) -> None:
    await client.post("/webhook/token", json={"a": 1}, headers={"X-Api-Key": TOKEN})
    await client.post("/webhook/token", json={"a": 1}, headers={"X-Api-Key": TOKEN + "-wrong"})
    await client.post("/webhook/basic", json={}, auth=("ada", PASSWORD))
    await client.post("/webhook/basic", json={}, auth=("ada", PASSWORD + "-wrong"))
    await client.post("/webhook/echo", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    basic = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
    stored = server.table_text()
    assert "x-custom" in stored and "x-api-key" not in stored  # real run data, without the auth header
    log = server.log.read_text()
    assert "refused (403)" in log
    for secret in (*SECRETS, basic):
        assert secret not in stored
        assert secret not in log


# -- the command line -------------------------------------------------------------------------------------------


def test_activation_refuses_a_taken_path_and_expressions(tmp_path: Path) -> None:
    for f in (flow("first", hook("orders/new"), mark()), flow("second", hook("orders/new", methods=["GET", "POST"])),
              flow("third", hook("{{ item.path }}"))):
        (tmp_path / f"{f['id']}.json").write_text(json.dumps(f))
        assert flowboard(tmp_path, "import", str(tmp_path / f"{f['id']}.json")).returncode == 0
    assert flowboard(tmp_path, "activate", "first").returncode == 0
    proc = flowboard(tmp_path, "activate", "second")
    assert proc.returncode == 2
    assert "POST /webhook/orders/new is already used by the active flow 'first'" in proc.stderr
    proc = flowboard(tmp_path, "activate", "third")
    assert proc.returncode == 2 and "a webhook's settings cannot hold expressions" in proc.stderr
    assert "inactive second" in flowboard(tmp_path, "list").stdout
    assert flowboard(tmp_path, "deactivate", "first").returncode == 0
    assert flowboard(tmp_path, "activate", "second").returncode == 0


# -- in process: the test URL and deactivation --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(fb: Flowboard) -> AsyncIterator[httpx.AsyncClient]:
    """The webhook routes on a plain FastAPI app behind the FrontDoor, served by uvicorn on a free port."""
    app = FastAPI()
    webhooks.register(app, fb)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(webhooks.FrontDoor(app, fb), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="off"))
    task = asyncio.ensure_future(server.serve())
    while not server.started:
        assert not task.done(), task.result()
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def fb(tmp_path: Path) -> AsyncIterator[Flowboard]:
    app = Flowboard(data_dir=tmp_path)
    yield app
    await app.aclose()


async def test_the_test_url_answers_only_while_listening(fb: Flowboard) -> None:
    fb.import_flow(json.dumps(flow("draft", hook("draft"), wait(0.2), mark())))
    async with serving(fb) as client:
        r = await client.post("/webhook-test/draft", json={"x": 1})
        assert r.status_code == 404 and "not listening" in r.json()["error"]
        assert (await client.post("/webhook/draft", json={"x": 1})).status_code == 404  # not active
        listening = fb.listen_test("draft")
        first, second = await asyncio.gather(client.post("/webhook-test/draft", json={"x": 1}),
                                             client.post("/webhook-test/draft", json={"x": 2}))
        assert sorted([first.status_code, second.status_code]) == [200, 404]  # one call per listen
        answer = first if first.status_code == 200 else second
        result = await asyncio.wait_for(listening, 30)
        assert result.status.value == "succeeded" and result.output[0]["seen"] is True
        assert answer.json()["body"] == result.output[0]["body"]
        assert fb.store.get_run(result.run_id).source == "webhook-test"
        assert (await client.post("/webhook-test/draft", json={"x": 2})).status_code == 404
        listening = fb.listen_test("draft")
        listening.cancel()  # the editor stops listening
        await asyncio.sleep(0)
        assert (await client.post("/webhook-test/draft", json={"x": 3})).status_code == 404
        listening = fb.listen_test("draft", timeout=0.1)
        await asyncio.sleep(0.2)
        assert listening.cancelled()
        assert (await client.post("/webhook-test/draft", json={"x": 4})).status_code == 404


async def test_deactivating_stops_new_runs_not_running_ones(fb: Flowboard) -> None:
    fb.import_flow(json.dumps(flow("slow", hook("slow"), wait(0.5), mark())))
    fb.import_flow(json.dumps(flow("rival", hook("slow"), mark())))
    twins = flow("twins", hook("twin", methods=["GET", "POST"]), {**hook("twin"), "id": "hook2"})
    twins["edges"] = []
    fb.import_flow(json.dumps(twins))
    fb.activate("slow")
    with pytest.raises(ActivationConflict) as caught:
        fb.activate("rival")
    assert "already used by the active flow 'slow' (id slow)" in str(caught.value)
    with pytest.raises(ActivationConflict) as caught:
        fb.activate("twins")
    assert [p.message for p in caught.value.problems] == ["POST /webhook/twin is used by two triggers of this flow"]
    assert not fb.store.get_flow("twins").active and not fb.store.get_flow("rival").active
    async with serving(fb) as client:
        going = asyncio.ensure_future(client.post("/webhook/slow", json={"n": 1}))
        await asyncio.sleep(0.2)
        fb.deactivate("slow")
        assert (await client.post("/webhook/slow", json={"n": 2})).status_code == 404
        answer = await going
        assert answer.status_code == 200 and answer.json()["seen"] is True
        assert not fb.store.get_flow("slow").active
        fb.activate("rival")  # the path is free again
        assert (await client.post("/webhook/slow", json={"n": 3})).json()["body"] == {"n": 3}


async def test_a_header_the_server_could_not_read_is_refused_on_the_asgi_path_too(fb: Flowboard) -> None:
    """On granian, calls to `/webhook-test/` reach the webhook through the RSGI adapter, which names the headers whose
    values it could not read (`webhooks.UNREADABLE`): a kept one refuses the call as on the production URL."""
    fb.import_flow(json.dumps(flow("kept", hook("kept", headers=["x-name"]), mark())))
    fb.activate("kept")
    door = webhooks.WebhookApp(fb, test=False)

    async def call(unreadable: tuple[str, ...]) -> tuple[int, bytes]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/webhook/kept", "query_string": b"",
                 "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
                 webhooks.UNREADABLE: unreadable}
        await door.serve("kept", scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    status, body = await call(("x-name",))
    assert status == 400 and b"the x-name header holds characters other than plain ASCII" in body
    status, body = await call(("x-other",))  # not kept: ignored, as every header the item does not keep
    assert status == 200 and json.loads(body)["seen"] is True


def test_a_secret_cannot_be_written_into_the_flow_file() -> None:
    from flowboard.engine import build_plan
    from flowboard.errors import FlowInvalid
    from flowboard.model import parse_flow
    from flowboard.registry import default_registry

    data = flow("inline", hook("inline", auth={"type": "header", "name": "X-Token", "value": "s3cret-in-file"}),
                mark())
    with pytest.raises(FlowInvalid) as info:
        build_plan(parse_flow(data), default_registry())
    text = str(info.value)
    assert "auth.header.value: is not a known field" in text or "auth.value: is not a known field" in text, text
    assert "credential: is required" in text


async def test_an_accepted_call_is_recorded_off_the_event_loop(fb: Flowboard) -> None:
    """A 'respond immediately' call is recorded before it is answered and run, but the write waits in a thread:
    while another connection holds the database's write lock, the server's event loop goes on (here a ticker in the
    same loop), and once the lock goes the call is answered 202 and its run recorded and run."""
    fb.import_flow(json.dumps(flow("later", hook("later", respond="immediately"), mark())))
    fb.activate("later")
    database = fb.store.engine.url.database
    assert database
    async with serving(fb) as client:
        holder = sqlite3.connect(database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process writing for a while
        try:
            call = asyncio.ensure_future(client.post("/webhook/later", json={"n": 1}))
            gaps, last = [], time.monotonic()
            for _ in range(30):  # 0.6 s of ticks while the call waits for the lock
                await asyncio.sleep(0.02)
                now = time.monotonic()
                gaps.append(now - last)
                last = now
            assert not call.done(), "the call is answered only once its run is recorded"
        finally:
            holder.execute("COMMIT")
            holder.close()
        answer = await call
        assert answer.status_code == 202, answer.text
        assert max(gaps) < 0.3, f"the event loop stood still for {max(gaps):.2f} s while the run was recorded"
        run_id = answer.json()["run_id"]
        for _ in range(200):
            if fb.store.get_run(run_id).status.finished:
                break
            await asyncio.sleep(0.05)
        assert fb.store.get_run(run_id).status.value == "succeeded"

