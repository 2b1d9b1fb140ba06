"""The worker inside the sandbox: a warm Python that forks one short-lived process per call.

Started as `python -I -S child.py` with a clean environment (inside bubblewrap when the machine allows it). It speaks
the protocol of protocol.py on fds 0 and 1 (requests in, answers out), and for each request forks a process that
locks itself down (rlimits, no new privileges, the seccomp filter of seccomp.py, stdout and stderr to nowhere),
runs the user's code once, and writes its answer into a pipe this worker reads with a size cap and a deadline. A call
that overruns its time is killed; nothing of one call survives into the next, since each runs in a fresh fork.

Standard library only (orjson when it is bound into the sandbox): this file is not imported by the server.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))

import seccomp

try:
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    loads = orjson.loads
except ImportError:  # pragma: no cover - orjson is bound into the sandbox; stay usable without it
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode()

    loads = json.loads  # type: ignore[assignment]

LOG_LIMIT = 64 * 1024  # characters of print() output kept per call
MAX_DEPTH = 64  # nesting of the returned items
MAX_INT = 2**63


# -- framing on raw fds -----------------------------------------------------------------------------------------------

def read_exact(fd: int, size: int) -> bytes | None:
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, message: dict[str, Any]) -> None:
    body = dumps(message)
    write_all(fd, len(body).to_bytes(4, "big") + body)


# -- the call, inside the forked process ------------------------------------------------------------------------------

class Capture(io.TextIOBase):
    """print() output, kept up to LOG_LIMIT characters."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.cut = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() needs text, not {type(text).__name__}")
        room = LOG_LIMIT - self.size
        if room <= 0:
            self.cut = True
        else:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
            self.cut = self.cut or len(text) > room
        return len(text)

    def lines(self) -> list[str]:
        text = "".join(self.parts)
        out = text.splitlines()
        if self.cut:
            out.append(f"… printed output cut at {LOG_LIMIT:,} characters")
        return out


class UserError(Exception):
    def __init__(self, message: str, line: int | None = None, item_index: int | None = None, kind: str = "user"):
        super().__init__(message)
        self.message, self.line, self.item_index, self.kind = message, line, item_index, kind


def compile_code(code: str, param: str) -> Any:
    """The user's code as the body of a function of `items` or `item`, so `return` works at its top level, with the
    user's own line numbers."""
    try:
        tree = ast.parse(code, "<code>")
    except SyntaxError as exc:
        raise UserError(f"{exc.msg}", exc.lineno, kind="syntax") from None
    body = tree.body or [ast.Pass()]
    args = ast.arguments(posonlyargs=[], args=[ast.arg(arg=param)], kwonlyargs=[], kw_defaults=[], defaults=[])
    extra: dict[str, Any] = {"type_params": []} if sys.version_info >= (3, 12) else {}
    func = ast.FunctionDef(name="code", args=args, body=body, decorator_list=[], returns=None, **extra)
    module = ast.Module(body=[func], type_ignores=[])
    ast.fix_missing_locations(module)
    try:
        compiled = compile(module, "<code>", "exec")
    except SyntaxError as exc:
        raise UserError(f"{exc.msg}", exc.lineno, kind="syntax") from None
    scope: dict[str, Any] = {"__name__": "__code__", "__builtins__": __builtins__}
    exec(compiled, scope)
    return scope["code"]


def user_line(exc: BaseException) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == "<code>":
            line = lineno
    return line


def describe(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "the code needed more memory than its limit"
    if isinstance(exc, RecursionError):
        return "the code went too deep (endless recursion?)"
    if isinstance(exc, PermissionError) and exc.errno == errno.EPERM:
        return (f"{type(exc).__name__}: {exc} (the Code node does not let code start programs, signal other "
                f"processes, or use the network unless the node allows it)")
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_json(value: Any, where: str, depth: int = 0) -> int:
    """Refuse what is not plain JSON data, naming where it is. Returns about how many bytes its JSON takes."""
    if depth > MAX_DEPTH:
        raise UserError(f"{where} is nested more than {MAX_DEPTH} levels deep")
    kind = type(value)
    if kind is str:
        return len(value) + 2
    if value is None or kind is bool:
        return 5
    if kind is int:
        if not -MAX_INT <= value < MAX_INT:
            raise UserError(f"{where} is a whole number too large for JSON data")
        return 20
    if kind is float:
        if not math.isfinite(value):
            raise UserError(f"{where} is {value}, which is not a number JSON data can hold")
        return 24
    if kind is dict:
        size = 2
        for key, inner in value.items():
            if type(key) is not str:
                raise UserError(f"{where} has the key {key!r}: keys must be text")
            size += len(key) + 4 + check_json(inner, f"{where}.{key}", depth + 1)
        return size
    if kind is list:
        size = 2
        for index, inner in enumerate(value):
            size += 1 + check_json(inner, f"{where}[{index}]", depth + 1)
        return size
    raise UserError(f"{where} is a {kind.__name__}, which is not JSON data (use text, numbers, true/false, "
                    f"null, lists and objects)")


def too_big(cap: int) -> str:
    return f"the code returned more than {cap // (1024 * 1024)} MB of data; return fewer or smaller items"


def as_items(result: Any, what: str, item_index: int | None = None) -> list[dict[str, Any]]:
    if isinstance(result, dict):
        result = [result]
    if not isinstance(result, list):
        raise UserError(f"{what} returned {type(result).__name__}; return an object, a list of objects"
                        + (", or None to drop the item" if item_index is not None else ""), item_index=item_index)
    for index, item in enumerate(result):
        if not isinstance(item, dict):
            raise UserError(f"{what} returned a list holding a {type(item).__name__} at position {index + 1}; "
                            f"every item must be an object like {{\"name\": \"value\"}}", item_index=item_index)
    return result


def run_call(request: dict[str, Any]) -> dict[str, Any]:
    mode = request["mode"]
    items = request["items"]
    capture = Capture()
    sys.stdout = sys.stderr = capture
    out: list[dict[str, Any]] = []
    index: int | None = None
    try:
        func = compile_code(request["code"], "items" if mode == "all" else "item")
        if mode == "all":
            result = func(items)
            if result is None:
                raise UserError("the code returned nothing; end it with `return items` (a list of objects)")
            out = as_items(result, "the code")
        else:
            for index, item in enumerate(items):
                result = func(item)
                if result is not None:
                    out.extend(as_items(result, "the code", index))
            index = None
        size, cap = 0, int(request["max_bytes"])
        for n, item in enumerate(out):
            size += check_json(item, f"item {n + 1}")
            if size > cap:
                raise UserError(too_big(cap), kind="output")
        body = {"ok": True, "items": out}
    except UserError as exc:
        body = {"ok": False, "error": {"message": exc.message, "line": exc.line, "kind": exc.kind,
                                       "item_index": exc.item_index if exc.item_index is not None else index}}
    except BaseException as exc:  # the user's exception, whatever it is (SystemExit too)
        kind = "memory" if isinstance(exc, MemoryError) else "user"
        body = {"ok": False, "error": {"message": describe(exc), "line": user_line(exc), "kind": kind,
                                       "item_index": index}}
    finally:
        sys.stdout = sys.__stdout__
        sys.stderr = sys.__stderr__
    body["logs"] = capture.lines()
    return body


def lock_down(request: dict[str, Any], result_fd: int) -> list[str]:
    """Limits for this call's process, for good. Returns notes on protections that could not be set."""
    notes = []
    memory = int(request["memory_mb"]) * 1024 * 1024
    limits = [
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_DATA, memory),
        (resource.RLIMIT_FSIZE, int(request["file_limit"])),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_CPU, math.ceil(float(request["timeout"])) + 1),
    ]
    for which, value in limits:
        resource.setrlimit(which, (value, value))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, result_fd)
    os.closerange(result_fd + 1, 1 << 16)
    why = seccomp.install(os.getpid(), bool(request.get("network")))
    if why:
        notes.append(why)
    return notes


def child_main(request: dict[str, Any], result_fd: int, workdir: str) -> None:
    try:
        seccomp.die_with_parent()
        os.chdir(workdir)
        notes = lock_down(request, result_fd)
        body = run_call(request)
        if notes:
            body["notes"] = notes
        try:
            data = dumps(body)
        except Exception as exc:  # check_json passed, so this is a bug, or memory
            data = dumps({"ok": False, "logs": [], "error": {"message": f"could not send the result: {exc}",
                                                             "kind": "crash", "line": None, "item_index": None}})
        write_all(result_fd, data)
    finally:
        os._exit(0)


# -- the worker loop --------------------------------------------------------------------------------------------------

def call(request: dict[str, Any], workdir: str) -> dict[str, Any]:
    read_fd, write_fd = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        child_main(request, write_fd, workdir)
    os.close(write_fd)
    deadline = started + float(request["timeout"])
    cap = int(request["max_bytes"])
    chunks: list[bytes] = []
    size = 0
    failure: dict[str, Any] | None = None
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                failure = {"kind": "timeout", "message": f"the code ran longer than its time limit of "
                                                         f"{float(request['timeout']):g} s and was stopped"}
                break
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if size > cap:
                failure = {"kind": "output", "message": too_big(cap)}
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        if failure is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    elapsed = time.monotonic() - started
    if failure is not None:
        return {"ok": False, "logs": [], "error": {**failure, "line": None, "item_index": None}, "seconds": elapsed}
    if chunks and os.WIFEXITED(status):
        try:
            body = loads(b"".join(chunks))
            body["seconds"] = elapsed
            return body
        except Exception:
            pass
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals.__members__.values() else str(sig)
        message = f"the code's process was ended by signal {name}"
        if sig == signal.SIGXCPU:
            message = "the code used more processor time than its time limit and was stopped"
        elif sig == signal.SIGXFSZ:
            message = "the code wrote a file larger than its limit and was stopped"
        elif sig in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGABRT):
            message = (f"the code crashed its process ({name}): it touched memory it may not (ctypes?) or ran out "
                       f"of memory inside a library")
    else:
        message = "the code's process stopped without an answer (did it call os._exit, or run out of memory?)"
    return {"ok": False, "logs": [], "seconds": elapsed,
            "error": {"kind": "crash", "message": message, "line": None, "item_index": None}}


def main() -> None:
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    workroot = os.environ.get("FLOWBOARD_CODE_TMP") or "/tmp"
    send(proto_out, {"ready": True, "python": sys.version.split()[0], "pid": os.getpid(), "uid": os.getuid(),
                     "orjson": "orjson" in sys.modules, "cwd": os.getcwd()})
    while True:
        header = read_exact(proto_in, 4)
        if header is None:
            return
        body = read_exact(proto_in, int.from_bytes(header, "big"))
        if body is None:
            return
        request = loads(body)
        workdir = os.path.join(workroot, f"call-{request['id']}")
        try:
            _empty(workroot)  # nothing a call leaves anywhere in it reaches the next call
            os.mkdir(workdir, 0o700)
            answer = call(request, workdir)
        finally:
            _empty(workroot)
        answer["id"] = request["id"]
        send(proto_out, answer)


def _empty(path: str) -> None:
    """Remove everything in `path`, whatever the code did to it (permissions taken away, links, deep nesting); the
    worker ends itself (and is replaced) when it cannot, so nothing of one call can reach the next."""
    try:
        _clear(path)
        if os.listdir(path):
            raise OSError(f"{path} is not empty")
    except BaseException as exc:
        os.write(2, f"cannot empty the call folder ({exc}); the worker stops\n".encode())
        os._exit(3)


def _clear(path: str) -> None:
    os.chmod(path, 0o700)
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _clear(entry.path)
            os.rmdir(entry.path)
        else:
            os.unlink(entry.path)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main()
