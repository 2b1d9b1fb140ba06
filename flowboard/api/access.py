"""Permission checks for API routes: `dependencies=[require(Permission.flows)]` on a route or a router.

The router's `authenticate` dependency (keys.py) runs first and puts the principal in the scope: the signed-in user
of a browser session (the guard found it) or the owner of the API key. A principal without the permission gets 403
naming what they would need.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request

from ..auth import PERMISSIONS, SCOPE_KEY, Permission, Principal
from . import ApiError


def who_may(permission: Permission) -> str:
    roles = [role.value for role, granted in PERMISSIONS.items() if permission in granted]
    return " or ".join(f"{r}s" for r in roles)


def principal_of(request: Request) -> Principal:
    principal = request.scope.get(SCOPE_KEY)
    if not isinstance(principal, Principal):
        raise ApiError(401, "this API needs an API key or a signed-in browser")
    return principal


def require(permission: Permission) -> Any:
    async def check(request: Request) -> Principal:
        principal = principal_of(request)
        if not principal.can(permission):
            raise ApiError(403, f"{principal.label} ({principal.roles_text or 'no role'}) may not use this part of "
                                f"the API: it is for {who_may(permission)}")
        return principal

    return Depends(check)
