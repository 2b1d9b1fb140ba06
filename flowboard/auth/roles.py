"""Roles and permissions, as data: a page or an API route declares the permission it needs, and a role is the set of
permissions it grants. A user may hold several roles (a manager both requests leave and approves it).

    admin      everything, including the users
    editor     flows and their runs, credentials and API keys, data tables
    approver   the inbox: the tasks they may decide, and their own decisions
    requester  the public forms, and the state of their own requests
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Permission(StrEnum):
    flows = "flows"  # see, edit, run, activate flows; their runs; the webhook test URL; the REST API for flows
    credentials = "credentials"  # credentials and REST API keys
    tables = "tables"  # data tables
    users = "users"  # add, change and remove users
    inbox = "inbox"  # decide the approval tasks given to them; see their own decisions
    requests = "requests"  # fill in forms; see the state of their own requests


class Role(StrEnum):
    admin = "admin"
    editor = "editor"
    approver = "approver"
    requester = "requester"


PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.editor: frozenset({Permission.flows, Permission.credentials, Permission.tables, Permission.requests}),
    Role.approver: frozenset({Permission.inbox, Permission.requests}),
    Role.requester: frozenset({Permission.requests}),
}

#: What each role may do, in the words the user list and the CLI show.
DESCRIPTIONS: dict[Role, str] = {
    Role.admin: "everything, including adding and removing users",
    Role.editor: "builds and runs flows, manages credentials and data tables",
    Role.approver: "decides the approvals given to them in the inbox",
    Role.requester: "fills in forms and follows their own requests",
}


def permissions_of(roles: Iterable[Role | str]) -> frozenset[Permission]:
    out: set[Permission] = set()
    for role in roles:
        out |= PERMISSIONS[Role(role)]
    return frozenset(out)


def parse_roles(values: Iterable[str]) -> list[Role]:
    """Role names as given by a person ("Admin", "editor, approver") → roles, in the order of `Role`. Raises
    ValueError naming the known roles."""
    wanted: set[Role] = set()
    for value in values:
        for part in value.replace(",", " ").split():
            try:
                wanted.add(Role(part.strip().lower()))
            except ValueError:
                raise ValueError(f"there is no role {part!r}; the roles are {', '.join(Role)}") from None
    if not wanted:
        raise ValueError(f"a user needs at least one role: {', '.join(Role)}")
    return [role for role in Role if role in wanted]


#: Where a user lands after signing in, and where a page they may not open sends them: the first entry whose
#: permission they have. A page that serves a role as its home adds itself (the inbox: `(Permission.inbox,
#: "/inbox")`); everyone else gets `/me`, which says what they can do.
HOMES: list[tuple[Permission, str]] = [(Permission.flows, "/"), (Permission.inbox, "/inbox")]
FALLBACK_HOME = "/me"


def home_for(permissions: frozenset[Permission]) -> str:
    return next((path for permission, path in HOMES if permission in permissions), FALLBACK_HOME)
