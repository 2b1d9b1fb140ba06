"""The server's outermost layer: a request must name this server, come from one of its own pages, and keep its
headers small, before anything else sees it.

- **Host** (DNS rebinding). A web page on `evil.example` can make its name resolve to 127.0.0.1 and then talk to
  Flowboard as if it were its own site. The browser still sends `Host: evil.example`, so a request whose Host is not
  `127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>` or the host of `FLOWBOARD_PUBLIC_URL` is refused (403).
- **Origin** (cross-site requests and websockets). A request a browser sends from another site carries that site's
  `Origin`. Such a request is refused (403), and a websocket upgrade with it is closed before it opens, except on the
  public endpoints (`/webhook/`, `/webhook-test/`, `/form/`), which any site or service may call. Their answers
  carry no CORS headers at all: nothing here ever reflects a foreign Origin back.
- **Header limits**. At most `MAX_HEADERS` header lines and `MAX_HEADER_BYTES` bytes of them (431), so a caller
  cannot make every request carry megabytes (httptools itself sets no limit).

A pure ASGI middleware (under uvicorn; on granian, `rsgi.RSGIFront` asks the same `verdict` with RSGI's headers):
per request one pass over the header list and two set lookups, no allocation on the way through (measured with
`bench/peer.py`; see the issue note).
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("flowboard.http")

MAX_HEADERS = 100
MAX_HEADER_BYTES = 32 * 1024
PUBLIC_PREFIXES = ("/webhook/", "/webhook-test/", "/form/")


def allowed_hosts(port: int, public_url: str | None = None) -> tuple[frozenset[bytes], frozenset[bytes]]:
    """The Host values and the Origin values this server answers to, lower-case bytes."""
    names = ["127.0.0.1", "localhost", "[::1]"]
    hosts = {f"{name}:{port}" for name in names}
    origins = {f"http://{host}" for host in hosts}
    if port == 80:
        hosts.update(names)
        origins.update(f"http://{name}" for name in names)
    if public_url:
        parts = urlsplit(public_url.strip())
        if parts.hostname:
            netloc = parts.netloc.rpartition("@")[2].lower()
            default = {"http": 80, "https": 443}.get(parts.scheme.lower())
            hosts.add(netloc)
            if parts.port is None and default is not None:
                hosts.add(f"{netloc}:{default}")
            elif parts.port == default:
                hosts.add(netloc.rsplit(":", 1)[0])
            origins.add(f"{parts.scheme.lower()}://{netloc.removesuffix(f':{default}')}")
    return frozenset(h.encode() for h in hosts), frozenset(o.encode() for o in origins)


class HostGuard:
    """Wraps the app the server runs (see the module docstring). `.app` is the wrapped app."""

    def __init__(self, app: ASGIApp, port: int, public_url: str | None = None):
        self.app = app
        self.port = port
        if public_url is None:
            public_url = os.environ.get("FLOWBOARD_PUBLIC_URL") or None
        self.hosts, self.origins = allowed_hosts(port, public_url)
        self.where = f"http://127.0.0.1:{port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            return await self.app(scope, receive, send)
        headers = scope["headers"]
        host = origin = None
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
        refusal = self.verdict(scope["path"], len(headers), size, host, origin)
        if refusal is not None:
            return await self.refuse(scope, receive, send, *refusal)
        await self.app(scope, receive, send)

    def verdict(self, path: str, count: int, size: int, host: bytes | None, origin: bytes | None
                ) -> tuple[int, str] | None:
        """None for a request that may go on, else the status and the plain words it is refused with. `count` and
        `size` are its header lines and their bytes; `host` and `origin` its Host and Origin, as sent."""
        if count > MAX_HEADERS:
            return 431, f"the request has {count} headers; at most {MAX_HEADERS} are taken"
        if size > MAX_HEADER_BYTES:
            return 431, f"the request's headers are {size:,} bytes; at most {MAX_HEADER_BYTES:,} are taken"
        if host is None or (host not in self.hosts and host.lower() not in self.hosts):
            return 403, (f"this Flowboard answers only at {self.where} (or the address in FLOWBOARD_PUBLIC_URL), not "
                         "at the host this request names")
        if origin is not None and origin not in self.origins and origin.lower() not in self.origins \
                and not path.startswith(PUBLIC_PREFIXES):
            return 403, f"requests from other web sites are refused; open Flowboard at {self.where}"
        return None

    async def refuse(self, scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
        log.warning("%s %s refused (%d): %s", scope.get("method", "WEBSOCKET"), _printable(scope["path"]), status,
                    message)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect; closing before accepting answers the upgrade with 403
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        body = message.encode() + b"\n"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _printable(path: str) -> str:
    path = path[:200]
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")
