"""What the broker tests share: their fixtures (a Flowboard with fast reconnects, the service check), a wait for
finished runs, a TCP proxy that cuts and restores a client's connection to the shared RabbitMQ or NATS, and private
redis-server / mosquitto instances."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from flowboard.engine import Event
from flowboard.registry import Registry
from flowboard.services import Flowboard

from .conftest import require_service


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def need(name: str, port: int) -> None:
    require_service(name, port_open(port))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fast_reconnects(fb: Flowboard) -> Flowboard:
    fb.listeners.backoff, fb.listeners.backoff_max = 0.2, 0.8
    return fb


def broker_fixtures(name: str, port: int) -> tuple[Any, Any]:
    """A broker test module's two fixtures, as `_up, fb = broker_fixtures("NATS", 4222)` at module level: an autouse
    one that skips its tests when the shared service is down (fails in CI), and `fb`, a Flowboard whose listening
    triggers reconnect fast."""

    @pytest.fixture(autouse=True)
    def up() -> None:
        need(name, port)

    @pytest.fixture
    async def fb(tmp_path: Path, registry: Registry) -> Any:
        board = fast_reconnects(Flowboard(data_dir=tmp_path, registry=registry))
        yield board
        await board.aclose()
        await no_task_left_behind()

    return up, fb


async def no_task_left_behind() -> None:
    """After the board closed, its listening triggers' tasks end; one that does not says where it hangs (instead of
    the test process hanging at the end of the test, as it once did after a RabbitMQ restart test)."""
    left = [task for task in asyncio.all_tasks() if task.get_name().startswith("listen ")]
    if left:
        _, pending = await asyncio.wait(left, timeout=30)
        stacks = [f"{task!r}: {task.get_stack()!r}" for task in pending]
        assert not pending, f"listening triggers that do not end when switched off: {stacks}"


class Finished:
    """Counts the runs of one flow as they finish (the event bus), so a test awaits them instead of sleeping."""

    def __init__(self, fb: Flowboard, flow_id: str):
        self.flow_id = flow_id
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._off = fb.bus.subscribe(self._seen)

    def _seen(self, event: Event) -> None:
        if event.kind == "run.finished" and event.flow_id == self.flow_id:
            self.events.append(event)
            self._changed.set()

    def count(self, status: str | None = None) -> int:
        return sum(1 for e in self.events if status is None or e.status == status)

    async def until(self, n: int, status: str | None = None, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(status) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.count(status)} of {n} runs ({status or 'any'}) finished in {timeout} s: "
                                     f"{[(e.status, e.message) for e in self.events[-3:]]}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def close(self) -> None:
        self._off()


async def until(check: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll `check` (for states no event reports, such as a connection) until it gives a true value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


def state_texts(fb: Flowboard, flow_id: str) -> list[str]:
    return [s.text() for s in fb.connection_states(flow_id)]


class Proxy:
    """A TCP proxy to a shared service: `cut()` drops every connection through it and refuses new ones (as a
    stopped server does), `restore()` listens again on the same port. The service itself is never touched."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.port = free_port()
        self.server: asyncio.base_events.Server | None = None
        self.pipes: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        self.pipes |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self.pipes -= {writer, up_writer}

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in list(self.pipes):
            transport = pipe.transport
            transport.abort()  # type: ignore[attr-defined]
        await self.server.wait_closed()
        self.server = None

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        if self.server is not None:
            await self.cut()


@contextlib.asynccontextmanager
async def proxy(target_port: int) -> AsyncIterator[Proxy]:
    p = Proxy(target_port)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


def _stop_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it ends (Linux's PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


class Private:
    """A private server process (redis-server, mosquitto, rabbitmq-server) on a free port, in a process group of its
    own, stopped and started again by the test."""

    def __init__(self, argv: Callable[[int], list[str]], folder: Path, env: dict[str, str] | None = None,
                 boot_timeout: float = 10.0):
        self.argv = argv
        self.folder = folder
        self.env = env
        self.boot_timeout = boot_timeout
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> subprocess.Popen[bytes]:
        """Start the process (in the calling thread: it is told to stop when that thread ends, so a test process
        that dies leaves no server behind)."""
        with (self.folder / "server.log").open("ab") as out:
            self.proc = subprocess.Popen(self.argv(self.port), cwd=self.folder, stdout=out, stderr=out,
                                         env=None if self.env is None else {**os.environ, **self.env},
                                         start_new_session=True, preexec_fn=_stop_with_parent)
        return self.proc

    def wait_listening(self, proc: subprocess.Popen[bytes]) -> None:
        log = self.folder / "server.log"
        deadline = time.monotonic() + self.boot_timeout
        while not port_open(self.port) and proc.poll() is None:
            if time.monotonic() > deadline:
                self.stop_now()
                raise AssertionError(f"{proc.args} did not listen in {self.boot_timeout} s: {log.read_text()[-500:]}")
            time.sleep(0.05)
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} did not start: {log.read_text()[-500:]}")

    def start_now(self) -> None:
        """Start and wait until it listens (blocking: for module fixtures)."""
        self.wait_listening(self.launch())

    def stop_now(self, graceful: bool = False) -> None:
        """Kill it (the default), or ask it to shut down (SIGTERM) and wait, as a service manager's restart does."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
            try:
                proc.wait(timeout=60 if graceful else 10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc is not None:  # whatever it started in its group goes with it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.proc = None

    async def start(self) -> None:
        await asyncio.to_thread(self.wait_listening, self.launch())

    async def stop(self, graceful: bool = False) -> None:
        await asyncio.to_thread(self.stop_now, graceful)


def private_redis(folder: Path) -> Private:
    exe = shutil.which("redis-server") or "redis-server"
    return Private(lambda port: [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                                 "no", "--dir", str(folder)], folder)


def private_mosquitto(folder: Path) -> Private:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    conf = folder / "mosquitto.conf"
    server = Private(lambda port: [exe, "-c", str(conf)], folder)
    conf.write_text(f"listener {server.port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    return server


def private_rabbitmq(folder: Path) -> Private:
    """A RabbitMQ node of its own: its name, AMQP and distribution ports, configuration, database and logs all in
    `folder` (the machine's /etc/rabbitmq is not read), so stopping it touches nobody else's RabbitMQ. Messages on
    durable queues survive its restarts (the database stays in `folder`). It boots in about 5 s on a quiet machine."""
    script = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # the wrapper in /usr/sbin would switch to its own user
    exe = str(script) if script.exists() else (shutil.which("rabbitmq-server") or "rabbitmq-server")
    server = Private(lambda port: [exe], folder, boot_timeout=120)
    (folder / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{server.port}\nloopback_users = none\n")
    (folder / "rabbitmq-env.conf").write_text("")
    (folder / "enabled_plugins").write_text("[].\n")
    server.env = {
        "HOME": str(folder),  # its Erlang cookie
        "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
        "RABBITMQ_NODENAME": f"flowboard-test-{server.port}@localhost",
        "RABBITMQ_NODE_PORT": str(server.port),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
        "RABBITMQ_LOG_BASE": str(folder / "log"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    return server
