"""A real OAuth2 provider and a protected API for tests: aiohttp on 127.0.0.1, a free port. No mocks: it checks what
a real provider checks (client authentication, PKCE S256, redirect URI, one-time codes, refresh tokens that rotate
and can be revoked, token expiry), and the API checks every credential type on each request.

    async with AuthServer() as server:
        server.url("/authorize"), server.url("/token"), server.url("/api/me")
        server.expires_in = 30         # seconds, for the access tokens issued from now on
        server.revoke_refresh_tokens() # the next refresh fails with invalid_grant

Routes:
- GET  /authorize   the user "signs in" at once: a 302 back to redirect_uri with code and state (or error=...)
- POST /token       grant types authorization_code (with code_verifier), refresh_token, client_credentials
- *    /api/me      200 {"ok": true, "via": ...} for a valid access token, the API key (header X-API-Key or query
                    api_key), basic auth, or the session cookie; 401 otherwise
- *    /busy/{key}  answers `?status=` (429) with `Retry-After: ?after=` (seconds, or `date` for an HTTP date) for the
                    first `?times=` requests of that key, then 200 {"tries": n}
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Self
from urllib.parse import urlencode

from aiohttp import web

from .servers import serve

CLIENT_ID = "flowboard-test"
CLIENT_SECRET = f"client-secret-{secrets.token_hex(8)}"
PUBLIC_CLIENT = "flowboard-public"
API_KEY = f"api-key-{secrets.token_hex(8)}"
BASIC = ("ada", f"basic-pw-{secrets.token_hex(8)}")
COOKIE = ("sid", f"cookie-{secrets.token_hex(8)}")


class AuthServer:
    def __init__(self) -> None:
        self.port = 0
        self.expires_in = 3600
        self.codes: dict[str, dict[str, Any]] = {}
        self.access: dict[str, float] = {}  # token -> expiry
        self.refresh: set[str] = set()
        self.grants: list[str] = []  # every grant type the token endpoint issued a token for, in order
        self.client_auth: list[str] = []  # how the client signed in at each token request: basic, body or public
        self.api_calls: list[str] = []  # "via" of every accepted /api/me call
        self.busy: dict[str, int] = {}
        self.issued: list[str] = []  # every token and code issued (for the secrets sweep)
        #: Awaited (once) when a refresh arrives, before it is answered: another client's refresh can come first.
        self.on_refresh: Callable[[], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def revoke_refresh_tokens(self) -> None:
        self.refresh.clear()

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        app.router.add_route("*", "/api/me", self._me)
        app.router.add_route("*", "/busy/{key}", self._busy)
        self._runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _new(self, prefix: str) -> str:
        value = f"{prefix}-{secrets.token_urlsafe(16)}"
        self.issued.append(value)
        return value

    async def _authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") not in (CLIENT_ID, PUBLIC_CLIENT) or q.get("response_type") != "code" or not redirect:
            return web.json_response({"error": "invalid_request"}, status=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.Response(status=302, headers={"Location": redirect + "?" + urlencode(
                {"error": "invalid_request", "error_description": "PKCE S256 is required", "state": q.get("state")})})
        code = self._new("code")
        self.codes[code] = {"client_id": q["client_id"], "redirect_uri": redirect, "challenge": q["code_challenge"],
                            "scope": q.get("scope")}
        return web.Response(status=302, headers={"Location": redirect + "?" + urlencode(
            {"code": code, "state": q.get("state", "")})})

    def _client(self, request: web.Request, form: Any) -> str | None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            self.client_auth.append("basic")
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user if (user, password) == (CLIENT_ID, CLIENT_SECRET) else None
        if form.get("client_id") == PUBLIC_CLIENT and not form.get("client_secret"):
            self.client_auth.append("public")
            return PUBLIC_CLIENT
        self.client_auth.append("body")
        if (form.get("client_id"), form.get("client_secret")) == (CLIENT_ID, CLIENT_SECRET):
            return CLIENT_ID
        return None

    def _tokens(self, grant: str, refresh: bool) -> web.Response:
        access = self._new("access")
        self.access[access] = time.time() + self.expires_in
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in}
        if refresh:
            token = self._new("refresh")
            self.refresh.add(token)
            body["refresh_token"] = token
        self.grants.append(grant)
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        client = self._client(request, form)
        if client is None:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if client != CLIENT_ID:
                return web.json_response({"error": "unauthorized_client"}, status=400)
            return self._tokens(grant, refresh=False)
        if grant == "authorization_code":
            code = self.codes.pop(str(form.get("code", "")), None)  # one use only
            if code is None or code["client_id"] != client or code["redirect_uri"] != form.get("redirect_uri"):
                return web.json_response({"error": "invalid_grant"}, status=400)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if challenge != code["challenge"]:
                return web.json_response({"error": "invalid_grant", "error_description": "PKCE check failed"},
                                         status=400)
            return self._tokens(grant, refresh=True)
        if grant == "refresh_token":
            if self.on_refresh is not None:
                hook, self.on_refresh = self.on_refresh, None
                await hook()
            token = str(form.get("refresh_token", ""))
            if token not in self.refresh:
                return web.json_response({"error": "invalid_grant", "error_description": "refresh token revoked"},
                                         status=400)
            self.refresh.discard(token)  # rotation: each refresh token works once
            return self._tokens(grant, refresh=True)
        return web.json_response({"error": "unsupported_grant_type"}, status=400)

    async def _me(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        via = None
        if auth.startswith("Bearer ") and self.access.get(auth[7:], 0) > time.time():
            via = "bearer"
        elif auth.startswith("Basic ") and base64.b64decode(auth[6:]).decode() == ":".join(BASIC):
            via = "basic"
        elif request.headers.get("X-API-Key") == API_KEY:
            via = "header"
        elif request.query.get("api_key") == API_KEY:
            via = "query"
        elif request.cookies.get(COOKIE[0]) == COOKIE[1]:
            via = "cookie"
        if via is None:
            return web.json_response({"error": "not signed in"}, status=401)
        self.api_calls.append(via)
        return web.json_response({"ok": True, "via": via})

    async def _busy(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        tries = self.busy[key] = self.busy.get(key, 0) + 1
        if tries <= int(request.query.get("times", "1")):
            after = request.query.get("after", "1")
            if after == "date":
                after = email.utils.formatdate(time.time() + 1, usegmt=True)
            headers = {"Retry-After": after} if after != "none" else {}
            return web.json_response({"busy": tries}, status=int(request.query.get("status", "429")), headers=headers)
        return web.json_response({"tries": tries})
