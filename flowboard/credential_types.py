"""The credential types the UI and the CLI make, with their fields. The nodes read these fields by name (http.request:
bearer, basic, header, query, cookie; sql.query: database; webhook secrets: secret; email.send: smtp; chat.post:
chat_webhook; the broker nodes: redis, rabbitmq, mqtt, nats)."""

from __future__ import annotations

from typing import Any

#: Each type's fields: (key, label, secret). Secret fields are never shown again once saved.
TYPES: dict[str, list[tuple[str, str, bool]]] = {
    "bearer": [("token", "Token", True)],
    "basic": [("user", "User", False), ("password", "Password", True)],
    "header": [("name", "Header name", False), ("value", "Value", True)],
    "query": [("name", "Query parameter name", False), ("value", "Value", True)],
    "cookie": [("name", "Cookie name", False), ("value", "Value", True)],
    "database": [("url", "Database URL", True)],
    "secret": [("value", "Value", True)],
    "smtp": [("host", "Mail server (host name)", False),
             ("port", "Port (empty: 587, 465 for tls, 25 for plain)", False),
             ("security", "Security: starttls, tls or plain", False), ("user", "User (empty: no login)", False),
             ("password", "Password", True),
             ("certificate", "Trusted certificate, PEM (only for a server with its own certificate)", False)],
    "chat_webhook": [("url", "Incoming webhook URL", True)],
    "redis": [("url", "Redis URL, e.g. redis://:password@127.0.0.1:6379/0", True)],
    "rabbitmq": [("url", "RabbitMQ URL, e.g. amqp://user:password@127.0.0.1:5672/", True)],
    "mqtt": [("host", "MQTT broker (host name)", False), ("port", "Port (empty: 1883)", False),
             ("user", "User (empty: no login)", False), ("password", "Password", True)],
    "nats": [("url", "NATS server URL, e.g. nats://user:password@127.0.0.1:4222", True)],
}

#: What the credentials page calls each type.
LABELS: dict[str, str] = {
    "bearer": "Bearer token", "basic": "Basic auth (user, password)", "header": "Header (name, value)",
    "query": "Query parameter (name, value)", "cookie": "Cookie (name, value)",
    "database": "Database URL", "secret": "Secret value", "smtp": "Email server (SMTP)",
    "chat_webhook": "Chat webhook (Slack, Teams, Discord, Mattermost)",
    "redis": "Redis connection", "rabbitmq": "RabbitMQ connection", "mqtt": "MQTT broker connection",
    "nats": "NATS connection",
}

#: Fields that may stay empty.
OPTIONAL: dict[str, frozenset[str]] = {"smtp": frozenset({"port", "security", "user", "password", "certificate"}),
                                       "mqtt": frozenset({"port", "user", "password"})}

#: Fields with a fixed set of values (checked on save, so a typo shows at once rather than at the first run).
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {("smtp", "security"): ("starttls", "tls", "plain")}


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
            if key in OPTIONAL.get(type_, ()):
                continue
            raise ValueError(f"{label} ({key}) is required")
        choices = CHOICES.get((type_, key))
        if choices and str(value).strip().lower() not in choices:
            raise ValueError(f"{label} ({key}) must be one of {', '.join(choices)}, not {value!r}")
        data[key] = value
    return data
