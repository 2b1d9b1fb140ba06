"""The shared client's kept-open connections (`flowboard/httpwire.py`) against servers that answer byte by byte as
real ones do: kept-open and closed connections, answers of every framing, interim answers, slow and silent servers,
broken HTTP, and the limit on connections. (`tests/test_http_client.py` checks that the short way sends and answers
exactly what httpx's own path does.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from flowboard.httpclient import Client, _Response
from flowboard.httpwire import Wires

Handler = Callable[["RawServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on 127.0.0.1 whose connections `handler(server, reader, writer)` answers, counting them."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        """One request (its head and a Content-Length body), or None when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        body = await reader.readexactly(length) if length else b""
        self.requests.append(head + body)
        return head + body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            self.open -= 1
            writer.close()


def json_answer(body: bytes = b'{"ok":true}', extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\n" + extra + b"\r\n" + body)


def keeps_open(answer: bytes) -> Handler:
    """Answers every request on a connection with `answer`."""
    async def handler(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            writer.write(answer)
            await writer.drain()
    return handler


def answers_once_then_drops(delay: float = 0.0) -> Handler:
    """Answers a connection's first request (after `delay` seconds) and keeps it open as if it would take another
    call, then drops the next request unanswered: what a server that closes idle connections does to a client that
    sends at the wrong moment."""
    async def handler(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if await server.read_request(reader) is None:
            return
        await asyncio.sleep(delay)
        writer.write(json_answer())
        await writer.drain()
        await server.read_request(reader)
        writer.transport.abort()
    return handler


#: (name, the server's bytes for one answer, status, body): every way an HTTP/1.1 answer can be framed.
ANSWERS: list[tuple[str, bytes, int, bytes]] = [
    ("content-length", json_answer(), 200, b'{"ok":true}'),
    ("chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n", 200,
     b"abcdefg"),
    ("chunked with a trailer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n",
     200, b"hi"),
    ("empty 204", b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
    ("304 with a length it does not send", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 304, b""),
    ("an interim 103 first", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n" + json_answer(), 200,
     b'{"ok":true}'),
    ("100 continue first", b"HTTP/1.1 100 Continue\r\n\r\n" + json_answer(b"[1]"), 200, b"[1]"),
    ("a 404 with a body", b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope", 404, b"nope"),
    ("a reason with spaces", b"HTTP/1.1 418 I am a teapot\r\nContent-Length: 0\r\n\r\n", 418, b""),
    ("no reason", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", 200, b"ok"),
    ("a big body", b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n" + b"x" * 300_000, 200, b"x" * 300_000),
]


@pytest.mark.parametrize(("name", "answer", "status", "body"), ANSWERS, ids=[a[0] for a in ANSWERS])
async def test_every_framing_is_read_and_the_connection_kept(http_client: Client, name: str, answer: bytes, status: int,
                                                             body: bytes) -> None:
    async with RawServer(keeps_open(answer)) as server:
        for _ in range(3):
            response = await http_client.get(server.url + "/x")
            assert isinstance(response, _Response)
            assert (response.status_code, response.content) == (status, body)
        assert server.connections == 1, "one connection carried all three calls"


async def test_the_reason_phrase_and_version_are_the_servers(http_client: Client) -> None:
    async with RawServer(keeps_open(b"HTTP/1.1 418 I am a teapot\r\nContent-Length: 0\r\n\r\n")) as server:
        response = await http_client.get(server.url)
        assert response.reason_phrase == "I am a teapot" and response.http_version == "HTTP/1.1"


@pytest.mark.parametrize("framing", ["HTTP/1.0 no length", "HTTP/1.1 Connection: close no length",
                                     "HTTP/1.0 with length", "HTTP/1.1 Connection: close with length"])
async def test_an_answer_that_ends_with_its_connection(http_client: Client, framing: str) -> None:
    version, _, rest = framing.partition(" ")
    close = b"Connection: close\r\n" if "close" in rest else b""
    length = b"Content-Length: 5\r\n" if "with length" in rest else b""

    async def once(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(version.encode() + b" 200 OK\r\n" + close + length + b"\r\nhello")
        await writer.drain()
        writer.close()

    async with RawServer(once) as server:
        for _ in range(2):
            response = await http_client.get(server.url)
            assert response.content == b"hello"
        assert server.connections == 2, "a closed connection is not used again"


async def test_a_connection_the_server_closed_between_calls(http_client: Client) -> None:
    """A kept-open connection the server closes when idle: a GET goes again on a new one, a POST (which the server
    may have acted on) is never sent twice and fails in plain words."""
    async with RawServer(answers_once_then_drops()) as server:
        assert (await http_client.get(server.url)).status_code == 200
        assert (await http_client.get(server.url)).status_code == 200  # dropped once, sent again on a new connection
        assert server.connections == 2 and len(server.requests) == 3
        before = len(server.requests)
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await http_client.post(server.url, content=b"pay")
        assert len(server.requests) == before + 1, "the POST was sent once"


async def test_every_kept_connection_the_server_dropped_is_let_go(http_client: Client) -> None:
    """A server that restarted closed every kept connection: a GET that finds one dead goes again on a new
    connection, not on the next dead one."""
    # (answered after 0.05 s, so the first three calls need three connections)
    async with RawServer(answers_once_then_drops(delay=0.05)) as server:
        assert all(a.status_code == 200 for a in await asyncio.gather(*(http_client.get(server.url) for _ in range(3))))
        assert server.connections == 3
        assert (await http_client.get(server.url)).status_code == 200
        assert server.connections == 4, "one dead connection tried, then a new one"


@pytest.mark.parametrize(("timeout", "reused_after_pause"), [(b"timeout=1.3", False), (b"timeout=9, max=100", True),
                                                            (b"max=5", True), (b"timeout=x", True)])
async def test_the_servers_keep_alive_timeout_is_kept(http_client: Client, timeout: bytes,
                                                      reused_after_pause: bool) -> None:
    """A connection is not used in the last second of the idle time the server announces (Keep-Alive: timeout=N),
    when the server may be closing it as the next request goes out."""
    async with RawServer(keeps_open(json_answer(extra=b"Keep-Alive: " + timeout + b"\r\n"))) as server:
        await http_client.get(server.url)
        await http_client.get(server.url)
        assert server.connections == 1
        await asyncio.sleep(0.4)
        await http_client.get(server.url)
        assert server.connections == (1 if reused_after_pause else 2)


async def test_an_idle_connection_is_not_used_after_the_keep_time(http_client: Client) -> None:
    http_client._wires = Wires(http_client._aio.ssl_context, keep=0.05)
    async with RawServer(keeps_open(json_answer())) as server:
        await http_client.get(server.url)
        await asyncio.sleep(0.1)
        await http_client.get(server.url)
        assert server.connections == 2
        await asyncio.sleep(0.2)  # the sweep closes idle ones
        assert server.open == 0


async def test_a_silent_server_times_out_and_a_slow_steady_one_does_not(http_client: Client) -> None:
    async def drip(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await server.read_request(reader)
        if request is not None and b"/silent" in request:
            await asyncio.sleep(5)
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
        for byte in b"abcdef":  # a byte every 0.1 s: 0.6 s in all, more than the 0.3 s timeout
            await asyncio.sleep(0.1)
            writer.write(bytes([byte]))
            await writer.drain()

    async with RawServer(drip) as server:
        with pytest.raises(httpx.ReadTimeout):
            await http_client.get(server.url + "/silent", timeout=0.3)
        assert (await http_client.get(server.url + "/drip", timeout=0.3)).content == b"abcdef"


@pytest.mark.parametrize("garbage", [b"NOT HTTP AT ALL\r\n\r\n", b"HTTP/1.1 abc OK\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
                                     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
async def test_broken_http_is_a_protocol_error(http_client: Client, garbage: bytes) -> None:
    async with RawServer(keeps_open(garbage)) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
            await http_client.get(server.url)
        with pytest.raises(httpx.RemoteProtocolError):
            await http_client.get(server.url)
        assert server.connections == 2, "a connection that said something broken is not used again"


async def test_a_connection_cut_in_the_middle_of_an_answer(http_client: Client) -> None:
    async def cut(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    async with RawServer(cut) as server:
        with pytest.raises(httpx.RemoteProtocolError, match="middle of its answer"):
            await http_client.get(server.url)
        assert server.connections == 1, "a GET that got part of an answer is not sent again"


async def test_no_more_connections_than_the_limit_and_the_pool_timeout(http_client: Client) -> None:
    async def slow(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await server.read_request(reader) is not None:
            await asyncio.sleep(0.05)
            writer.write(json_answer())
            await writer.drain()

    async with RawServer(slow) as server:
        await http_client.get(server.url)
        assert http_client._wires is not None
        http_client._wires.limit = 3
        answers = await asyncio.gather(*(http_client.get(server.url) for _ in range(12)))
        assert all(a.status_code == 200 for a in answers)
        assert server.most_open <= 3 and server.connections <= 3
        with pytest.raises(httpx.PoolTimeout):
            await asyncio.gather(*(http_client.get(server.url, timeout=httpx.Timeout(5, pool=0.02)) for _ in range(8)))


async def test_a_cancelled_call_leaves_no_connection_out_of_step(http_client: Client) -> None:
    async def late(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await server.read_request(reader)) is not None:
            if b"/late" in request:
                await asyncio.sleep(0.3)
            writer.write(json_answer(request.split(b" ")[1]))
            await writer.drain()

    async with RawServer(late) as server:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await http_client.get(server.url + "/late")
        await asyncio.sleep(0.4)  # the late answer arrives on the cancelled call's connection
        for path in ("/a", "/b", "/c"):
            assert (await http_client.get(server.url + path)).content == path.encode(), "each call gets its own answer"


async def test_a_server_that_closes_every_connection_at_once_fails_the_call_at_once(http_client: Client) -> None:
    async def shut(server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.transport.abort()

    async with RawServer(shut) as server:
        async with asyncio.timeout(5):  # not the 30 s read timeout
            with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
                await http_client.get(server.url)


async def test_a_refused_connection_and_an_unknown_host(http_client: Client) -> None:
    with pytest.raises(httpx.ConnectError) as refused:
        await http_client.get("http://127.0.0.1:9/")
    assert isinstance(refused.value.__cause__, ConnectionRefusedError)
    with pytest.raises(httpx.ConnectError):
        await http_client.get("http://no-such-host.invalid/")
