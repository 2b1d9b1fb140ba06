"""The guard: a pure-ASGI middleware on the outer app that lets a request through only with a session or an API key,
once accounts are on (a user exists, or the server listens on a public address).

What stays open: production webhooks `/webhook/...`, public forms `/form/...`, a waiting run's signed resume link
`/webhook-waiting/...` and a one-click approval link `/decide/...` (each has its own authentication),
`/healthz` and `/readyz`, the sign-in page with the static files it needs (`/_nicegui/<version>/...`), and the
websocket of a sign-in page (by its NiceGUI client id, a random secret of that page). The API `/api/v1` checks its
API key itself (also in single-user mode, as before accounts): the guard only reads a session cookie for it, so a
signed-in browser can use the API (`/docs`). Everything else without a session or key is answered: a page with a
redirect to `/login?next=...`, anything else 401, a websocket by closing it before it opens (403).

The principal is put in the scope (`flowboard.principal`) and in a context variable (`current_principal()`).

Cost: production webhooks never reach this middleware (the server's FrontDoor answers them before the outer app).
Everything else pays one prefix test, a cookie parse and a dictionary lookup (a session seen in the last 2 s), or a
database read in the thread pool.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .principal import LOCAL, SCOPE_KEY, Principal, reset_current, set_current
from .roles import Permission

if TYPE_CHECKING:
    from ..store import Store
    from .accounts import Accounts

log = logging.getLogger("flowboard.auth")

COOKIE = "flowboard_session"
OPEN_PREFIXES = ("/webhook/", "/form/", "/webhook-waiting/", "/decide/")  # each checks its own signature or secret
OPEN_PATHS = frozenset({"/login", "/logout", "/healthz", "/readyz", "/favicon.ico"})
NO_REDIRECT = ("/api/", "/_nicegui", "/openapi.json", "/webhook-test/", "/_swagger/")
SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
WATCH = 2.0  # seconds between session checks on a live websocket
#: Paths that are not NiceGUI pages or API routes (those declare their own permission), with the one they need.
PATH_PERMISSIONS = (("/webhook-test/", Permission.flows), ("/docs", Permission.flows),
                    ("/openapi.json", Permission.flows), ("/_swagger/", Permission.flows))


def assets_prefix() -> str:
    from nicegui import __version__

    return f"/_nicegui/{__version__}/"


class AuthGuard:
    def __init__(self, app: ASGIApp, accounts: Accounts, store: Store):
        self.app = app
        self.accounts = accounts
        self.store = store
        self.assets = assets_prefix()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        if path.startswith(OPEN_PREFIXES) or path in OPEN_PATHS or path.startswith(self.assets):
            return await self.app(scope, receive, send)
        principal, cookie = await self.identify(scope, api=path.startswith("/api/"))
        if principal is None:
            if path.startswith("/api/"):
                return await self.app(scope, receive, send)  # the API checks its key and answers 401 itself
            if not self.accounts.required():
                principal = LOCAL
            elif path.startswith("/_nicegui_ws/") and self._sign_in_page(scope):
                return await self.app(scope, receive, send)
            else:
                return await self.refuse(scope, receive, send, path)
        elif cookie is not None and kind == "http" and scope["method"] not in SAFE and not same_origin(scope):
            return await _answer(send, 403, {"error": "this request came from another web site and was refused; "
                                                      "use Flowboard's own pages"})
        for prefix, permission in PATH_PERMISSIONS:
            if path.startswith(prefix) and not principal.can(permission):
                return await _answer(send, 403, {"error": f"{principal.label} may not open {prefix.rstrip('/')}: "
                                                          "it is for the people who build flows (admins and editors)"})
        if kind == "websocket" and cookie is not None:
            receive = self._watch(receive, cookie)
        scope[SCOPE_KEY] = principal
        token = set_current(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            reset_current(token)

    async def identify(self, scope: Scope, api: bool) -> tuple[Principal | None, str | None]:
        """The principal of a session cookie, else (outside the API) of an API key header; and the cookie's value
        when it came from the cookie."""
        headers = scope["headers"]
        cookie = key = None
        for name, value in headers:
            if name == b"cookie":
                cookie = session_token(value.decode("latin-1"))
            elif not api and name == b"x-api-key":
                key = value.decode("latin-1").strip()
            elif not api and name == b"authorization" and key is None:
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    key = rest.strip()
        if cookie:
            principal = self.accounts.cached_session(cookie)
            if principal is None:
                principal = await run_in_threadpool(self.accounts.session, cookie)
            if principal is not None:
                return principal, cookie
        if key:
            info = self.store.cached_api_key(key) or await run_in_threadpool(self.store.check_api_key, key)
            if info is not None:
                owner = self.accounts.cached_key_principal(info)
                return owner or await run_in_threadpool(self.accounts.key_principal, info), None
        return None, None

    def _watch(self, receive: Receive, cookie: str) -> Receive:
        """A live websocket (the editor's connection) ends when its session does: signed out, password changed, user
        removed, expired. Checked on a message from the browser at most every `WATCH` seconds (socket.io's pings
        bring one every 25 s at the latest); the app is told the browser went away, and the browser's reconnect
        meets the guard."""
        last = time.monotonic()

        async def watched() -> Message:
            nonlocal last
            message = await receive()
            if message["type"] == "websocket.receive" and time.monotonic() - last > WATCH:
                last = time.monotonic()
                alive = self.accounts.cached_session(cookie) or await run_in_threadpool(self.accounts.session, cookie)
                if alive is None:
                    log.info("a live connection's session ended; the connection is closed")
                    return {"type": "websocket.disconnect", "code": 1008}
            return message

        return watched

    def _sign_in_page(self, scope: Scope) -> bool:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return any(cid in self.accounts.sign_in_clients for cid in query.get("client_id", []))

    async def refuse(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["method"] in ("GET", "HEAD") and not path.startswith(NO_REDIRECT):
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            location = "/login" if target == "/" else f"/login?next={quote(target, safe='')}"
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", location.encode()), (b"content-length", b"0"),
                                    (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": b""})
            return
        await _answer(send, 401, {"error": "sign in first (at /login), or send an API key as `X-API-Key: <key>`"},
                      [(b"www-authenticate", b'Bearer realm="flowboard"')])


def session_token(header: str) -> str | None:
    """The session cookie's value from a Cookie header (a split, not `http.cookies`, which costs ~20x more)."""
    if COOKIE not in header:
        return None
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value.strip().strip('"') or None
    return None


def same_origin(scope: Scope) -> bool:
    """A browser names the page that sent a POST in `Origin`; it must be this server. No Origin: not a browser's
    cross-site request (browsers send it on every cross-origin POST)."""
    origin = host = None
    for name, value in scope["headers"]:
        if name == b"origin":
            origin = value.decode("latin-1")
        elif name == b"host":
            host = value.decode("latin-1")
    if origin is None:
        return True
    if origin == "null":
        return False
    netloc = urlsplit(origin).netloc.lower()
    public = os.environ.get("FLOWBOARD_PUBLIC_URL")  # behind a reverse proxy the Host header may be rewritten
    return netloc == (host or "").lower() or (public is not None and netloc == urlsplit(public).netloc.lower())


async def _answer(send: Send, status: int, body: dict[str, str],
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = orjson.dumps({**body, "problems": []})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": data})
