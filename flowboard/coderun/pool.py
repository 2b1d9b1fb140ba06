"""The pool of warm code workers the server talks to (as n8n's task runner): the server never runs user code itself.

A worker is a sandboxed Python (sandbox.py) that forks a fresh process per call (child.py). Workers start before
they are needed (`start`, or the first call) and stay warm; a worker that breaks the protocol, overruns its call's
time by more than a grace period or is cancelled mid-call is killed and replaced. Calls with the network allowed go
to a second pool whose workers share the machine's network; it starts on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from . import sandbox
from .protocol import ProtocolError, frame, read_frame

log = logging.getLogger(__name__)

Mode = Literal["bwrap", "rlimits"]
MAX_BYTES = 16 * 1024 * 1024  # the items a call may return, as JSON
FILE_LIMIT = 8 * 1024 * 1024  # the largest file a call may write (RLIMIT_FSIZE)
GRACE = 3.0  # seconds past a call's time limit before its worker counts as stuck


@dataclass
class CodeResult:
    items: list[dict[str, Any]]
    logs: list[str] = field(default_factory=list)
    seconds: float = 0.0


class CodeFailed(Exception):
    """The user's code failed, or was stopped; `line` and `item_index` say where when known."""

    def __init__(self, message: str, *, kind: str = "user", line: int | None = None, item_index: int | None = None,
                 logs: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.line = line
        self.item_index = item_index
        self.logs = logs or []


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process, info: dict[str, Any]):
        self.proc = proc
        self.info = info
        self.calls = 0

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def call(self, request: dict[str, Any], data: bytes, wait: float) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.calls += 1
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()
        async with asyncio.timeout(wait):
            answer = await read_frame(self.proc.stdout, int(request["max_bytes"]) + 4 * 1024 * 1024)
        if answer.get("id") != request["id"]:
            raise ProtocolError("the worker answered another call")
        return answer

    def kill(self) -> None:
        """SIGKILL to the worker's process group (its own session: bwrap or the worker, and what it forked). Not
        Process.kill() after it: Popen polls first and would reap the child behind asyncio's back."""
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()


    async def reap(self) -> None:
        """Kill the worker, wait for it, and close its pipes: nothing of it outlives the event loop (a pipe left open
        when the loop ends warns 'unclosed transport' later, in whatever runs then)."""
        self.kill()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self.proc.wait()
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
                    await self.proc.stdin.wait_closed()
                if self.proc.stdout is not None:
                    await self.proc.stdout.read()
        # Whatever is still open (stderr, or a pipe a straggler of the sandbox held past the 5 s): closed here, once
        # the process is known to have ended (closing before that would make asyncio poll and kill it itself)
        transport = getattr(self.proc, "_transport", None)
        if self.proc.returncode is not None and transport is not None and not transport.is_closing():
            transport.close()


class _Pool:
    def __init__(self) -> None:
        self.idle: list[Worker] = []
        self.count = 0
        self.changed = asyncio.Condition()


class CodeRunner:
    """Runs Python code on items in sandboxed worker processes. One per server; `aclose` ends the workers."""

    def __init__(self, size: int | None = None, sandbox_mode: str | None = None):
        self.size = size or max(2, min(4, os.cpu_count() or 2))
        wanted = sandbox_mode or os.environ.get("FLOWBOARD_CODE_SANDBOX", "auto")
        if wanted not in ("auto", "bwrap", "rlimits"):
            raise ValueError(f"FLOWBOARD_CODE_SANDBOX must be auto, bwrap or rlimits, not {wanted!r}")
        self._wanted = wanted
        self.mode: Mode | None = None
        self.mode_reason = ""
        self._pools: dict[bool, _Pool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._next_id = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._workers: set[Worker] = set()  # idle and busy
        self._noted = False  # a missing protection was logged
        self._closed = False  # aclose() is under way: a worker that comes up now is ended at once

    def _choose_mode(self) -> None:
        if self.mode is not None:
            return
        why = None if self._wanted == "rlimits" else sandbox.probe_bwrap()
        if self._wanted == "bwrap" and why:
            raise RuntimeError(f"the Code node's sandbox cannot start: {why}")
        if why is None and self._wanted != "rlimits":
            self.mode, self.mode_reason = "bwrap", "bubblewrap sandbox: own namespaces, minimal read-only files"
        else:
            self.mode = "rlimits"
            self.mode_reason = why or "chosen by FLOWBOARD_CODE_SANDBOX=rlimits"
            log.warning("Code node: no bubblewrap sandbox (%s); code runs with limits and a system-call filter "
                        "only, and can read the files your user can read", self.mode_reason)

    def _pool(self, network: bool) -> _Pool:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, the CLI): the old workers belong to the old one
            self._kill_all()
            self._pools = {}
            self._loop = loop
        pool = self._pools.get(network)
        if pool is None:
            pool = self._pools[network] = _Pool()
        return pool

    async def start(self) -> None:
        """Start the warm workers of the network-off pool now rather than at the first call."""
        self._choose_mode()
        pool = self._pool(False)
        missing = self.size - pool.count
        pool.count += missing
        if missing <= 0:
            return
        workers = await asyncio.gather(*(self._spawn(False) for _ in range(missing)), return_exceptions=True)
        async with pool.changed:
            for worker in workers:
                if isinstance(worker, Worker):
                    pool.idle.append(worker)
                else:
                    pool.count = max(0, pool.count - 1)
                    log.warning("Code node: a worker did not start: %s", worker)
            pool.changed.notify_all()  # calls waiting for a worker

    async def _spawn(self, network: bool) -> Worker:
        self._choose_mode()
        env = dict(sandbox.CLEAN_ENV)
        if self.mode == "bwrap":
            cmd = sandbox.bwrap_command(network)
            cwd = "/"
        else:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="flowboard-code-")
            cwd = tempfile.mkdtemp(dir=self._tmp.name)
            env["FLOWBOARD_CODE_TMP"] = cwd
            cmd = sandbox.rlimits_command()
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True)
        try:
            async with asyncio.timeout(30):
                assert proc.stdout is not None
                info = await read_frame(proc.stdout, 64 * 1024)
            if self._closed:
                raise ProtocolError("the pool was closed while the worker started")
        except (ProtocolError, TimeoutError) as exc:
            given_up = Worker(proc, {})
            given_up.kill()
            assert proc.stderr is not None
            stderr = ""
            with contextlib.suppress(TimeoutError):  # bounded: never hang on a pipe a straggler holds open
                async with asyncio.timeout(5):
                    stderr = (await proc.stderr.read(4096)).decode(errors="replace").strip()
            await given_up.reap()
            raise RuntimeError(f"the code worker did not start ({exc}): {stderr}") from None
        except BaseException:  # cancelled while it started
            await asyncio.shield(Worker(proc, {}).reap())
            raise
        info["mode"] = self.mode
        self._drain(proc)
        worker = Worker(proc, info)
        self._workers.add(worker)
        return worker

    def _drain(self, proc: asyncio.subprocess.Process) -> None:
        async def drain() -> None:
            assert proc.stderr is not None
            while line := await proc.stderr.readline():
                log.warning("code worker %s: %s", proc.pid, line.decode(errors="replace").rstrip()[:500])

        self._background(drain(), name=f"drain-{proc.pid}")

    def _background(self, coro: Any, name: str | None = None) -> None:
        task = asyncio.ensure_future(coro)
        if name:
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _acquire(self, network: bool) -> Worker:
        pool = self._pool(network)
        async with pool.changed:
            while True:
                while pool.idle:
                    worker = pool.idle.pop()
                    if worker.alive:
                        return worker
                    pool.count -= 1
                if pool.count < self.size:
                    pool.count += 1
                    break
                await pool.changed.wait()
        try:
            return await self._spawn(network)
        except BaseException:
            async with pool.changed:
                pool.count -= 1
                pool.changed.notify()
            raise

    async def _release(self, worker: Worker, network: bool, healthy: bool) -> None:
        pool = self._pool(network)
        if not healthy:
            self._workers.discard(worker)
            worker.kill()
            self._background(worker.reap())
        async with pool.changed:
            if healthy and worker.alive:
                pool.idle.append(worker)
            else:
                pool.count = max(0, pool.count - 1)
                if not network:  # keep the default pool warm
                    self._background(self._refill(), name="refill")
            pool.changed.notify()

    async def _refill(self) -> None:
        with contextlib.suppress(Exception):
            await self.start()

    async def run(self, code: str, items: list[dict[str, Any]], *, mode: str = "all", timeout: float = 10.0,
                  memory_mb: int = 256, network: bool = False, max_bytes: int = MAX_BYTES) -> CodeResult:
        """Run `code` on `items`: once with `items` (mode "all") or once per `item` (mode "each")."""
        if mode not in ("all", "each"):
            raise ValueError(f"mode must be 'all' or 'each', not {mode!r}")
        self._next_id += 1
        request = {"id": self._next_id, "code": code, "mode": mode, "items": items, "timeout": float(timeout),
                   "memory_mb": int(memory_mb), "network": bool(network), "max_bytes": int(max_bytes),
                   "file_limit": FILE_LIMIT}
        try:
            data = frame(request)
        except TypeError as exc:  # orjson's error: the engine hands nodes JSON items, so this is a bug upstream
            raise CodeFailed(f"the input items are not JSON data ({exc})", kind="input") from None
        started = time.perf_counter()
        worker = await self._acquire(network)
        healthy = False
        try:
            answer = await worker.call(request, data, float(timeout) + GRACE)
            healthy = True
        except TimeoutError:
            raise CodeFailed(f"the code ran longer than its time limit of {timeout:g} s and was stopped",
                             kind="timeout") from None
        except (ProtocolError, ConnectionError, BrokenPipeError) as exc:
            raise CodeFailed(f"the code's worker process failed ({exc}); it was replaced", kind="crash") from None
        finally:
            await asyncio.shield(self._release(worker, network, healthy))
        logs = [str(line) for line in answer.get("logs") or []]
        if answer.get("notes") and not self._noted:
            self._noted = True
            log.warning("Code node: a protection is missing: %s", "; ".join(map(str, answer["notes"])))
        if not answer.get("ok"):
            error = answer.get("error")
            if not isinstance(error, dict):
                error = {}
            raise CodeFailed(str(error.get("message") or "the code failed"), kind=str(error.get("kind") or "user"),
                             line=_int(error.get("line")), item_index=_int(error.get("item_index")), logs=logs)
        out = answer.get("items")
        if not isinstance(out, list) or not all(isinstance(item, dict) for item in out):
            raise CodeFailed("the code's worker sent items that are not a list of objects", kind="crash")
        return CodeResult(out, logs, time.perf_counter() - started)

    def _kill_all(self) -> None:
        for worker in self._workers:
            worker.kill()
        self._workers.clear()
        for pool in self._pools.values():
            pool.idle.clear()

    async def aclose(self) -> None:
        """End every worker and wait for them (a call still running fails)."""
        self._closed = True
        if self._loop is asyncio.get_running_loop():
            refills = [task for task in self._tasks if task.get_name() == "refill"]
            for task in refills:
                task.cancel()
            if refills:  # bounded: a worker that was starting is killed by its own task, but never wait forever
                await asyncio.wait(refills, timeout=5)
            workers = list(self._workers)
            self._kill_all()
            await asyncio.gather(*(worker.reap() for worker in workers))
            if self._tasks:
                await asyncio.wait(list(self._tasks), timeout=5)
        else:
            self._kill_all()
        for task in list(self._tasks):
            task.cancel()
        self._pools = {}
        self._closed = False  # usable again: the next call starts new workers
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
