"""Accounts, roles, sessions and the guard in front of every page and API route.

```
 AuthGuard (ASGI, outer app) ─▶ Accounts.session / Store.check_api_key ─▶ Principal in the scope + current_principal()
 pages: ui.access.require(Permission.x)      API: api.access.require(Permission.x)      services: current_principal()
```

For a new page: `@ui.page("/inbox")` then `@require(Permission.inbox)` (flowboard.ui.access); a page that is a role's
landing page adds itself to `roles.HOMES`. For a new API router: `dependencies=[Depends(authenticate(fb)),
require(Permission.inbox)]` (flowboard.api.keys, flowboard.api.access). "Who did this": `current_principal()` in a
request or websocket handler (`.user_id`, `.name`, `.label`); the people: `fb.accounts.list_users()`,
`fb.accounts.users_with_role(Role.approver)`.
"""

from .accounts import ADD_ADMIN, AccountError, Accounts, SignInRefused, clean_name
from .principal import LOCAL, SCOPE_KEY, Principal, current_principal
from .roles import DESCRIPTIONS, PERMISSIONS, Permission, Role, parse_roles, permissions_of

__all__ = ["ADD_ADMIN", "DESCRIPTIONS", "LOCAL", "PERMISSIONS", "SCOPE_KEY", "AccountError", "Accounts", "Permission",
           "Principal", "Role", "SignInRefused", "clean_name", "current_principal", "parse_roles", "permissions_of"]
