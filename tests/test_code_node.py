"""The Code node: normal behaviour (both modes, print, located errors, JSON-only results), then a corpus of attacks,
each refused with a clear step error while the server's process goes on unaffected. Everything runs for real: the
sandboxed worker pool, local servers, a real SQLite file. Under CI the bubblewrap sandbox must be the one that ran.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
from pathlib import Path
from typing import Any

import pytest

from flowboard.coderun import CodeRunner, sandbox
from flowboard.engine import Engine, RunResult, StepStatus
from flowboard.errors import FlowInvalid
from flowboard.sdk import Services
from flowboard.store import Store
from flowboard.store.recorder import SqlRecorder

from .conftest import IN_CI, require_service
from .nodeflows import plan_of

BWRAP_WHY = sandbox.probe_bwrap()


@pytest.fixture
async def engine():  # type: ignore[no-untyped-def]
    eng = Engine(services=Services())
    yield eng
    await eng.aclose()


def node(code: str, **config: Any) -> dict[str, Any]:
    return {"id": "code", "type": "code", "name": "Code", "config": {"code": code, **config}}


async def run_code(engine: Engine, code: str, items: list[dict[str, Any]] | None = None, **config: Any) -> RunResult:
    return await engine.run(plan_of([node(code, **config)], ["t > code"]), items if items is not None else [{}])


def ok(result: RunResult) -> list[dict[str, Any]]:
    step = result.steps["code"]
    assert step.status is StepStatus.succeeded, step.error
    return step.outputs["main"]


def failed(result: RunResult) -> str:
    step = result.steps["code"]
    assert step.status is StepStatus.failed, step.outputs
    assert step.error is not None
    return str(step.error["message"])


def runner(engine: Engine) -> CodeRunner:
    return engine.services.code_runner()


# -- the sandbox in use ----------------------------------------------------------------------------------------------


async def test_ci_runs_the_bubblewrap_sandbox(engine: Engine) -> None:
    require_service("bubblewrap namespaces", BWRAP_WHY is None)
    ok(await run_code(engine, "return items"))
    assert runner(engine).mode == "bwrap", runner(engine).mode_reason
    if IN_CI:
        assert os.environ.get("FLOWBOARD_CODE_SANDBOX", "auto") in ("auto", "bwrap")


async def test_the_code_sees_a_minimal_world(engine: Engine) -> None:
    require_service("bubblewrap namespaces", BWRAP_WHY is None)
    code = """\
import os, socket
return [{"env": dict(os.environ), "root": sorted(os.listdir("/")), "cwd": os.getcwd(), "pid": os.getpid(),
         "host": socket.gethostname(), "etc": os.path.exists("/etc"), "home": os.path.exists("/home"),
         "proc": os.path.exists("/proc")}]
"""
    seen = ok(await run_code(engine, code))[0]
    assert set(seen["env"]) <= {"PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "FLOWBOARD_CODE_TMP", "PWD"}
    assert {"etc", "home", "proc", "var", "run", "work"}.isdisjoint(seen["root"])
    assert seen["host"] == "sandbox" and seen["pid"] < 10  # its own pid namespace
    assert not seen["etc"] and not seen["home"] and not seen["proc"]


# -- normal behaviour ------------------------------------------------------------------------------------------------


async def test_once_for_all_items(engine: Engine) -> None:
    code = """\
total = sum(item["n"] for item in items)
print("total", total)
return [{**item, "share": item["n"] / total} for item in items]
"""
    result = await run_code(engine, code, [{"n": 1}, {"n": 3}])
    assert ok(result) == [{"n": 1, "share": 0.25}, {"n": 3, "share": 0.75}]
    assert result.steps["code"].logs == ["total 4"]


async def test_the_default_example_runs(engine: Engine) -> None:
    result = await engine.run(plan_of([{"id": "code", "type": "code"}], ["t > code"]), [{"a": 1}, {"a": 2}])
    assert ok(result) == [{"a": 1, "seen": True}, {"a": 2, "seen": True}]
    assert result.steps["code"].logs == ["2 items"]


@pytest.mark.parametrize(("code", "expected"), [
    ("return {**item, 'double': item['n'] * 2}", [{"n": 1, "double": 2}, {"n": 2, "double": 4}, {"n": 3, "double": 6}]),
    ("if item['n'] % 2:\n    return item", [{"n": 1}, {"n": 3}]),  # None drops the item
    ("return [item, item]", [{"n": 1}, {"n": 1}, {"n": 2}, {"n": 2}, {"n": 3}, {"n": 3}]),
    ("return []", []),
    ("item['seen'] = True\nreturn item", [{"n": 1, "seen": True}, {"n": 2, "seen": True}, {"n": 3, "seen": True}]),
])
async def test_once_for_each_item(engine: Engine, code: str, expected: list[dict[str, Any]]) -> None:
    assert ok(await run_code(engine, code, [{"n": 1}, {"n": 2}, {"n": 3}], mode="each")) == expected


async def test_print_output_is_kept_with_the_step_also_when_the_code_fails(engine: Engine) -> None:
    result = await run_code(engine, "print('a', 1)\nprint('b\\nc')\nraise ValueError('nope')")
    assert failed(result) == "line 3: ValueError: nope"
    assert result.steps["code"].logs == ["a 1", "b", "c"]
    result = await run_code(engine, "print(item['n'])\nreturn item", [{"n": 1}, {"n": 2}], mode="each")
    assert result.steps["code"].logs == ["1", "2"]


async def test_printed_lines_are_stored_and_read_back(engine: Engine, tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'flowboard.db'}")
    recorder = SqlRecorder(store)
    eng = Engine(services=engine.services, recorder=recorder)
    result = await eng.run(plan_of([node("print('hello')\nreturn items")], ["t > code"]), [{}])
    await recorder.aclose()
    assert store.get_steps(result.run_id)["code"].logs == ["hello"]
    store.close()


@pytest.mark.parametrize(("code", "message"), [
    ("x = 1\ny = (\n", "line 2: "),
    ("x = 1\nreturn items +", "line 2: invalid syntax"),
    ("a = 1\nb = 2\nreturn [{'x': undefined_name}]", "line 3: NameError: name 'undefined_name' is not defined"),
    ("return [{'x': 1 / 0}]", "line 1: ZeroDivisionError: division by zero"),
    ("y = {}\nreturn [y['missing']]", "line 2: KeyError: 'missing'"),
    ("def f(x):\n    return x['k']\n\nreturn [f({})]", "line 2: KeyError: 'k'"),
    ("import no_such_module", "line 1: ModuleNotFoundError: No module named 'no_such_module'"),
    ("def f():\n    return f()\nf()", "line 2: the code went too deep"),
    ("raise SystemExit(3)", "line 1: SystemExit: 3"),
    ("pass", "the code returned nothing; end it with `return items`"),
    ("return 5", "the code returned int; return an object, a list of objects"),
    ("return ['text']", "every item must be an object"),
])
async def test_errors_name_the_line(engine: Engine, code: str, message: str) -> None:
    assert message in failed(await run_code(engine, code))


async def test_an_error_in_each_mode_names_the_item(engine: Engine) -> None:
    result = await run_code(engine, "return {'r': 10 / item['n']}", [{"n": 1}, {"n": 0}, {"n": 2}], mode="each")
    assert failed(result) == "line 1: ZeroDivisionError: division by zero"
    assert result.steps["code"].error["item_index"] == 1  # type: ignore[index]


@pytest.mark.parametrize(("code", "message"), [
    ("return [{'x': {1, 2}}]", "item 1.x is a set, which is not JSON data"),
    ("import datetime\nreturn [{'when': datetime.datetime(2026, 1, 1)}]", "item 1.when is a datetime"),
    ("return [{'x': float('nan')}]", "item 1.x is nan, which is not a number JSON data can hold"),
    ("return [{'x': float('inf')}]", "is inf, which is not a number"),
    ("return [{'x': b'bytes'}]", "item 1.x is a bytes"),
    ("return [{}, {'x': [1, (2, 3)]}]", "item 2.x[1] is a tuple"),
    ("return [{1: 'a'}]", "item 1 has the key 1: keys must be text"),
    ("return [{'x': 2 ** 70}]", "item 1.x is a whole number too large"),
    ("class A: pass\nreturn [{'x': A()}]", "item 1.x is a A"),
    ("x = {}\nfor _ in range(100):\n    x = {'a': x}\nreturn [x]", "nested more than 64 levels deep"),
    ("return [{'f': len}]", "builtin_function_or_method"),
])
async def test_results_must_be_json_data(engine: Engine, code: str, message: str) -> None:
    assert message in failed(await run_code(engine, code))


async def test_expressions_are_refused_in_the_code(engine: Engine) -> None:
    with pytest.raises(FlowInvalid) as caught:
        plan_of([node("return [{'x': '{{ item.secret }}'}]")], ["t > code"])
    assert "expressions are not allowed here" in str(caught.value)


@pytest.mark.parametrize(("config", "message"), [
    ({"timeout": 0}, "timeout: must be more than 0"),
    ({"timeout": 301}, "timeout: must be at most 300"),
    ({"memory_mb": 10}, "memory_mb: must be at least 64"),
    ({"mode": "sometimes"}, "mode: must be one of"),
    ({"code": ""}, "code: must have at least 1 character"),
])
async def test_config_is_checked(config: dict[str, Any], message: str) -> None:
    with pytest.raises(FlowInvalid) as caught:
        plan_of([{"id": "code", "type": "code", "config": {"code": "return items", **config}}], ["t > code"])
    assert message in str(caught.value)


async def test_calls_share_nothing(engine: Engine) -> None:
    first = """\
import builtins, json, os
builtins.stolen = []
json.dumps = None
open("left-behind", "w").write("x")
for place in ("/tmp/stash", "/dev/shm/stash", "/stash", "/sandbox/stash", "/dev/stash"):
    try:
        open(place, "w").write("x")
    except OSError:
        pass
os.makedirs("/tmp/locked/deeper")
open("/tmp/locked/deeper/f", "w").write("x")
os.chmod("/tmp/locked/deeper", 0)
os.chmod("/tmp/locked", 0)
return items
"""
    ok(await run_code(engine, first))
    second = """\
import builtins, json, os
places = ["/tmp/stash", "/dev/shm/stash", "/stash", "/sandbox/stash", "/dev/stash", "/tmp/locked"]
return [{"stolen": hasattr(builtins, "stolen"), "dumps": json.dumps is not None, "files": os.listdir("."),
         "left": [p for p in places if os.path.exists(p)]}]
"""
    for _ in range(3):  # whichever worker answers
        assert ok(await run_code(engine, second)) == [{"stolen": False, "dumps": True, "files": [], "left": []}]


async def test_calls_run_side_by_side(engine: Engine) -> None:
    code = "import time\ntime.sleep(0.3)\nreturn [{'n': item['n'] * 2} for item in items]"
    results = await asyncio.gather(*(run_code(engine, code, [{"n": n}]) for n in range(6)))
    assert [ok(r) for r in results] == [[{"n": n * 2}] for n in range(6)]


async def test_threads_work_within_the_limits(engine: Engine) -> None:
    code = """\
import threading
out = []
threads = [threading.Thread(target=out.append, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
return [{"n": sorted(out)}]
"""
    assert ok(await run_code(engine, code)) == [{"n": list(range(8))}]


# -- attacks: each refused, the server unaffected --------------------------------------------------------------------


class Target:
    """What an attack aims at: a data folder with a secret, an SQLite database, a secret in the environment, a local
    TCP server, and the server's own pid."""

    def __init__(self, tmp_path: Path):
        self.secret = "s3cret-" + secrets.token_hex(8)
        self.data = tmp_path / "data"
        self.data.mkdir()
        (self.data / "secret.txt").write_text(self.secret)
        self.db = self.data / "flowboard.db"
        store = Store(f"sqlite:///{self.db}")
        store.close()
        self.pid = os.getpid()
        self.port = 0
        self.received: list[bytes] = []

    async def serve(self) -> asyncio.Server:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.received.append(await reader.read(100))
            writer.write(b"hello from the server")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        return server

    def item(self) -> dict[str, Any]:
        return {"data": str(self.data), "db": str(self.db), "pid": self.pid, "port": self.port}


#: (name, code, what the step error says). The code gets the target as `items[0]`.
ATTACKS = [
    ("read the data folder", "t = items[0]\nreturn [{'x': open(t['data'] + '/secret.txt').read()}]",
     "FileNotFoundError"),
    ("list the data folder", "import os\nreturn [{'x': os.listdir(items[0]['data'])}]", "FileNotFoundError"),
    ("read the SQLite database", "return [{'x': open(items[0]['db'], 'rb').read().hex()}]", "FileNotFoundError"),
    ("open the database with sqlite3",
     "import sqlite3\nc = sqlite3.connect(items[0]['db'])\nreturn [{'x': c.execute('select * from runs').fetchall()}]",
     "OperationalError"),
    ("read /etc/passwd", "return [{'x': open('/etc/passwd').read()}]", "FileNotFoundError"),
    ("read the home folder", "import os\nreturn [{'x': os.listdir(os.path.expanduser('~'))}]", "Error"),
    ("read the server's environment", "return [{'x': open('/proc/1/environ').read()}]", "FileNotFoundError"),
    ("read the parent's environment",
     "import os\nreturn [{'x': open(f'/proc/{items[0][\"pid\"]}/environ').read()}]", "FileNotFoundError"),
    ("import the server's libraries", "import flowboard", "ModuleNotFoundError"),
    ("import an installed library", "import httpx", "ModuleNotFoundError"),
    ("connect to a local server",
     "import socket\ns = socket.create_connection(('127.0.0.1', items[0]['port']), timeout=2)\n"
     "return [{'x': s.recv(100).decode()}]", "PermissionError"),
    ("fork bomb", "import os\nwhile True:\n    os.fork()", "line 3: PermissionError"),
    ("start a program", "import subprocess\nsubprocess.run(['/bin/ls', '/'])", "PermissionError"),
    ("run a shell", "import os\nrc = os.system('ls /')\nassert rc == 0, rc", "line 3: AssertionError"),
    ("replace the process", "import os\nos.execv('/bin/ls', ['ls'])", "PermissionError"),
    ("multiprocessing", "import multiprocessing\np = multiprocessing.Process(target=print)\np.start()",
     "PermissionError"),
    ("allocate 10 GB at once", "x = bytearray(10 * 1024 ** 3)", "line 1: the code needed more memory than its limit"),
    ("allocate 10 GB bit by bit", "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 1024 ** 2))",
     "more memory than its limit"),
    ("a list of 10 billion", "x = [0] * (10 ** 10)", "more memory than its limit"),
    ("thread bomb", "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()",
     "line 3: RuntimeError: can't start new thread"),
    ("an endless loop", "while True:\n    pass", "the code ran longer than its time limit of 1 s"),
    ("an endless sleep", "import time\ntime.sleep(1000)", "the code ran longer than its time limit of 1 s"),
    ("ignore the stop signals",
     "import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU):\n"
     "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", "time limit"),
    ("swallow every exception", "while True:\n    try:\n        while True:\n            pass\n"
                                "    except BaseException:\n        pass", "ran longer than its time limit"),
    ("huge output", "return [{'x': 'a' * (20 * 1024 ** 2)}]", "the code returned more than 16 MB of data"),
    ("a million items", "return [{'n': n, 'pad': 'x' * 20} for n in range(1_000_000)]", "more than 16 MB"),
    ("write a huge file", "open('big', 'wb').write(b'x' * (100 * 1024 ** 2))", "File too large"),
    ("fill the disk", "for n in range(100):\n    open(f'f{n}', 'wb').write(b'x' * (7 * 1024 ** 2))",
     "No space left on device"),
    ("write outside its folder", "open('/usr/evil', 'w').write('x')", "Error"),
    ("poke memory with ctypes", "import ctypes\nx = ctypes.cast(8, ctypes.POINTER(ctypes.c_long))[0]\nreturn items",
     "crashed its process (SIGSEGV)"),
    ("overwrite memory with ctypes", "import ctypes\nctypes.memset(8, 1, 4096)\nreturn items", "crashed its process"),
    ("kill the server", "import os\nos.kill(items[0]['pid'], 9)", "line 2: PermissionError"),
    ("kill its parent", "import os\nos.kill(os.getppid(), 9)", "line 2: PermissionError"),
    ("kill every process", "import os\nos.kill(-1, 9)", "line 2: PermissionError"),
    ("kill its process group", "import os\nos.killpg(0, 9)", "line 2: PermissionError"),
    ("kill itself", "import os\nos.kill(os.getpid(), 9)", "ended by signal SIGKILL"),
    ("leave without an answer", "import os\nos._exit(0)", "stopped without an answer"),
    ("trace the parent", "import ctypes\nlibc = ctypes.CDLL(None)\nassert libc.ptrace(16, os.getppid(), 0, 0) == 0",
     "Error"),
    ("a new user namespace", "import ctypes\nassert ctypes.CDLL(None).unshare(0x10000000) == 0",
     "line 2: AssertionError"),
    ("a new session to escape the kill", "import os\nos.setsid()", "PermissionError"),
]


def limit(message: str) -> float:
    """1 s for the attacks that must be stopped by the time limit, room enough for the others to fail otherwise."""
    return 1 if "time limit" in message else 20


@pytest.fixture
async def target(tmp_path: Path):  # type: ignore[no-untyped-def]
    target = Target(tmp_path)
    server = await target.serve()
    yield target
    server.close()
    await server.wait_closed()


@pytest.mark.parametrize(("name", "code", "message"), ATTACKS, ids=[a[0] for a in ATTACKS])
async def test_attack_is_refused(engine: Engine, target: Target, name: str, code: str, message: str,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    require_service("bubblewrap namespaces", BWRAP_WHY is None)
    monkeypatch.setenv("FLOWBOARD_TEST_SECRET", target.secret)
    pid = os.getpid()
    result = await run_code(engine, code, [target.item()], timeout=limit(message))
    text = failed(result)
    assert message in text, text
    assert target.secret not in json.dumps(result.steps["code"].outputs) + json.dumps(result.steps["code"].logs)
    assert runner(engine).mode == "bwrap"
    assert os.getpid() == pid
    assert ok(await run_code(engine, "return [{'after': True}]")) == [{"after": True}]  # the pool recovered


async def test_the_environment_holds_no_secret(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-" + secrets.token_hex(8)
    monkeypatch.setenv("FLOWBOARD_TEST_SECRET", secret)
    monkeypatch.setenv("FLOWBOARD_DATABASE_URL", f"postgresql://user:{secret}@db/x")
    await runner(engine).aclose()  # workers started from here on see this environment, if anything leaked
    out = ok(await run_code(engine, "import os\nreturn [{'env': dict(os.environ)}]"))
    assert secret not in json.dumps(out)
    assert "FLOWBOARD_TEST_SECRET" not in out[0]["env"]


async def test_network_is_off_unless_allowed(engine: Engine, target: Target) -> None:
    code = "import socket\ns = socket.create_connection(('127.0.0.1', items[0]['port']), timeout=5)\n" \
           "s.sendall(b'hi')\nreturn [{'x': s.recv(100).decode()}]"
    assert "line 2: PermissionError" in failed(await run_code(engine, code, [target.item()]))
    assert target.received == []
    assert ok(await run_code(engine, code, [target.item()], allow_network=True)) == [
        {"x": "hello from the server"}]
    assert target.received == [b"hi"]


async def test_the_server_is_unaffected_by_the_whole_corpus(engine: Engine, target: Target) -> None:
    """Every attack in a row against one pool; the server's process, memory and the pool come through."""
    require_service("bubblewrap namespaces", BWRAP_WHY is None)
    ok(await run_code(engine, "return items"))
    pid = os.getpid()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results = await asyncio.gather(*(run_code(engine, code, [target.item()], timeout=limit(message))
                                     for _, code, message in ATTACKS))
    for (name, _, message), result in zip(ATTACKS, results, strict=True):
        assert message in failed(result), name
    assert os.getpid() == pid
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert grown_mb < 100, f"the server's memory grew by {grown_mb:.0f} MB"
    assert ok(await run_code(engine, "return [{'n': len(items)}]", [{}, {}])) == [{"n": 2}]
    alive = [w for w in runner(engine)._workers if w.alive]
    assert 0 < len(alive) <= 2 * runner(engine).size


# -- the fallback without bubblewrap ---------------------------------------------------------------------------------


@pytest.fixture
async def rlimits_engine():  # type: ignore[no-untyped-def]
    services = Services()
    services._code_runner = CodeRunner(sandbox_mode="rlimits")
    eng = Engine(services=services)
    yield eng
    await eng.aclose()


@pytest.mark.parametrize(("code", "message"), [
    ("import os\nos.fork()", "PermissionError"),
    ("import subprocess\nsubprocess.run(['/bin/true'])", "PermissionError"),
    ("import socket\nsocket.socket()", "PermissionError"),
    ("x = bytearray(10 * 1024 ** 3)", "more memory than its limit"),
    ("while True:\n    pass", "ran longer than its time limit"),
    ("import os\nos.kill(os.getppid(), 9)", "PermissionError"),
    ("open('big', 'wb').write(b'x' * (100 * 1024 ** 2))", "File too large"),
])
async def test_without_bubblewrap_limits_and_the_filter_still_hold(rlimits_engine: Engine, code: str,
                                                                   message: str) -> None:
    result = await run_code(rlimits_engine, code, timeout=limit(message))
    assert message in failed(result)
    assert runner(rlimits_engine).mode == "rlimits"
    out = ok(await run_code(rlimits_engine, "import os\nreturn [{'env': sorted(os.environ), 'cwd': os.getcwd()}]"))
    assert set(out[0]["env"]) <= {"PATH", "LANG", "PYTHONDONTWRITEBYTECODE", "FLOWBOARD_CODE_TMP", "PWD"}
    assert "flowboard-code-" in out[0]["cwd"]  # an empty folder of its own


async def test_a_cancelled_call_ends_its_worker(engine: Engine) -> None:
    pool = runner(engine)
    await pool.start()
    task = asyncio.create_task(pool.run("import time\ntime.sleep(60)\nreturn items", [{}]))
    while not any(w.calls for w in pool._workers):
        await asyncio.sleep(0.01)
    busy = next(w for w in pool._workers if w.calls)
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(busy.proc.wait(), 10)  # killed, not left running the code
    assert busy not in pool._workers
    assert (await pool.run("return [{'next': 1}]", [])).items == [{"next": 1}]


@pytest.mark.parametrize("how", ["fails", "is cancelled"])
async def test_a_worker_given_up_while_it_starts_leaves_nothing_open(engine: Engine, how: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that stops before it says hello is a clear error with what it wrote; one whose start is cancelled is
    killed. Either way its process is reaped, and the next call gets a good worker."""
    import sys

    pool = runner(engine)
    script = ("import sys; sys.stderr.write('no sandbox here'); sys.exit(3)" if how == "fails" else
              "import time; time.sleep(60)")
    for name in ("bwrap_command", "rlimits_command"):
        monkeypatch.setattr(sandbox, name, lambda *args: [sys.executable, "-c", script])
    started: list[asyncio.subprocess.Process] = []
    spawn = asyncio.create_subprocess_exec

    async def watched(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        started.append(await spawn(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(asyncio, "create_subprocess_exec", watched)
    if how == "fails":
        with pytest.raises(RuntimeError, match=r"the code worker did not start .*no sandbox here"):
            await pool._spawn(False)
    else:
        task = asyncio.create_task(pool._spawn(False))
        while not started:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (proc,) = started
    assert proc.returncode is not None  # killed (a cancelled one would sleep a minute) and reaped
    monkeypatch.undo()
    assert (await pool.run("return [{'next': 1}]", [])).items == [{"next": 1}]


async def test_the_steps_own_timeout_also_ends_the_call(engine: Engine) -> None:
    code = "import time\ntime.sleep(60)\nreturn items"
    flow = [{**node(code, timeout=100), "settings": {"timeout": 1}}]
    result = await engine.run(plan_of(flow, ["t > code"]), [{}])
    assert failed(result) == "timed out after 1 s"
    assert ok(await run_code(engine, "return [{'next': 1}]")) == [{"next": 1}]


async def test_input_that_is_not_json_data_is_refused_before_any_worker(engine: Engine) -> None:
    from flowboard.coderun import CodeFailed

    with pytest.raises(CodeFailed, match="the input items are not JSON data"):
        await runner(engine).run("return items", [{"x": {1, 2}}])
    assert (await runner(engine).run("return items", [{"x": 1}])).items == [{"x": 1}]
