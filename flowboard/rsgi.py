"""granian's RSGI interface in front of the server's ASGI app: webhooks answered on RSGI itself, everything else
handed to the ASGI app (the editor, NiceGUI's websocket, the REST API, forms) through a small adapter.

RSGI gives a request to Python as a scope whose fields Rust makes when they are read, takes its body in one await
and its answer in one call (`response_bytes`); ASGI builds a dict with every header per request and awaits a message
each way. A bare echo costs 0.85x the CPU per request on RSGI here, the echo webhook 0.89x unrecorded and 0.94x
recorded (docs/engine.md, the RSGI row).

```
granian ─▶ RSGIFront ─▶ host, origin and header checks (HostGuard.verdict)
                     ├─▶ /webhook/…      WebhookApp.serve_rsgi            (RSGI)
                     └─▶ everything else HostGuard's app (Boot) through serve_http / serve_websocket (ASGI 3)
```

What the ASGI app sees differs from granian's own ASGI in these ways, none of which Flowboard's pages use:
- a header whose value is not ASCII text is left out (RSGI gives headers as text and drops such values; a webhook
  that keeps such a header refuses the call with a 400 that names it instead of losing it, `webhooks._check_text`,
  unless the same name also came with an ASCII value; the ASGI app finds their names in `scope[webhooks.UNREADABLE]`,
  so a `/webhook-test/` call, which goes through the adapter, refuses it too);
- `raw_path` is the path percent-encoded again (RSGI gives the decoded path only), so `%2F` reads as `/`;
- a websocket cannot choose a subprotocol or send headers with its accept, and its close frame carries no code;
- an answer is held until it is complete (or 1 MiB long), so an app that fails half way gives a 500 (`_Answer`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .api.webhooks import UNREADABLE, left_out, next_chunk
from .hostguard import HostGuard, _printable

if TYPE_CHECKING:
    from .boot import Boot

log = logging.getLogger("flowboard.http")

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_TEXT = ("content-type", "text/plain; charset=utf-8")


class RSGIFront:
    """What granian runs (`__rsgi__`); `guard` is the ASGI app the server would run otherwise (HostGuard over Boot)."""

    def __init__(self, guard: HostGuard):
        self.guard = guard
        self.boot: Boot = guard.app  # type: ignore[assignment]
        self.hooks = self.boot.door.hooks

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        headers: list[tuple[str, str]] = scope.headers.items()
        host = origin = None
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if name == "host":
                host = value
            elif name == "origin":
                origin = value
        if host is None:
            host = scope.authority  # HTTP/2's :authority
        path: str = scope.path
        refusal = self.guard.verdict(path, len(headers), size, None if host is None else host.encode("latin-1"),
                                     None if origin is None else origin.encode("latin-1"))
        if scope.proto == "http":
            if refusal is not None:
                return _refuse_http(scope, protocol, *refusal)
            if path[:9] == "/webhook/":
                return await self.hooks.serve_rsgi(path[9:], scope, protocol, headers)
            return await serve_http(self.boot, scope, headers, protocol)
        if refusal is not None:
            log.warning("WEBSOCKET %s refused (%d): %s", _printable(path), *refusal)
            return  # returning without accepting answers the upgrade with 403 (never `close` before `accept`)
        await serve_websocket(self.boot, scope, headers, protocol)


def _refuse_http(scope: Any, protocol: Any, status: int, message: str) -> None:
    log.warning("%s %s refused (%d): %s", scope.method, _printable(scope.path), status, message)
    protocol.response_bytes(status, [_TEXT, ("connection", "close")], message.encode() + b"\n")


def _address(text: str) -> tuple[str, int] | None:
    """RSGI's "host:port" (or "[::1]:port") as ASGI's (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _scope(kind: str, scope: Any, headers: list[tuple[str, str]]) -> dict[str, Any]:
    path: str = scope.path
    return {"type": kind, "asgi": _ASGI, "http_version": scope.http_version, "scheme": scope.scheme,
            "path": path, "raw_path": quote(path).encode("ascii"), "root_path": "",
            "query_string": scope.query_string.encode("latin-1"),
            "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
            "server": _address(scope.server), "client": _address(scope.client)}


class ASGIOnRSGI:
    """Any ASGI app (HTTP and websockets, no lifespan) served on RSGI: what `RSGIFront` does for everything but
    webhooks, without its checks."""

    def __init__(self, app: Any):
        self.app = app

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto == "http":
            await serve_http(self.app, scope, scope.headers.items(), protocol)
        else:
            await serve_websocket(self.app, scope, scope.headers.items(), protocol)


async def serve_http(app: Any, scope: Any, headers: list[tuple[str, str]], protocol: Any) -> None:
    """One HTTP request through the ASGI app: the body streamed in as `http.request` messages, the answer sent when
    it is complete, or streamed once it is past HOLD bytes (`_Answer`)."""
    asgi = _scope("http", scope, headers)
    asgi["method"] = scope.method
    if unreadable := left_out(scope.headers, {name for name, _ in headers}):
        asgi[UNREADABLE] = unreadable
    answer = _Answer(protocol)
    body = protocol.__aiter__()
    state = {"body_done": False}

    async def receive() -> dict[str, Any]:
        if not state["body_done"]:
            try:
                chunk = await next_chunk(body)
            except Exception:  # CutShort, or granian's own errors: the caller went away while sending
                state["body_done"] = True
                return {"type": "http.disconnect"}
            if chunk is None:
                state["body_done"] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}
        if not answer.done:
            await protocol.client_disconnect()
        return {"type": "http.disconnect"}

    try:
        await app(asgi, receive, answer.send)
    except Exception:
        log.exception("%s %s failed", scope.method, _printable(scope.path))
        if answer.stream is None and not answer.done:
            protocol.response_bytes(500, [_TEXT], b"the server could not answer; see its log\n")
        answer.stream = None
        return
    if answer.status is None:  # the app ended without an answer
        log.error("%s %s: the app gave no answer", scope.method, _printable(scope.path))
        protocol.response_bytes(500, [_TEXT], b"the server could not answer; see its log\n")
    elif not answer.done:  # the app ended without its last body message: what it sent is the answer
        if answer.stream is None:
            protocol.response_bytes(answer.status, answer.headers, b"".join(answer.held))
        answer.stream = None


HOLD = 1024 * 1024  # an answer's first bytes held back until it is complete or this long (see _Answer)


class _Answer:
    """ASGI's `send` for an HTTP answer, on RSGI. The body is held until the app's last message and sent with one
    `response_bytes`, so an app that fails before the end of its answer gives a clean 500 (granian's RSGI cannot
    abort a stream it has begun: the caller would see a shorter answer as a whole one). An answer that grows past
    HOLD bytes (a big download) is streamed from there on; Starlette gives files a Content-Length, so a cut-short
    file still reads as cut short."""

    __slots__ = ("done", "headers", "held", "protocol", "size", "status", "stream")

    def __init__(self, protocol: Any):
        self.protocol = protocol
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.held: list[bytes] = []
        self.size = 0
        self.stream: Any = None
        self.done = False

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.status is not None:
                raise RuntimeError("the answer was started twice")
            self.status = int(message["status"])
            self.headers = [(name.decode("latin-1"), value.decode("latin-1"))
                            for name, value in message.get("headers", ())]
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if self.status is None:
            raise RuntimeError("an answer's body came before its start")
        if self.done:
            raise RuntimeError("the answer was sent already")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self.stream is None:
            if body:
                self.held.append(body)
                self.size += len(body)
            if not more:
                self.done = True
                self.protocol.response_bytes(self.status, self.headers, b"".join(self.held))
                return
            if self.size <= HOLD:
                return
            self.stream = self.protocol.response_stream(self.status, self.headers)
            body, self.held = b"".join(self.held), []
        stream = self.stream
        if not more:  # granian ends the stream when its transport is freed: this is the one reference to it
            self.done = True
            self.stream = None
        if body:
            try:
                await stream.send_bytes(body)
            except Exception as exc:  # granian's ProtocolClosed: as ASGI servers say it, the caller went away
                raise OSError("the caller went away") from exc


async def serve_websocket(app: Any, scope: Any, headers: list[tuple[str, str]], protocol: Any) -> None:
    """One websocket through the ASGI app: `websocket.connect`, then the peer's messages, to the app; its accept,
    messages and close to granian."""
    asgi = _scope("websocket", scope, headers)
    asgi["scheme"] = "wss" if scope.scheme == "https" else "ws"
    offered = dict(headers).get("sec-websocket-protocol")
    asgi["subprotocols"] = [p.strip() for p in offered.split(",")] if offered else []
    # closed: no more messages either way; answered: our close frame is sent (granian answers a peer's close frame
    # only when told to or when the handler returns: till then the peer waits for it, 10 s in most clients)
    # protocol and transport: dropped when the app returns, as granian ends the connection only when they are freed
    # and NiceGUI's socket keeps these closures (and so `state`) for a while after
    state: dict[str, Any] = {"connected": False, "transport": None, "closed": False, "answered": False,
                             "protocol": protocol}
    answered = asyncio.Event()  # our close frame is sent: the connection may end, whether the app has returned or not

    def close(code: int) -> None:
        """Our close frame, once."""
        if not state["answered"]:
            state["answered"] = True
            state["protocol"].close(code)
            answered.set()

    async def receive() -> dict[str, Any]:
        if not state["connected"]:
            state["connected"] = True
            return {"type": "websocket.connect"}
        transport = state["transport"]
        if transport is None or state["closed"]:
            return {"type": "websocket.disconnect", "code": 1006}
        try:
            message = await transport.receive()
        except Exception:
            state["closed"] = True
            return {"type": "websocket.disconnect", "code": 1006}
        kind = int(message.kind)
        if kind == 0:  # the peer's close frame: answered at once (granian answers it only when told to, or when
            state["closed"] = True  # the app has returned, which NiceGUI's socket does seconds later)
            close(1000)
            return {"type": "websocket.disconnect", "code": 1005}
        if kind == 1:
            return {"type": "websocket.receive", "bytes": message.data}
        return {"type": "websocket.receive", "text": message.data}

    async def send(message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            if state["protocol"] is None:
                raise OSError("the websocket is gone")
            state["transport"] = await state["protocol"].accept()
        elif kind == "websocket.send":
            transport = state["transport"]
            if transport is None or state["closed"]:
                raise OSError("the websocket is not open")
            try:
                if message.get("text") is not None:
                    await transport.send_str(message["text"])
                else:
                    await transport.send_bytes(message.get("bytes") or b"")
            except Exception as exc:
                state["closed"] = True
                raise OSError("the websocket was closed") from exc
        elif kind == "websocket.close":
            state["closed"] = True
            if state["transport"] is not None:  # (before `accept`, granian takes the code for an HTTP status and
                close(int(message.get("code", 1000)))  # panics: returning answers 403)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def run() -> None:
        try:
            await app(asgi, receive, send)
        except Exception:
            log.exception("WEBSOCKET %s failed", _printable(scope.path))

    # granian ends the connection when this handler returns: once the close handshake is done, return, and let an
    # app that takes its time to end (NiceGUI's socket, the sign-in guard's watch) do so in its own task
    task = asyncio.ensure_future(run())
    _APPS.add(task)
    task.add_done_callback(_APPS.discard)
    closing = asyncio.ensure_future(answered.wait())
    try:
        await asyncio.wait((task, closing), return_when=asyncio.FIRST_COMPLETED)
    finally:
        closing.cancel()
        if state["transport"] is not None:
            close(1000)
        state["closed"] = True
        state["transport"] = state["protocol"] = None  # (the app's closures keep `state`, not granian's objects)


_APPS: set[asyncio.Future[None]] = set()  # websocket apps still ending after their connection closed
