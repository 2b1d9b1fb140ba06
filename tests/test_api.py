"""The REST API `/api/v1` over real HTTP: `flowboard serve` runs as a subprocess on its own data folder, API keys are
made with the real CLI, flows call local HTTP servers. Plus the store's side of API keys and retries, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowboard.engine import RunStatus, Step, StepStatus
from flowboard.model import dump_flow, parse_flow
from flowboard.store import NotFound, SqlRecorder, Store, hash_api_key

from . import serve
from .clihelp import flowboard
from .jsoncorpus import BAD_JSON
from .test_store import MakeStore, make_store  # noqa: F401  (the fixture: SQLite and PostgreSQL)

API = "/api/v1"


# -- the server ---------------------------------------------------------------------------------------------------


class Server(serve.Server):
    """The shared `flowboard serve` (tests/serve.py), with the admin API key made before it started."""

    def __init__(self, data_dir: Path, key: str) -> None:
        super().__init__(data_dir)
        self.key = key

    @property
    def base(self) -> str:
        return self.url

    def client(self, key: str | None = None, **headers: str) -> httpx.Client:
        given = {"X-API-Key": key if key is not None else self.key} if key != "" else {}
        return httpx.Client(base_url=self.base + API, headers={**given, **headers}, timeout=30)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return flowboard(data_dir, "--data-dir", str(data_dir), *args)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("api")
    made = cli(data_dir, "api-key", "create", "test")  # before the server starts
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert re.fullmatch(r"fb_[A-Za-z0-9_\-]{43}", key), made.stdout
    served = Server(data_dir, key)
    yield served
    served.stop()
    assert not served.errors(), "the server logged errors:\n" + served.output


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def uid(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def greet(flow_id: str, name: str = "Greet") -> dict[str, Any]:
    return {
        "id": flow_id, "name": name,
        "nodes": [
            {"id": "start", "type": "trigger.manual", "config": {"items": [{"name": "Ada"}]}},
            {"id": "hello", "type": "data.set", "config": {"fields": [{"name": "greeting",
                                                                          "value": "Hello {{ item.name }}"}]}},
        ],
        "edges": [{"source": "start", "target": "hello"}],
    }


BROKEN = {
    "name": "Broken",
    "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "mystery", "type": "no.such.node"},
        {"id": "call", "type": "http.request", "config": {"method": "FETCH"}},
    ],
    "edges": [{"source": "start", "target": "call"}, {"source": "call", "target": "ghost"}],
}
BROKEN_LOCS = {"nodes[1].type", "nodes[2].config.method", "nodes[2].config.url", "edges[1].target"}


def flow_ids(api: httpx.Client) -> set[str]:
    answer = api.get("/flows")
    assert answer.status_code == 200, answer.text
    return {f["id"] for f in answer.json()["flows"]}


def assert_error(answer: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) >= {"error", "problems"} and isinstance(body["error"], str), body
    for word in words:
        assert word in body["error"], body
    return dict(body)


def wait_for_end(api: httpx.Client, run_id: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(f"/runs/{run_id}")
        assert run.status_code == 200, run.text
        if run.json()["status"] not in ("queued", "running", "waiting"):
            return dict(run.json())
        assert time.monotonic() < deadline, f"run {run_id} did not end: {run.json()}"
        time.sleep(0.05)


# -- keys ---------------------------------------------------------------------------------------------------------


def test_every_call_needs_a_valid_key(server: Server) -> None:
    for client in (server.client(""), server.client("fb_" + "x" * 43), server.client("not a key at all"),
                   server.client("", Authorization="Basic dXNlcjpwYXNz"),
                   server.client("", Authorization="Bearer fb_wrong")):
        with client:
            for method, path in (("GET", "/flows"), ("POST", "/flows/import"), ("GET", "/runs"),
                                 ("DELETE", "/runs/x"), ("GET", "/nodes"), ("GET", "/no-such-thing")):
                answer = client.request(method, path, content=b"{}" if method == "POST" else None)
                body = assert_error(answer, 401)
                assert "API key" in body["error"]
                assert answer.headers["www-authenticate"].startswith("Bearer")
    with server.client() as by_header, server.client("", Authorization=f"Bearer {server.key}") as by_bearer:
        assert by_header.get("/flows").status_code == 200
        assert by_bearer.get("/flows").status_code == 200


def test_a_key_made_while_running_works_and_revoked_stops_at_once(server: Server) -> None:
    made = cli(server.data_dir, "api-key", "create", "short-lived")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    listed = cli(server.data_dir, "api-key", "list")
    assert "short-lived" in listed.stdout and key[:10] in listed.stdout and key not in listed.stdout
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if line.endswith("short-lived"))
    with server.client(key) as client:
        assert client.get("/flows").status_code == 200
        revoked = cli(server.data_dir, "api-key", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr
        gone = time.monotonic()
        while client.get("/flows").status_code == 200:  # another process revoked it: the server trusts a key 2 s
            assert time.monotonic() - gone < 2.5, "a revoked key still works"
            time.sleep(0.1)
        assert_error(client.get("/flows"), 401, "not valid")
    assert cli(server.data_dir, "api-key", "revoke", key_id).returncode == 2
    assert cli(server.data_dir, "api-key", "create", "  ").returncode == 2


def test_keys_are_stored_only_as_hashes(server: Server, api: httpx.Client) -> None:
    assert api.get("/flows").status_code == 200  # used at least once: last_used is set
    db = server.data_dir / "flowboard.db"
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, name, prefix, hash, created, last_used FROM api_keys").fetchall()
    finally:
        conn.close()
    [row] = [r for r in rows if r[1] == "test"]
    assert row[3] == hashlib.sha256(server.key.encode()).hexdigest()
    assert row[2] == server.key[:10] and row[5] is not None
    for r in rows:
        assert all(server.key not in str(value) for value in r)
    for path in server.data_dir.glob("flowboard.db*"):  # the database and its WAL
        assert server.key.encode() not in path.read_bytes(), path


# -- flows --------------------------------------------------------------------------------------------------------


def test_create_get_update_with_conflict_versions_and_delete(api: httpx.Client) -> None:
    flow_id = uid("crud")
    created = api.post("/flows", json=greet(flow_id, "First"))
    assert created.status_code == 201, created.text
    assert created.json() == {"id": flow_id, "version": 1, "active": False, "name": "First"}
    assert created.headers["location"] == f"{API}/flows/{flow_id}"
    assert_error(api.post("/flows", json=greet(flow_id)), 409, "exists already")

    got = api.get(f"/flows/{flow_id}")
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    body = got.json()
    assert (body["version"], body["active"]) == (1, False)
    assert body["flow"] == json.loads(dump_flow(parse_flow(greet(flow_id, "First"))))

    second = api.put(f"/flows/{flow_id}", json=greet(flow_id, "Second"), headers={"If-Match": '"1"'})
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 2 and second.headers["etag"] == '"2"'

    stale = api.put(f"/flows/{flow_id}", json=greet(flow_id, "Stale"), headers={"If-Match": "1"})
    assert assert_error(stale, 409, "changed meanwhile")["current_version"] == 2
    assert api.get(f"/flows/{flow_id}").json()["flow"]["name"] == "Second"
    assert [v["version"] for v in api.get(f"/flows/{flow_id}/versions").json()["versions"]] == [2, 1]

    assert_error(api.put(f"/flows/{flow_id}", json=greet(flow_id, "No version")), 428, "If-Match")
    assert_error(api.put(f"/flows/{flow_id}", json={"flow": greet(flow_id), "version": 2},
                         headers={"If-Match": "1"}), 400)
    other = assert_error(api.put(f"/flows/{flow_id}", json=greet("someone-else"), headers={"If-Match": "2"}), 422)
    assert other["problems"][0]["loc"] == "id"
    invalid = api.put(f"/flows/{flow_id}", json={**BROKEN, "id": flow_id}, headers={"If-Match": "2"})
    assert {p["loc"] for p in assert_error(invalid, 422)["problems"]} == BROKEN_LOCS

    wrapped = api.put(f"/flows/{flow_id}", json={"flow": greet(flow_id, "Third"), "version": 2})
    assert wrapped.status_code == 200 and wrapped.json()["version"] == 3
    top_level = api.put(f"/flows/{flow_id}", json={**greet(flow_id, "Fourth"), "version": 3})
    assert top_level.status_code == 200 and top_level.json()["version"] == 4
    assert api.get(f"/flows/{flow_id}").json()["flow"]["name"] == "Fourth"
    forced = api.put(f"/flows/{flow_id}", json=greet(flow_id, "Fourth"), headers={"If-Match": "*"})
    assert forced.status_code == 200 and forced.json()["version"] == 5
    assert_error(api.put(f"/flows/{flow_id}", json=greet(flow_id), headers={"If-Match": "latest"}), 400)

    first = api.get(f"/flows/{flow_id}/versions/1")
    assert first.status_code == 200 and first.json()["flow"]["name"] == "First"
    assert_error(api.get(f"/flows/{flow_id}/versions/99"), 404)
    assert_error(api.get(f"/flows/{flow_id}/versions/one"), 422)

    assert api.delete(f"/flows/{flow_id}").status_code == 204
    assert_error(api.get(f"/flows/{flow_id}"), 404, flow_id)
    assert_error(api.delete(f"/flows/{flow_id}"), 404)
    assert_error(api.put(f"/flows/{flow_id}", json=greet(flow_id), headers={"If-Match": "5"}), 404)
    assert flow_id not in flow_ids(api)


def test_an_invalid_flow_is_refused_with_every_problem_located_and_nothing_stored(api: httpx.Client) -> None:
    before = flow_ids(api)
    for answer in (api.post("/flows", json={**BROKEN, "id": "broken-create"}),
                   api.post("/flows/import", content=json.dumps({**BROKEN, "id": "broken-import"}).encode())):
        body = assert_error(answer, 422, "not valid")
        assert {p["loc"] for p in body["problems"]} == BROKEN_LOCS
        assert {p["node_id"] for p in body["problems"]} == {"mystery", "call", None}
        assert all(p["message"] for p in body["problems"])
    not_json = assert_error(api.post("/flows/import", content=b'{"name": "x",'), 422)
    assert not_json["problems"][0]["loc"] == "" and "not JSON" in not_json["problems"][0]["message"]
    assert flow_ids(api) == before
    assert_error(api.get("/flows/broken-create"), 404)
    assert_error(api.post("/flows/import", content=b" " * (5 * 1024 * 1024 + 1)), 413)


def test_bad_json_corpus_is_refused_with_its_place_by_every_route_that_takes_a_body(api: httpx.Client) -> None:
    flow_id = uid("limits")
    assert api.post("/flows", json=greet(flow_id)).status_code == 201
    before = flow_ids(api)
    json_type = {"Content-Type": "application/json"}
    for name, (raw, expected) in BAD_JSON.items():
        for method, path, headers in (("POST", "/flows", json_type), ("POST", "/flows/import", {}),
                                      ("PUT", f"/flows/{flow_id}", {**json_type, "If-Match": "1"}),
                                      ("POST", f"/flows/{flow_id}/runs", json_type)):
            body = assert_error(api.request(method, path, content=raw, headers=headers), 422)
            assert any(expected in p["message"] for p in body["problems"]), (name, path, body)
    for payload in ({"items": [{"x": float("nan")}]}, {"items": [{"x": float("inf")}]}):  # Python's json writes them
        raw = json.dumps(payload).encode()
        body = assert_error(api.post(f"/flows/{flow_id}/runs", content=raw, headers=json_type), 422)
        assert "NaN and Infinity are not JSON numbers" in body["problems"][0]["message"]
    assert flow_ids(api) == before and api.get(f"/flows/{flow_id}").json()["version"] == 1
    assert api.get("/runs", params={"flow_id": flow_id}).json()["runs"] == []


def test_import_then_export_round_trips_byte_for_byte(api: httpx.Client) -> None:
    flow_id = uid("trip")
    canonical = dump_flow(parse_flow({**greet(flow_id, "Grüße"), "description": "round trip"})).encode()
    imported = api.post("/flows/import", content=canonical, headers={"content-type": "application/json"})
    assert imported.status_code == 201, imported.text
    assert imported.json()["id"] == flow_id
    exported = api.get(f"/flows/{flow_id}/export")
    assert exported.status_code == 200
    assert exported.content == canonical
    assert exported.headers["content-type"] == "application/json"
    assert exported.headers["content-disposition"] == 'attachment; filename="Gr-e.json"'

    # a file written by hand comes back in the canonical form; importing it again keeps those bytes
    again = api.post("/flows/import", content=json.dumps(greet(flow_id, "Compact"), separators=(",", ":")))
    assert again.status_code == 201 and again.json()["id"] != flow_id  # the id was taken: a new one
    new_id = again.json()["id"]
    export = api.get(f"/flows/{new_id}/export").content
    assert export == dump_flow(parse_flow({**greet(new_id, "Compact")})).encode()
    assert_error(api.get("/flows/no-such-flow/export"), 404)


def test_activate_and_deactivate(api: httpx.Client) -> None:
    path = f"hooks/{uuid.uuid4().hex[:8]}"

    def hook(flow_id: str) -> dict[str, Any]:
        return {"id": flow_id, "name": "Hook", "nodes": [
            {"id": "hook", "type": "trigger.webhook", "config": {"path": path}},
            {"id": "set", "type": "data.set", "config": {"fields": [{"name": "ok", "value": "yes"}]}}],
            "edges": [{"source": "hook", "target": "set"}]}

    one, two = uid("hook-one"), uid("hook-two")
    assert api.post("/flows", json=hook(one)).status_code == 201
    assert api.post("/flows", json=hook(two)).status_code == 201
    on = api.post(f"/flows/{one}/activate")
    assert on.status_code == 200, on.text
    assert on.json() == {"id": one, "version": 1, "active": True}
    assert api.get(f"/flows/{one}").json()["active"] is True
    assert next(f for f in api.get("/flows").json()["flows"] if f["id"] == one)["active"] is True

    clash = assert_error(api.post(f"/flows/{two}/activate"), 409, "cannot be activated")
    assert clash["problems"][0]["loc"] == "nodes[0].config.path" and clash["problems"][0]["node_id"] == "hook"
    assert api.get(f"/flows/{two}").json()["active"] is False

    off = api.post(f"/flows/{one}/deactivate")
    assert off.status_code == 200 and off.json()["active"] is False
    assert api.get(f"/flows/{one}").json()["active"] is False
    assert api.post(f"/flows/{two}/activate").status_code == 200  # the path is free now
    assert api.delete(f"/flows/{two}").status_code == 204  # an active flow can be deleted: its triggers stop
    assert api.post(f"/flows/{one}/activate").status_code == 200
    assert_error(api.post("/flows/no-such-flow/activate"), 404)
    assert_error(api.post("/flows/no-such-flow/deactivate"), 404)


# -- runs ---------------------------------------------------------------------------------------------------------


def test_run_and_wait_for_the_result(api: httpx.Client) -> None:
    flow_id = uid("run")
    assert api.post("/flows", json=greet(flow_id)).status_code == 201
    answer = api.post(f"/flows/{flow_id}/runs", json={"items": [{"name": "Grace"}, {"name": "Linus"}]})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["status"] == "succeeded" and result["flow_id"] == flow_id
    assert [i["greeting"] for i in result["output"]] == ["Hello Grace", "Hello Linus"]
    assert result["steps"]["hello"] == {"status": "succeeded", "items": 2, "attempt": 1, "error": None}
    assert answer.headers["location"] == f"{API}/runs/{result['run_id']}"

    default = api.post(f"/flows/{flow_id}/runs")  # no body: the trigger's own test items
    assert default.status_code == 200 and default.json()["output"] == [{"name": "Ada", "greeting": "Hello Ada"}]

    not_a_trigger = assert_error(api.post(f"/flows/{flow_id}/runs", json={"trigger": "hello"}), 422)
    assert not_a_trigger["problems"][0]["loc"] == "trigger"
    bad_items = assert_error(api.post(f"/flows/{flow_id}/runs", json={"items": [1]}), 422)
    assert bad_items["problems"][0]["loc"] == "items[0]"
    assert assert_error(api.post(f"/flows/{flow_id}/runs", json={"wait": True, "surprise": 1}), 422)["problems"][0][
        "loc"] == "surprise"
    assert_error(api.post(f"/flows/{flow_id}/runs", content=b"{not json", headers={"content-type": "application/json"}),
                 422)
    assert_error(api.post("/flows/no-such-flow/runs", json={}), 404)


def test_run_in_the_background_then_follow_it(api: httpx.Client) -> None:
    flow_id = uid("background")
    assert api.post("/flows", json=greet(flow_id)).status_code == 201
    answer = api.post(f"/flows/{flow_id}/runs", json={"items": [{"name": "Hedy"}], "wait": False})
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]
    assert answer.json()["url"] == answer.headers["location"] == f"{API}/runs/{run_id}"
    run = wait_for_end(api, run_id)
    assert run["status"] == "succeeded" and run["source"] == "api" and run["flow_version"] == 1
    assert run["input"] == [{"name": "Hedy"}] and run["output"] == [{"name": "Hedy", "greeting": "Hello Hedy"}]
    steps = {s["node_id"]: s for s in run["steps"]}
    assert list(steps) == ["start", "hello"]
    assert steps["hello"]["inputs"] == {"main": [{"name": "Hedy"}]}
    assert steps["hello"]["outputs"] == {"main": [{"name": "Hedy", "greeting": "Hello Hedy"}]}
    assert steps["hello"]["status"] == "succeeded" and steps["hello"]["attempt"] == 1 and steps["hello"]["items"] == 1
    assert steps["hello"]["finished"] >= steps["hello"]["started"] >= run["started"]
    assert run["duration_ms"] >= 0 and run["error"] is None


def test_list_runs_with_filters(api: httpx.Client) -> None:
    flow_id = uid("listed")
    assert api.post("/flows", json=greet(flow_id)).status_code == 201
    start = time.time()
    ids = [api.post(f"/flows/{flow_id}/runs", json={}).json()["run_id"] for _ in range(3)]
    listed = api.get("/runs", params={"flow_id": flow_id})
    assert listed.status_code == 200
    assert [r["id"] for r in listed.json()["runs"]] == ids[::-1]  # newest first
    assert "input" not in listed.json()["runs"][0] and "steps" not in listed.json()["runs"][0]
    assert len(api.get("/runs", params={"flow_id": flow_id, "status": "succeeded", "source": "api"}).json()[
        "runs"]) == 3
    assert api.get("/runs", params={"flow_id": flow_id, "status": ["failed", "cancelled"]}).json()["runs"] == []
    assert api.get("/runs", params={"flow_id": flow_id, "source": "webhook"}).json()["runs"] == []
    assert api.get("/runs", params={"flow_id": flow_id, "since": time.time() + 60}).json()["runs"] == []
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start - 1))
    assert len(api.get("/runs", params={"flow_id": flow_id, "since": since}).json()["runs"]) == 3
    page = api.get("/runs", params={"flow_id": flow_id, "limit": 2}).json()
    assert [r["id"] for r in page["runs"]] == ids[:0:-1] and page["next_offset"] == 2
    last = api.get("/runs", params={"flow_id": flow_id, "limit": 2, "offset": 2}).json()
    assert [r["id"] for r in last["runs"]] == ids[:1] and last["next_offset"] is None
    assert assert_error(api.get("/runs", params={"status": "sleeping"}), 422)["problems"][0]["loc"].startswith(
        "status")
    assert assert_error(api.get("/runs", params={"limit": 0}), 422)["problems"][0]["loc"] == "limit"
    assert assert_error(api.get("/runs", params={"since": "last tuesday"}), 422)["problems"][0]["loc"] == "since"


def test_cancel_a_waiting_run_then_delete_it(api: httpx.Client) -> None:
    flow_id = uid("slow")
    flow = {"id": flow_id, "name": "Slow", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "pause", "type": "logic.wait", "config": {"seconds": 3600}},
        {"id": "after", "type": "data.set", "config": {"fields": [{"name": "done", "value": "yes"}]}}],
        "edges": [{"source": "start", "target": "pause"}, {"source": "pause", "target": "after"}]}
    assert api.post("/flows", json=flow).status_code == 201
    started = time.monotonic()
    run_id = api.post(f"/flows/{flow_id}/runs", json={"wait": False}).json()["run_id"]
    while (status := api.get(f"/runs/{run_id}").json()["status"]) != "waiting":  # an hour's wait parks the run
        assert status in ("queued", "running") and time.monotonic() - started < 30, status
        time.sleep(0.05)
    assert_error(api.delete(f"/runs/{run_id}"), 409, "cancel it first")
    assert_error(api.delete(f"/flows/{flow_id}"), 409, run_id)
    cancelled = api.post(f"/runs/{run_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert time.monotonic() - started < 60, "the wait was not stopped"
    run = api.get(f"/runs/{run_id}").json()
    steps = {s["node_id"]: s["status"] for s in run["steps"]}
    assert run["status"] == "cancelled" and steps["pause"] == "cancelled" and "after" not in steps
    assert_error(api.post(f"/runs/{run_id}/cancel"), 409, "ended already")
    assert api.delete(f"/runs/{run_id}").status_code == 204
    assert_error(api.get(f"/runs/{run_id}"), 404)
    assert_error(api.post("/runs/no-such-run/cancel"), 404)


class Flaky:
    """A local HTTP server: `/flaky` fails (500) the first time and works afterwards; every call is counted."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                with owner.lock:
                    count = owner.hits[self.path] = owner.hits.get(self.path, 0) + 1
                status = 500 if self.path == "/flaky" and count == 1 else 200
                body = json.dumps({"path": self.path, "count": count}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    server = Flaky()
    yield server
    server.close()


def test_retry_a_failed_run_from_the_failed_step(api: httpx.Client, flaky: Flaky) -> None:
    flow_id = uid("retry")
    flow = {"id": flow_id, "name": "Retry me", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "first", "type": "http.request", "config": {"method": "POST", "url": f"{flaky.url}/first"}},
        {"id": "shaky", "type": "http.request", "config": {"method": "POST", "url": f"{flaky.url}/flaky"}},
        {"id": "last", "type": "http.request", "config": {"method": "POST", "url": f"{flaky.url}/last"}}],
        "edges": [{"source": "start", "target": "first"}, {"source": "first", "target": "shaky"},
                  {"source": "shaky", "target": "last"}]}
    assert api.post("/flows", json=flow).status_code == 201
    failed = api.post(f"/flows/{flow_id}/runs", json={"items": [{"n": 1}]}).json()
    assert failed["status"] == "failed" and failed["error"]["node_id"] == "shaky", failed
    assert flaky.hits == {"/first": 1, "/flaky": 1}
    run_id = failed["run_id"]
    before = {s["node_id"]: s for s in api.get(f"/runs/{run_id}").json()["steps"]}
    assert before["shaky"]["status"] == "failed" and "500" in before["shaky"]["error"]["message"]

    retried = api.post(f"/runs/{run_id}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["run_id"] == run_id and retried.json()["status"] == "succeeded"
    assert flaky.hits == {"/first": 1, "/flaky": 2, "/last": 1}, "a step that had succeeded ran again"
    run = api.get(f"/runs/{run_id}").json()
    steps = {s["node_id"]: s for s in run["steps"]}
    assert run["status"] == "succeeded" and run["error"] is None and run["input"] == [{"n": 1}]
    assert {nid: s["status"] for nid, s in steps.items()} == dict.fromkeys(["start", "first", "shaky", "last"],
                                                                          "succeeded")
    assert steps["first"]["finished"] == before["first"]["finished"]  # the recorded step, kept as it was
    assert steps["shaky"]["outputs"]["main"][0]["body"]["count"] == 2
    assert steps["last"]["inputs"]["main"][0]["body"]["count"] == 2
    assert_error(api.post(f"/runs/{run_id}/retry"), 409, "only a failed")
    assert_error(api.post("/runs/no-such-run/retry"), 404)


def test_retry_in_the_background(api: httpx.Client, flaky: Flaky) -> None:
    flow_id = uid("retry-bg")
    flow = {"id": flow_id, "name": "Retry later", "nodes": [
        {"id": "start", "type": "trigger.manual"},
        {"id": "shaky", "type": "http.request", "config": {"method": "POST", "url": f"{flaky.url}/flaky"}}],
        "edges": [{"source": "start", "target": "shaky"}]}
    assert api.post("/flows", json=flow).status_code == 201
    run_id = api.post(f"/flows/{flow_id}/runs", json={"wait": False}).json()["run_id"]
    assert wait_for_end(api, run_id)["status"] == "failed"
    accepted = api.post(f"/runs/{run_id}/retry", json={"wait": False})
    assert accepted.status_code == 202 and accepted.json()["run_id"] == run_id
    assert wait_for_end(api, run_id)["status"] == "succeeded"
    assert flaky.hits == {"/flaky": 2}


# -- catalog, docs, everything else -------------------------------------------------------------------------------


def test_node_catalog(api: httpx.Client) -> None:
    answer = api.get("/nodes")
    assert answer.status_code == 200
    nodes = {n["type"]: n for n in answer.json()["nodes"]}
    assert {"trigger.manual", "http.request", "logic.wait", "data.set"} <= set(nodes)
    http = nodes["http.request"]
    assert http["category"] == "integration" and http["inputs"] == ["main"] and http["side_effects"] is True
    assert "url" in http["config_schema"]["properties"]
    assert nodes["trigger.manual"]["inputs"] == []


def test_docs_load_swagger_ui_from_the_server(server: Server) -> None:
    """/docs must work offline: Swagger UI's files come from /_swagger (packaged with the canvas), not a CDN."""
    page = httpx.get(server.base + "/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "cdn.jsdelivr.net" not in page.text and "https://" not in page.text.split("</head>")[0]
    assets = re.findall(r'(?:src|href)="(/_swagger/[^"]+)"', page.text)
    assert {"/_swagger/swagger-ui-bundle.js", "/_swagger/swagger-ui.css"} <= set(assets), page.text
    for path in assets:
        answer = httpx.get(server.base + path)
        assert answer.status_code == 200, path
        kind = {".js": "javascript", ".css": "text/css", ".png": "image/png"}[Path(path).suffix]
        assert kind in answer.headers["content-type"], (path, answer.headers["content-type"])
        assert len(answer.content) > (100_000 if Path(path).suffix != ".png" else 100), path
    assert httpx.get(server.base + "/_swagger/nothing.js").status_code == 404


@pytest.mark.browser
def test_docs_render_in_chromium(server: Server) -> None:
    from .browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

    require_chromium()
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    outside: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(server.base) else outside.append(r.url))
            page.goto(server.base + "/docs")
            page.locator(".opblock").first.wait_for(timeout=30_000)
            assert page.locator(".opblock").count() > 10
            assert page.locator(".info .title").inner_text().startswith("Flowboard")
            page.screenshot(path=str(server.data_dir / "docs.png"))
        finally:
            browser.close()
    assert not problems, problems
    assert not outside, outside


def test_docs_and_openapi_describe_the_api(server: Server) -> None:
    docs = httpx.get(server.base + "/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    spec = httpx.get(server.base + "/openapi.json").json()
    paths = spec["paths"]
    for path, methods in {"/flows": {"get", "post"}, "/flows/import": {"post"},
                          "/flows/{flow_id}": {"get", "put", "delete"}, "/flows/{flow_id}/activate": {"post"},
                          "/flows/{flow_id}/deactivate": {"post"}, "/flows/{flow_id}/export": {"get"},
                          "/flows/{flow_id}/versions": {"get"}, "/flows/{flow_id}/versions/{version}": {"get"},
                          "/flows/{flow_id}/runs": {"post"}, "/runs": {"get"}, "/runs/{run_id}": {"get", "delete"},
                          "/runs/{run_id}/cancel": {"post"}, "/runs/{run_id}/retry": {"post"},
                          "/nodes": {"get"}}.items():
        assert set(paths[API + path]) == methods, path
        for operation in paths[API + path].values():
            assert operation["security"] == [{"ApiKey": []}, {"Bearer": []}]
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"}
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {**schemes["ApiKey"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["scheme"] == "bearer"
    schemas = spec["components"]["schemas"]
    assert {"steps", "input", "output", "status"} <= set(schemas["RunRead"]["properties"])
    assert paths[API + "/runs/{run_id}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RunRead"}
    assert paths[API + "/flows"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Flow"}
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert refs <= set(schemas), refs - set(schemas)


def test_unknown_endpoints_and_methods_answer_json(api: httpx.Client) -> None:
    assert_error(api.get("/nothing/here"), 404, "no API endpoint")
    wrong = assert_error(api.patch("/flows"), 405)
    assert "GET" in wrong["error"] and api.patch("/flows").headers["allow"] == "GET, POST"


def test_responses_match_their_documented_schemas(server: Server, api: httpx.Client) -> None:
    """The fields sent are the fields documented (the models build the answers)."""
    schemas = httpx.get(server.base + "/openapi.json").json()["components"]["schemas"]
    flow_id = uid("shape")
    assert api.post("/flows", json=greet(flow_id)).status_code == 201
    run_id = api.post(f"/flows/{flow_id}/runs", json={}).json()["run_id"]
    for path, schema in ((f"/flows/{flow_id}", "FlowRead"), ("/flows", "FlowList"), (f"/runs/{run_id}", "RunRead"),
                         ("/runs", "RunList"), (f"/flows/{flow_id}/versions", "VersionList"), ("/nodes", "NodeList")):
        assert set(api.get(path).json()) == set(schemas[schema]["properties"]), path
    step = api.get(f"/runs/{run_id}").json()["steps"][0]
    assert set(step) == set(schemas["StepRead"]["properties"])


# -- the store: API keys and reopening runs (SQLite and PostgreSQL) ---------------------------------------------


def test_store_api_keys(make_store: MakeStore) -> None:  # noqa: F811
    store = make_store()
    info, key = store.create_api_key("  deploy script ")
    assert info.name == "deploy script" and key.startswith("fb_") and info.prefix == key[:10]
    assert info.last_used is None and len(key) == 46
    other, other_key = store.create_api_key("backup")
    assert other_key != key and other.id != info.id
    assert [k.id for k in store.list_api_keys()] == [info.id, other.id]
    assert all(not hasattr(k, "hash") and key not in repr(k) for k in store.list_api_keys())

    checked = store.check_api_key(key)
    assert checked is not None and checked.id == info.id and checked.last_used is not None
    first_use = checked.last_used
    assert store.check_api_key(key).last_used == first_use  # type: ignore[union-attr]  # written once a minute
    for wrong in (key[:-1], key + "x", "", "fb_", other_key.upper(), "x" * 10_000):
        assert store.check_api_key(wrong) is None

    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT id, name, prefix, hash, created, last_used FROM api_keys").all()
    assert {r[3] for r in rows} == {hash_api_key(key), hash_api_key(other_key)}
    assert all(key not in str(v) and other_key not in str(v) for r in rows for v in r)

    assert store.cached_api_key(key) == checked  # seen valid just now: no database read
    assert store.cached_api_key(key[:-1]) is None and store.cached_api_key("x") is None
    store.revoke_api_key(info.id)
    assert store.cached_api_key(key) is None  # revoked here: refused at once
    assert store.check_api_key(key) is None and store.check_api_key(other_key) is not None
    with pytest.raises(NotFound):
        store.revoke_api_key(info.id)
    for name in ("", "   ", "x" * 201):
        with pytest.raises(ValueError):
            store.create_api_key(name)


def test_store_reopen_run_keeps_the_given_steps_and_has_one_winner(make_store: MakeStore) -> None:  # noqa: F811
    store: Store = make_store()
    flow = parse_flow(greet("reopen"))
    store.save_flow(flow, expected_version=None)
    store.create_run("r1", "reopen", 1, "start", [{"a": 1}], "api", status=RunStatus.running,
                     owner=store.owner)
    recorder = SqlRecorder(store)
    now = time.time()
    steps = [Step("r1", "start", StepStatus.succeeded, now, now, outputs={"main": [{"a": 1}]}),
             Step("r1", "hello", StepStatus.failed, now, now, error={"message": "boom"})]
    asyncio.run(recorder.steps_finished("r1", steps, durable=True))
    store.mark_run("r1", RunStatus.failed, {"message": "boom", "node_id": "hello"})

    assert store.reopen_run("r1", "me", ["start"]) is True
    run = store.get_run("r1")
    assert run.status == RunStatus.running and run.owner == "me" and run.error is None and run.finished is None
    assert list(store.get_steps("r1")) == ["start"]
    assert store.reopen_run("r1", "someone else", ["start"]) is False  # running now: not twice
    store.mark_run("r1", RunStatus.succeeded)
    assert store.reopen_run("r1", "me", []) is False
    assert store.reopen_run("no-such-run", "me", []) is False


def test_a_key_revoked_by_another_process_is_refused_after_the_cache_time(make_store: MakeStore,  # noqa: F811
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from flowboard.store import store as store_module

    class Clock:
        """The store's clock, stopped: the moment of trust is measured, not raced on a loaded machine."""

        now = time.monotonic()

        def monotonic(self) -> float:
            return self.now

        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

    clock = Clock()
    monkeypatch.setattr(store_module, "time", clock)
    server, cli_store = make_store(), make_store()
    info, key = cli_store.create_api_key("elsewhere")
    assert server.check_api_key(key) is not None and server.cached_api_key(key) is not None
    cli_store.revoke_api_key(info.id)
    clock.now += store_module.API_KEY_CACHE - 0.01
    assert server.cached_api_key(key) is not None  # still trusted for a moment
    clock.now += 0.02
    assert server.cached_api_key(key) is None and server.check_api_key(key) is None
