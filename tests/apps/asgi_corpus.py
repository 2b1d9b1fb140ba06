"""One ASGI app that answers in every way an ASGI app may, served by uvicorn or on granian's RSGI interface through
`flowboard.rsgi.ASGIOnRSGI`, so tests/test_rsgi.py can ask both the same things and compare.

    python tests/apps/asgi_corpus.py uvicorn|rsgi PORT

HTTP paths: `/echo` (what the app was given, as JSON, in one message), `/stream` (four chunks, the last one empty),
`/stream-last` (three chunks, data in the last), `/status/N` (an empty answer with that status), `/start-only` (a
start and no body message), `/raise-before`, `/raise-during` and `/raise-during-big` (the app fails before its answer,
after its first bytes, and half way through a 3 MiB download),
`/upload` (a body read in its chunks: their sizes and its SHA-256; a caller gone
half way is remembered), `/wait-disconnect` (sends 1.5 MiB, then waits for
the caller to go away), `/seen` (what the waiting app saw). Websockets: `/ws` (echoes text and bytes; on the caller's
close, remembers it), `/ws-refuse` (closes before accepting), `/ws-close` (accepts, says bye, closes with 4000).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from typing import Any

SEEN: dict[str, Any] = {}
BIG = b"w" * (1536 * 1024)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        return await websocket(scope, receive, send)
    path = scope["path"]
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        out = json.dumps({
            "method": scope["method"], "path": scope["path"], "query_string": scope["query_string"].decode("latin-1"),
            "root_path": scope.get("root_path", ""), "scheme": scope["scheme"],
            "headers": sorted([n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]
                              if n not in (b"host", b"user-agent", b"accept", b"accept-encoding", b"connection",
                                           b"content-length", b"transfer-encoding")),
            "server_port": scope["server"][1], "client_host": scope["client"][0],
            "unreadable": scope.get("flowboard.unreadable_headers"),
            "body": body.decode("latin-1")}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"x-custom", b"yes"),
                                (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]})
        await send({"type": "http.response.body", "body": out})
    elif path == "/stream" or path == "/stream-last":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part,
                        "more_body": not (path == "/stream-last" and part == b"three")})
            await asyncio.sleep(0.01)
        if path == "/stream":
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path.startswith("/status/"):
        await send({"type": "http.response.start", "status": int(path[8:]), "headers": [(b"x-status", b"set")]})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/start-only":
        await send({"type": "http.response.start", "status": 204, "headers": []})
    elif path == "/raise-before":
        raise RuntimeError("the app failed before answering")
    elif path == "/raise-during":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("the app failed while answering")
    elif path == "/raise-during-big":  # a download that fails half way: its Content-Length tells the caller
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream"),
                                (b"content-length", str(2 * len(BIG)).encode())]})
        await send({"type": "http.response.body", "body": BIG, "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("the app failed while answering")
    elif path == "/upload":
        sizes, digest = [], hashlib.sha256()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                SEEN["upload"] = "http.disconnect"
                return
            chunk = message.get("body", b"")
            if chunk:
                sizes.append(len(chunk))
                digest.update(chunk)
            if not message.get("more_body"):
                break
        SEEN.pop("upload", None)
        out = json.dumps({"size": sum(sizes), "sha256": digest.hexdigest()}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})
    elif path == "/wait-disconnect":
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": BIG, "more_body": True})  # (past what RSGI holds back)
        message = await receive()  # the caller goes away
        SEEN["disconnect"] = message["type"]
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/seen":
        out = json.dumps(SEEN).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"not here"})


KEPT: list[Any] = []  # what a websocket app keeps after it returns, as NiceGUI's socket does for a while


async def websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    KEPT.append((receive, send))
    assert (await receive())["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/ws-refuse":
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    if path == "/ws-close":
        await send({"type": "websocket.send", "text": "bye"})
        await send({"type": "websocket.close", "code": 4000})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            SEEN["ws"] = message["type"]
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": "echo: " + message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": b"echo: " + message["bytes"]})


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "uvicorn":
        import uvicorn

        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
        return
    import signal

    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from flowboard.rsgi import ASGIOnRSGI

    async def serve() -> None:
        server = Server(ASGIOnRSGI(app), address="127.0.0.1", port=port, interface=Interfaces.RSGI,
                        log_enabled=False, websockets=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
