"""Plain HTTP/1.1 calls on connections kept open: the short way of the shared client (`flowboard/httpclient.py`).

A call writes its request in one piece on a kept-open connection to the same origin and reads the answer with
httptools (the parser uvicorn uses; llhttp underneath). Measured here (`bench/http_client.py`, a loopback server in
another process, 32 calls at a time): 17 µs of CPU per `ctx.http` call, the httpx.Response it answers with included,
against 55 µs when it went through aiohttp's client and 42 µs for raw aiohttp, whose per-call request and response
objects, tracing hooks and stream reader the short way has no use for; a fan-out of 20 calls per run spent a third
of its time there.

What it does, as httpx and aiohttp do: up to `limit` connections in all (callers wait for one beyond that, up to the
pool timeout), idle ones closed after `keep` seconds (or a second before the server's `Keep-Alive: timeout=N`), a
connection the server closed between two calls noticed and replaced (the call sent again, on a new connection, only
when nothing of an answer came and the method may be repeated, RFC 9110 9.2.2), interim 1xx answers skipped, an
answer that ends with the connection read to its end, a read timeout between two reads, TLS with the client's SSL
context. Errors are httpx's (ConnectError, ConnectTimeout, ReadTimeout, RemoteProtocolError, PoolTimeout) with the
cause chained, so callers see what they saw before.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from typing import Any, NamedTuple

import httptools
import httpx

#: Methods that may be sent again when a kept-open connection turns out closed before any answer (RFC 9110 9.2.2).
_REPEATABLE = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})
Origin = tuple[str, str, int]  # (scheme, host, port)


class Answer(NamedTuple):
    status: int
    reason: bytes
    version: bytes  # b"HTTP/1.1"
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Dropped(Exception):
    """The connection closed before any byte of the answer."""


class _Wire(asyncio.Protocol):
    """One connection: one call at a time, answers parsed as they arrive."""

    def __init__(self, pool: Wires) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Answer] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.reason = b""
        self.got = False  # a byte of the current answer arrived
        self.headers_done = False
        self.interim = False  # the answer being read is a 1xx one
        self.head = False  # the call is a HEAD: no body follows the headers, whatever they say
        self.keep = False  # the connection may carry another call
        self.server_keep: float | None = None  # seconds the server keeps it open idle (its Keep-Alive: timeout=N)
        self.closed = False
        self.counted = True  # in the pool's count of open connections
        self.last = 0.0  # loop time of the last bytes sent or received
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio ------------------------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for: the connection is out of step, never used again
            self.close()
            return
        self.got = True
        self.last = self.loop.time()
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(httpx.RemoteProtocolError(f"the server's answer is not valid HTTP ({exc})"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool._forget(self)
        if self.waiter is None or self.waiter.done():
            return
        if self.headers_done and self._until_closed():
            self._done(keep=False)  # an answer without a length ends with its connection
        elif not self.got:
            self._fail(_Dropped())
        else:
            error = httpx.RemoteProtocolError("the server closed the connection in the middle of its answer")
            error.__cause__ = exc
            self._fail(error)

    # -- httptools ----------------------------------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.waiter is None or self.waiter.done():  # a second answer nobody asked for: out of step
            self.keep = False
        self.headers = []
        self.body = []
        self.reason = b""
        self.headers_done = False

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        if len(name) == 10 and name.lower() == b"keep-alive":  # `timeout=5, max=100`
            for part in value.split(b","):
                key, _, number = part.partition(b"=")
                if key.strip().lower() == b"timeout":
                    with contextlib.suppress(ValueError):
                        self.server_keep = float(number)

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        self.interim = 100 <= status < 200 and status != 101  # e.g. 103 Early Hints: the answer follows
        self.headers_done = not self.interim
        if self.head and not self.interim:
            self._done(keep=False)  # the parser would wait for a body the Content-Length announces

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.waiter is not None and not self.waiter.done():
            self._done(keep=self.parser.should_keep_alive())

    # -- one call -----------------------------------------------------------------------------------------------------

    async def exchange(self, request: bytes, head: bool, read: float | None) -> Answer:
        if self.closed:  # closed by the server as soon as it was opened: nothing will answer on it
            raise _Dropped()
        self.waiter = waiter = self.loop.create_future()
        self.got = self.headers_done = self.interim = self.keep = False
        self.head = head
        assert self.transport is not None
        self.transport.write(request)
        self.last = self.loop.time()
        if read is not None:
            self.timer = self.loop.call_later(read, self._check_time, read)
        try:
            return await waiter
        finally:
            self.waiter = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def _check_time(self, read: float) -> None:
        """The read timeout: no bytes for `read` seconds (a slow answer that keeps coming is not cut off)."""
        left = self.last + read - self.loop.time()
        if left > 0.001:
            self.timer = self.loop.call_later(left, self._check_time, read)
            return
        self.timer = None
        self._fail(httpx.ReadTimeout(f"no answer for {read:g} s"))
        self.close()

    def _until_closed(self) -> bool:
        """The answer has neither a Content-Length nor a chunked body: it ends when the connection does."""
        return not any(name.lower() in (b"content-length", b"transfer-encoding") for name, _ in self.headers)

    def _done(self, keep: bool) -> None:
        self.keep = keep and not self.head
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            version = b"HTTP/1.0" if self.parser.get_http_version() == "1.0" else b"HTTP/1.1"
            waiter.set_result(Answer(self.parser.get_status_code(), self.reason, version, self.headers,
                                     b"".join(self.body)))

    def _fail(self, error: BaseException) -> None:
        self.keep = False
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def close(self) -> None:
        self.keep = False
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()
        self.pool._forget(self)


class Wires:
    """Kept-open connections by origin, for one client on the event loop it is made on."""

    def __init__(self, ssl_context: ssl.SSLContext, limit: int = 1000, keep: float = 4.0) -> None:
        self.ssl_context = ssl_context
        self.limit = limit
        self.keep = keep  # under the 5 s most servers keep an idle connection (Node's default)
        self.loop = asyncio.get_running_loop()  # connections belong to one event loop
        self.closed = False
        self._idle: dict[Origin, list[tuple[_Wire, float]]] = {}  # (connection, loop time it may be used until)
        self._open = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None

    async def call(self, origin: Origin, request: bytes, method: str, connect: float | None, read: float | None,
                   pool: float | None) -> Answer:
        """Send `request` (its request line, headers and body, as bytes) to `origin` and read the answer."""
        head = method == "HEAD"
        for attempt in range(2):
            wire, reused = await self._take(origin, connect, pool, fresh=attempt > 0)
            try:
                answer = await wire.exchange(request, head, read)
            except _Dropped:
                wire.close()
                for other, _ in self._idle.pop(origin, ()):  # (a server that restarted closed them all)
                    other.close()
                if reused and attempt == 0 and method in _REPEATABLE:
                    continue  # the server closed it between two calls: once more on a new connection
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.") from None
            except BaseException:  # a timeout, a cancelled caller, a broken answer: the connection is out of step
                wire.close()
                raise
            if wire.keep and not wire.closed:
                self._put(origin, wire)
            else:
                wire.close()
            return answer
        raise AssertionError("unreachable")

    async def _take(self, origin: Origin, connect: float | None, pool: float | None,
                    fresh: bool = False) -> tuple[_Wire, bool]:
        """A connection to `origin`: the one handed back last (if not `fresh`), else a new one; and whether it was
        used before."""
        loop = self.loop
        while True:
            idle = None if fresh else self._idle.get(origin)
            now = loop.time()
            while idle:
                wire, until = idle.pop()
                if not wire.closed and now < until and not wire.transport.is_closing():  # type: ignore[union-attr]
                    return wire, True
                wire.close()
            if self._open < self.limit or self._close_oldest_idle():  # (an idle one of another origin)
                break
            waiter = loop.create_future()  # woken when a connection is handed back or closed
            self._waiting.append(waiter)
            try:
                async with asyncio.timeout(pool):
                    await waiter
            except TimeoutError:
                raise httpx.PoolTimeout(f"all {self.limit} connections stayed busy for {pool:g} s") from None
            finally:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
        self._open += 1
        wire = _Wire(self)
        scheme, host, port = origin
        tls = scheme == "https"
        try:
            async with asyncio.timeout(connect):
                await loop.create_connection(lambda: wire, host, port, ssl=self.ssl_context if tls else None,
                                             server_hostname=host if tls else None)
        except TimeoutError as exc:
            wire.close()
            raise httpx.ConnectTimeout(f"no connection to {host}:{port} within {connect:g} s") from exc
        except (OSError, ssl.SSLError) as exc:
            wire.close()
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        except BaseException:
            wire.close()
            raise
        return wire, False

    def _put(self, origin: Origin, wire: _Wire) -> None:
        if self.closed:  # a call that ended after the client closed
            wire.close()
            return
        keep = self.keep if wire.server_keep is None else min(self.keep, wire.server_keep - 1.0)
        self._idle.setdefault(origin, []).append((wire, self.loop.time() + keep))
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.keep, self._sweep)
        self._wake()

    def _forget(self, wire: _Wire) -> None:
        if wire.counted:
            wire.counted = False
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _close_oldest_idle(self) -> bool:
        oldest: tuple[float, Origin] | None = None  # (its expiry, its origin): the one handed back longest ago
        for origin, idle in self._idle.items():
            if idle and (oldest is None or idle[0][1] < oldest[0]):
                oldest = (idle[0][1], origin)
        if oldest is None:
            return False
        wire, _ = self._idle[oldest[1]].pop(0)
        wire.close()
        return True

    def _sweep(self) -> None:
        """Close the connections idle for their time; again later while any are idle."""
        self._sweeper = None
        now = self.loop.time()
        for origin in list(self._idle):
            fresh = []
            for wire, until in self._idle[origin]:
                if wire.closed:
                    continue
                if now >= until:
                    wire.close()
                else:
                    fresh.append((wire, until))
            if fresh:
                self._idle[origin] = fresh
            else:
                del self._idle[origin]
        if self._idle:
            self._sweeper = self.loop.call_later(self.keep, self._sweep)

    def close(self) -> None:
        self.closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, {}
        for wires in idle.values():
            for wire, _ in wires:
                with contextlib.suppress(Exception):  # a transport of a loop that is closed already
                    wire.close()
        for waiter in self._waiting:
            if not waiter.done():
                waiter.cancel()
        self._waiting.clear()


def request_bytes(method: str, target: bytes, host: bytes, headers: Any, body: bytes | None) -> bytes:
    """The request as httpx on aiohttp writes it: the request line, Host first, the headers, then for a body or a
    method other than GET, HEAD, OPTIONS and TRACE its Content-Length (0 without one), for a body or a POST, PUT or
    PATCH a Content-Type (application/octet-stream unless the headers name one), then the body."""
    lines = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    typed = False
    for name, value in headers.items():
        lines += (name.encode("ascii"), b": ", value.encode("ascii"), b"\r\n")
        typed = typed or name.lower() == "content-type"
    if body or method not in _NO_BODY_METHODS:
        if not typed and (body or method in ("POST", "PUT", "PATCH")):
            lines.append(b"Content-Type: application/octet-stream\r\n")
        lines += (b"Content-Length: ", str(len(body or b"")).encode("ascii"), b"\r\n\r\n")
        if body:
            lines.append(body)
    else:
        lines.append(b"\r\n")
    return b"".join(lines)
