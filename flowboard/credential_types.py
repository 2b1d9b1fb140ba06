"""The credential types the UI and the CLI make, with their fields. The nodes read these fields by name (http.request:
bearer, basic, header; sql.query: database; webhook secrets: secret)."""

from __future__ import annotations

from typing import Any

#: Each type's fields: (key, label, secret). Secret fields are never shown again once saved.
TYPES: dict[str, list[tuple[str, str, bool]]] = {
    "bearer": [("token", "Token", True)],
    "basic": [("user", "User", False), ("password", "Password", True)],
    "header": [("name", "Header name", False), ("value", "Value", True)],
    "database": [("url", "Database URL", True)],
    "secret": [("value", "Value", True)],
}


def credential_data(type_: str, entered: dict[str, str], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The data to save for a credential of `type_`: what was entered; a blank field keeps its `stored` value (pass
    the stored data only when the type is unchanged). Raises ValueError for an unknown type or field, or naming the
    first field still empty."""
    if type_ not in TYPES:
        raise ValueError(f"unknown credential type {type_!r}; the types are {', '.join(TYPES)}")
    keys = [key for key, _label, _secret in TYPES[type_]]
    unknown = [key for key in entered if key not in keys]
    if unknown:
        raise ValueError(f"a {type_} credential has no field {unknown[0]!r}; its fields are {', '.join(keys)}")
    data: dict[str, Any] = {}
    for key, label, _secret in TYPES[type_]:
        value = entered.get(key, "")
        if not value and stored is not None:
            value = stored.get(key, "")
        if not value:
            raise ValueError(f"{label} ({key}) is required")
        data[key] = value
    return data
