"""The served app's front (hostguard.py), against `flowboard serve` in a subprocess: Host names (DNS rebinding),
foreign Origins on HTTP and the websocket, header limits; and the data folder's file modes."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from .clihelp import env_for, flowboard

PUBLIC = "https://flows.example.com"
ECHO = {"id": "echo", "name": "echo", "nodes": [{"id": "hook", "type": "trigger.webhook",
                                                 "config": {"path": "echo"}}], "edges": []}


@dataclass
class Served:
    port: int
    data: Path
    key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("web") / "data"  # made by Flowboard itself, so its mode is Flowboard's
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # as a user's umask would leave it: Flowboard tightens it
    (data.parent / "echo.json").write_text(json.dumps(ECHO))
    assert flowboard(data, "import", str(data.parent / "echo.json")).returncode == 0
    assert flowboard(data, "activate", "echo").returncode == 0
    proc = flowboard(data, "api-key", "create", "hygiene")
    assert proc.returncode == 0, proc.stderr
    key = proc.stdout.strip().splitlines()[-1]
    port = free_port()
    log = data.parent / "server.log"
    env = {**env_for(data), "FLOWBOARD_PUBLIC_URL": PUBLIC}
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "flowboard", "serve", "--port", str(port), "--no-browser",
                                   "--data-dir", str(data)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/webhook/none", timeout=1).status_code == 404:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Served(port, data, key)
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


PATHS = ["/", "/api/v1/flows", "/webhook/echo", "/form/nothing", "/docs",
         "/_nicegui_ws/socket.io/?EIO=4&transport=polling"]


def get(served: Served, path: str, **headers: str) -> httpx.Response:
    return httpx.get(served.url + path, headers={"X-API-Key": served.key, **headers}, timeout=30)


def test_own_host_names_are_answered(served: Served) -> None:
    port = served.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}",
                 "flows.example.com", "flows.example.com:443"):
        r = get(served, "/api/v1/flows", Host=host)
        assert r.status_code == 200, (host, r.text)
        assert get(served, "/webhook/echo", Host=host).status_code == 405, host  # reached the webhook: POST only


def test_foreign_host_names_are_refused_everywhere(served: Served) -> None:
    port = served.port
    foreign = ["evil.example", f"evil.example:{port}", "127.0.0.1", "127.0.0.1:1", f"localhost.evil.example:{port}",
               f"127.0.0.1:{port}.evil.example", f"0.0.0.0:{port}", f"192.168.1.20:{port}", f"127.0.0.2:{port}",
               "flows.example.com:8443", "example.com", f"[::2]:{port}", "127.0.0.1:80", "localhost"]
    for host in foreign:
        for path in PATHS:
            r = get(served, path, Host=host)
            assert r.status_code == 403, (host, path, r.status_code)
            assert "answers only at" in r.text and "access-control-allow-origin" not in r.headers


def test_foreign_origins_are_refused_and_never_reflected(served: Served) -> None:
    port = served.port
    foreign = ["http://evil.example", "null", f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}",
               f"http://localhost.evil.example:{port}", "http://flows.example.com", "https://flows.example.com:8443",
               f"http://127.0.0.1:{port}.evil.example"]
    for origin in foreign:
        for path in ("/", "/api/v1/flows", "/docs", "/_nicegui_ws/socket.io/?EIO=4&transport=polling"):
            r = get(served, path, Origin=origin)
            assert r.status_code == 403 and "other web sites" in r.text, (origin, path, r.status_code)
            assert "access-control-allow-origin" not in r.headers
        preflight = httpx.options(served.url + "/api/v1/flows", headers={
            "Origin": origin, "Access-Control-Request-Method": "DELETE"}, timeout=30)
        assert preflight.status_code == 403 and "access-control-allow-origin" not in preflight.headers
        # the public endpoints take calls from anywhere, but never with CORS headers
        r = httpx.post(served.url + "/webhook/echo", json={"a": 1}, headers={"Origin": origin}, timeout=30)
        assert r.status_code == 200 and r.json()["body"] == {"a": 1}
        assert not any(h.startswith("access-control-") for h in r.headers)
    for own in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", f"http://[::1]:{port}", PUBLIC):
        assert get(served, "/api/v1/flows", Origin=own).status_code == 200, own


def test_websocket_with_a_foreign_origin_is_refused(served: Served) -> None:
    uri = f"ws://127.0.0.1:{served.port}/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{served.port + 1}"):
        with pytest.raises(InvalidStatus) as refused:
            connect(uri, origin=origin, open_timeout=20).close()  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403, origin
    with pytest.raises(InvalidStatus) as refused:
        connect(uri, additional_headers={"Host": "evil.example"}, open_timeout=20).close()
    assert refused.value.response.status_code == 403
    with connect(uri, origin=f"http://127.0.0.1:{served.port}", open_timeout=20) as ws:  # type: ignore[arg-type]
        assert ws.recv(timeout=20)  # engine.io's open packet: the editor's own page connects


def test_header_count_and_size_are_limited(served: Served) -> None:
    many = {f"X-H{i}": "v" for i in range(120)}
    big = {"X-Big": "b" * 40_000}
    spread = {f"X-S{i}": "s" * 1000 for i in range(40)}
    for headers in (many, big, spread):
        for path in ("/webhook/echo", "/api/v1/flows", "/"):
            r = httpx.post(served.url + path, json={}, headers=headers, timeout=30)
            assert r.status_code == 431, (path, len(headers), r.status_code)
    fine = {f"X-H{i}": "v" * 100 for i in range(60)}
    assert httpx.post(served.url + "/webhook/echo", json={}, headers=fine, timeout=30).status_code == 200


def test_data_folder_and_database_files_are_owner_only(served: Served) -> None:
    httpx.post(served.url + "/webhook/echo", json={"a": 1}, timeout=30)  # a write: the WAL exists
    assert stat.S_IMODE(served.data.stat().st_mode) == 0o700
    files = [p for p in served.data.iterdir() if p.name.startswith("flowboard.db")]
    assert {p.name for p in files} >= {"flowboard.db", "flowboard.db-wal", "flowboard.db-shm"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, (path.name, oct(path.stat().st_mode))


def test_a_port_in_use_refuses_to_start_rather_than_share_it(tmp_path: Path) -> None:
    """granian binds with SO_REUSEPORT: without the check, a second server on a taken port answered some of its
    calls from another data folder, and neither said a word."""
    for reuse_port in (True, False):  # another Flowboard (granian), or another program
        with socket.socket() as other:
            if reuse_port:
                other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            other.bind(("127.0.0.1", 0))
            other.listen()
            port = other.getsockname()[1]
            proc = flowboard(tmp_path, "serve", "--port", str(port), "--no-browser", timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr
        assert f"another port, such as: flowboard --port {port + 1}" in proc.stderr


def test_a_server_that_cannot_start_says_why_and_listens_on_nothing(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """Granian's RSGI has no lifespan: `Boot.start` runs before the server listens, and what keeps it from starting
    ends `flowboard serve` with its reason instead of a server that answers nothing."""
    from flowboard import server
    from flowboard.boot import Boot
    from flowboard.hostguard import HostGuard
    from flowboard.services import Flowboard

    def broken() -> None:
        raise RuntimeError("the database is not readable")

    fb = Flowboard(tmp_path, record=False)
    monkeypatch.setattr(fb, "start_triggers", broken)
    port = free_port()
    with pytest.raises(SystemExit) as stopped:
        server._run_granian(HostGuard(Boot(fb), port), "127.0.0.1", port)
    assert str(stopped.value) == "flowboard: the server could not start: the database is not readable"
    assert not server._port_taken("127.0.0.1", port)
