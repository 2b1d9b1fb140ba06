"""Signing in and out, as plain routes of the outer app (the form on the NiceGUI page `/login` posts here, so the
session cookie is set by an HTTP answer and can be HttpOnly). (`/healthz` is in health.py.)

    POST /login    user, password, next → 303 to `next` (a path of this server) or the user's home, with the cookie;
                   refused → 303 back to /login with the reason (`?failed=1`, `?missing=1`,
                   `?wait=MINUTES`)
    POST /logout   ends the session, deletes the cookie → 303 /login?out=1
"""

from __future__ import annotations

import logging
import math
import os
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..auth import SignInRefused
from ..auth.guard import COOKIE, same_origin, session_token
from ..auth.roles import home_for

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..services import Flowboard

log = logging.getLogger("flowboard.auth")
MAX_FORM = 16 * 1024


def secure_cookies() -> bool:
    """Cookies get `Secure` when the server is reached over HTTPS (FLOWBOARD_PUBLIC_URL says so)."""
    return os.environ.get("FLOWBOARD_PUBLIC_URL", "").lower().startswith("https://")


def safe_next(target: str | None) -> str | None:
    """A path on this server to go back to after signing in; anything else (another site, `//host`) is dropped."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or len(target) > 2000:
        return None
    if any(c in target for c in "\r\n\t"):
        return None
    return target


def routes(fb: Flowboard) -> list[BaseRoute]:
    async def login(request: Request) -> Response:
        if not same_origin(request.scope):  # another site's form signing the browser in to an account of theirs
            return JSONResponse({"error": "this sign-in came from another web site and was refused"}, 403)
        body = await request.body()
        if len(body) > MAX_FORM:
            return RedirectResponse("/login?failed=1", 303)
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        name, password = form.get("user", "").strip(), form.get("password", "")
        target = safe_next(form.get("next"))
        address = request.client.host if request.client else None
        try:
            token, principal = await run_in_threadpool(fb.accounts.sign_in, name, password, address)
        except SignInRefused as exc:
            log.warning("sign-in refused for %r from %s: %s", name[:64], address, exc)
            back = {"user": name[:64], **({"next": target} if target else {})}
            if exc.wait:
                reason = {"wait": str(max(1, math.ceil(exc.wait / 60)))}
            else:
                reason = {"missing" if not (name and password) else "failed": "1"}
            return RedirectResponse(f"/login?{urlencode({**reason, **back})}", 303)
        log.info("%s signed in from %s", principal.name, address)
        response = RedirectResponse(target or home_for(principal.permissions), 303)
        response.set_cookie(COOKIE, token, max_age=int(fb.accounts.lifetime), path="/", httponly=True,
                            samesite="lax", secure=secure_cookies())
        return response

    async def logout(request: Request) -> Response:
        token = session_token(request.headers.get("cookie", ""))
        if token:
            await run_in_threadpool(fb.accounts.sign_out, token)
        response = RedirectResponse("/login?out=1", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=secure_cookies())
        return response

    return [Route("/login", login, methods=["POST"], name="sign_in"),
            Route("/logout", logout, methods=["POST"], name="sign_out")]


def register(app: Starlette, fb: Flowboard) -> None:
    """Ahead of NiceGUI's mount (whose GET /login is the page with the form)."""
    app.router.routes[0:0] = routes(fb)
