"""Who may open a page: `@require(Permission.flows)` under `@ui.page(...)`; `@public` for the few pages anyone may
open (the sign-in page). A test enumerates every NiceGUI page and fails on one that declares neither.

The guard in front of the app has already sent a browser without a session to `/login`. Here a signed-in user
without the permission is sent to their home page (a requester never reaches the editor: they land on `/me`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from nicegui import context
from starlette.responses import RedirectResponse

from ..auth import LOCAL, SCOPE_KEY, Accounts, Permission, Principal
from ..auth.roles import home_for

F = TypeVar("F", bound=Callable[..., Any])
_accounts: list[Accounts] = []  # the server's accounts (set by `pages.register`), for single-user mode


def use_accounts(accounts: Accounts) -> None:
    _accounts[:] = [accounts]


def page_principal() -> Principal | None:
    """Who this page (or the websocket event being handled) is for; the local user in single-user mode."""
    try:
        client = context.client
    except RuntimeError:
        return None
    scope: dict[str, Any] = {}
    if client.environ is not None:  # the websocket, once connected
        scope = client.environ.get("asgi.scope") or {}
    principal = scope.get(SCOPE_KEY)
    if principal is None:
        with_request = getattr(client, "_request", None)
        if with_request is not None:
            principal = with_request.scope.get(SCOPE_KEY)
    if principal is None and _accounts and not _accounts[0].required():
        principal = LOCAL
    return principal if isinstance(principal, Principal) else None


def require(permission: Permission | None) -> Callable[[F], F]:
    """The page needs `permission`; `None`: any signed-in user (a page everyone has, like `/me`)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def page(*args: Any, **kwargs: Any) -> Any:
            principal = page_principal()
            if principal is None:
                return RedirectResponse("/login", 303)
            if permission is not None and not principal.can(permission):
                return RedirectResponse(home_for(principal.permissions), 303)
            return func(*args, **kwargs)

        page.permission = permission or "signed-in"  # type: ignore[attr-defined]
        return page  # type: ignore[return-value]

    return decorate


def public(func: F) -> F:
    """A page anyone may open, signed in or not."""
    func.permission = "public"  # type: ignore[attr-defined]
    return func
