"""`flowboard serve` in a subprocess, as a person starts it: the one helper the browser and API tests share.

    server = Server(data_dir)            # a free port, its own data folder, links (FLOWBOARD_PUBLIC_URL) pointing at it
    Server(data_dir, env={"FLOWBOARD_DATABASE_URL": url})   # more settings
    server.url                           # "http://127.0.0.1:<port>"
    server.kill()                        # kill -9 (a crash); Server(data_dir) again is the restart
    server.stop()                        # SIGTERM, then SIGKILL after 20 s
    server.errors()                      # the ERROR lines and tracebacks of its log (tests assert there are none)

The server's output goes to a file in the data folder (a pipe could fill and block it); `output` reads it.

`stand_ins` (a module fixture) runs `flowboard demo`'s stand-in APIs and mail catcher on their fixed ports.

For a browser test module with an editor of its own: ``from tests.serve import data_dir, server, tab`` (with
``browser`` from tests.browser): one server per module on a fresh data folder, and a 1800x1000 tab per test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowboard.demo import DemoServer

from .browser import free_port, require_chromium, watched_tab
from .clihelp import env_for


class Server:
    """`flowboard serve` on `data_dir` and a free port, answering `/healthz` when the constructor returns."""

    def __init__(self, data_dir: Path, *, env: dict[str, str] | None = None, timeout: float = 90) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir / f"server-{self.port}.log"
        environment = {**env_for(data_dir), "FLOWBOARD_PUBLIC_URL": self.url, **(env or {})}
        with self.log.open("a") as out:  # a restart on the same folder and port appends
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flowboard", "serve", "--port", str(self.port), "--no-browser",
                 "--data-dir", str(data_dir)], cwd=data_dir, env=environment, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout  # a busy machine can take a while to import and bind
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server stopped:\n{self.output}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not answer within {timeout:.0f} s:\n{self.output}")
            time.sleep(0.1)

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """A crash: SIGKILL, nothing is cleaned up."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(20)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def errors(self) -> list[str]:
        return [line for line in self.output.splitlines() if " ERROR " in line or "Traceback" in line]


@pytest.fixture(scope="module")
def stand_ins() -> Iterator[DemoServer]:
    """The stand-in APIs (8091) and the mail catcher (2525) the business flows call. Other test modules (and other
    test processes) use the same fixed ports, so wait a while for them to be free rather than fail at once."""
    deadline = time.monotonic() + 120
    while True:
        server = DemoServer()
        try:
            server.start()
            break
        except (RuntimeError, OSError):
            server.stop()
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of the module's `server`."""
    return tmp_path_factory.mktemp("editor-data")


@pytest.fixture(scope="module")
def server(data_dir: Path) -> Iterator[Server]:
    """`flowboard serve` on `data_dir`, one for the test module (browser tests: Chromium is required)."""
    require_chromium()
    srv = Server(data_dir)
    yield srv
    srv.stop()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[Any]:
    """A fresh 1800x1000 tab (30 s waits); fails the test on any browser console error."""
    with watched_tab(browser, 1800, 1000, timeout=30_000) as page:
        yield page
