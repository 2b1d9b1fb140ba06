"""Who is asking: a signed-in user, an API key acting for its owner, or the local user of single-user mode.

The guard puts the principal in the ASGI scope (`scope["flowboard.principal"]`) and in a context variable for the
request it serves, so a service can ask `current_principal()` (e.g. to record who decided an approval) without every
call passing it down. NiceGUI event handlers run in tasks started inside the websocket connection the guard admitted,
so they see the principal of that connection.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .roles import Permission, Role, permissions_of

SCOPE_KEY = "flowboard.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str | None  # None: the local user of single-user mode, or an API key made before users existed
    name: str
    full_name: str = ""
    roles: frozenset[Role] = frozenset()
    via: str = "session"  # session | api_key | local
    session_id: str | None = None  # the hash of the session cookie, for a signed-in browser
    permissions: frozenset[Permission] = field(default=frozenset())

    @classmethod
    def of(cls, user_id: str | None, name: str, roles: Any, *, full_name: str = "", via: str = "session",
           session_id: str | None = None) -> Principal:
        roles = frozenset(Role(r) for r in roles)
        return cls(user_id, name, full_name, roles, via, session_id, permissions_of(roles))

    def can(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.permissions

    @property
    def label(self) -> str:
        """How the header names them: their full name, else their user name."""
        return self.full_name or self.name

    @property
    def roles_text(self) -> str:
        return ", ".join(role.value for role in Role if role in self.roles)


LOCAL = Principal.of(None, "local", [Role.admin], full_name="Local user", via="local")

_current: ContextVar[Principal | None] = ContextVar("flowboard_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the request or websocket being served, or None outside of one (CLI, schedules)."""
    return _current.get()


def set_current(principal: Principal | None) -> Any:
    """Set the principal for the current context; returns the token for `reset_current`."""
    return _current.set(principal)


def reset_current(token: Any) -> None:
    _current.reset(token)
