"""API keys: who may call `/api/v1`.

A key is `fb_` plus 43 URL-safe characters (256 random bits), made by `Store.create_api_key` (`flowboard api-key
create NAME`, or the editor's settings), shown once, and stored only as its SHA-256 hash. A call sends it as
`X-API-Key: <key>` or `Authorization: Bearer <key>`; anything else is refused with 401 before any other work.

A valid key is trusted for `API_KEY_CACHE` (2) seconds without another database read: that check is most of the cost
of a small API call (measured: an indexed SQLAlchemy lookup costs more than the rest of the route). Revoking in this
process (the editor) takes effect at once; revoking from another process (the CLI) within those 2 seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..auth import SCOPE_KEY, Principal
from ..auth.principal import set_current
from . import ApiError

if TYPE_CHECKING:
    from ..services import Flowboard

log = logging.getLogger("flowboard.api")

HOW = "Create a key with `flowboard api-key create NAME` (or in the editor's settings)."
api_key_header = APIKeyHeader(name="X-API-Key", scheme_name="ApiKey", auto_error=False,
                              description=f"An API key in the `X-API-Key` header. {HOW}")
bearer = HTTPBearer(scheme_name="Bearer", auto_error=False,
                    description=f"An API key as `Authorization: Bearer <key>`. {HOW}")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowboard"'}


def authenticate(fb: Flowboard) -> Callable[..., Awaitable[Principal]]:
    """The dependency that every `/api/v1` route has: who calls, as a principal in the scope (`access.require`
    checks its permissions). A browser signed in to the editor was identified by the guard already; anything else
    needs an API key, which acts for its owner. A database lookup runs in the thread pool, so it never blocks the
    event loop (PostgreSQL is a network round trip away); a key seen valid just before costs no lookup."""

    async def require_api_key(request: Request, header_key: Annotated[str | None, Security(api_key_header)],
                              bearer_key: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
                              ) -> Principal:
        signed_in = request.scope.get(SCOPE_KEY)
        if isinstance(signed_in, Principal):
            return signed_in
        key = header_key or (bearer_key.credentials if bearer_key is not None else None)
        if not key:
            raise ApiError(401, "this API needs an API key: send it as `X-API-Key: <key>` or `Authorization: Bearer "
                                f"<key>`. {HOW}", headers=CHALLENGE)
        key = key.strip()
        info = fb.store.cached_api_key(key) or await run_in_threadpool(fb.store.check_api_key, key)
        if info is None:
            log.warning("%s %s refused: unknown API key", request.method, request.url.path)
            raise ApiError(401, "this API key is not valid: it was revoked, or it is mistyped", headers=CHALLENGE)
        principal = fb.accounts.cached_key_principal(info) or await run_in_threadpool(fb.accounts.key_principal,
                                                                                        info)
        if principal is None:
            raise ApiError(401, "this API key's user was removed, so the key no longer works", headers=CHALLENGE)
        request.scope[SCOPE_KEY] = principal
        set_current(principal)  # this request's context: services see who calls
        return principal

    return require_api_key
