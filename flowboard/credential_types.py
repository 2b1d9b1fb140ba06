"""The credential types: one small declaration each (`CredentialType`), kept in a registry that node packages extend.

A node module (built-in or from a package) declares a type at module level and the node registry picks it up with
the module's node types; `register()` does it by hand. The credentials page, the CLI and the API derive everything
from the declaration: the form (labels, secret fields, choices), the checks on save, and "Test connection".

Nodes read a credential's fields by name through `ctx.credential(name)`, which adds `type`. The HTTP request node
takes api_key, bearer, basic, header, query, cookie and both OAuth2 types (their current `access_token`, fetched or
refreshed by Flowboard); sql.query takes database (url) and db (a connection whose `url` Flowboard derives); email
takes smtp; the chat nodes chat_webhook; webhook triggers secret/basic/header; the broker nodes redis, rabbitmq,
mqtt and nats.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

#: A "Test connection": gets the credential's data, returns a sentence saying what worked, raises ValueError (or any
#: error) saying what did not.
Tester = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass(frozen=True)
class CredentialField:
    key: str
    label: str
    secret: bool = False
    optional: bool = False
    #: A fixed set of values: (value, label) pairs, shown as a choice and checked on save.
    choices: tuple[tuple[str, str], ...] = ()
    default: str = ""
    help: str = ""


@dataclass(frozen=True)
class CredentialType:
    type: str
    label: str
    fields: tuple[CredentialField, ...]
    help: str = ""
    #: Checks the data as a whole on save (after each field's own checks); raises ValueError in plain words.
    check: Callable[[dict[str, Any]], None] | None = None
    #: Adds fields the nodes read (a database URL from host, port...); never stored.
    derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    #: "Test connection", where the type allows one (OAuth2 types test by fetching a token, without one).
    test: Tester | None = None
    #: "client" (client credentials) or "code" (authorization code with PKCE): Flowboard fetches and refreshes tokens.
    oauth2: str | None = None
    #: Fields Flowboard keeps itself (OAuth2 tokens): never entered, kept on save, never shown.
    managed: tuple[str, ...] = ()

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.fields]


_TYPES: dict[str, CredentialType] = {}


def register(declaration: CredentialType) -> CredentialType:
    """Add a credential type. The same declaration twice is fine (also from a module imported again: same label and
    fields); two different ones for one type id are refused."""
    known = _TYPES.get(declaration.type)
    if known is not None and (known.label, known.fields) != (declaration.label, declaration.fields):
        raise TypeError(f"two credential types claim {declaration.type!r}: {known.label!r} and "
                        f"{declaration.label!r}")
    _TYPES[declaration.type] = declaration
    return declaration


def get(type_: str) -> CredentialType | None:
    return _TYPES.get(type_)


def all_types() -> dict[str, CredentialType]:
    """Every registered type by id, in the order they were declared."""
    return dict(_TYPES)


def credential_data(type_: str, entered: dict[str, str], stored: dict[str, Any] | None) -> dict[str, Any]:
    """The data to save for a credential of `type_`: what was entered; a blank field keeps its `stored` value (pass
    the stored data only when the type is unchanged), and so do the fields Flowboard manages (OAuth2 tokens). Raises
    ValueError for an unknown type or field, or naming the first field still empty or not one of its choices."""
    declaration = _TYPES.get(type_)
    if declaration is None:
        raise ValueError(f"unknown credential type {type_!r}; the types are {', '.join(_TYPES)}")
    unknown = [key for key in entered if key not in declaration.keys]
    if unknown:
        raise ValueError(f"a {type_} credential has no field {unknown[0]!r}; its fields are "
                         f"{', '.join(declaration.keys)}")
    data: dict[str, Any] = {}
    for f in declaration.fields:
        value = entered.get(f.key, "")
        if not value and stored is not None:
            value = stored.get(f.key, "")
        if not value:
            value = f.default
        if not value:
            if f.optional:
                continue
            raise ValueError(f"{f.label} ({f.key}) is required")
        if f.choices:
            allowed = [v for v, _ in f.choices]
            value = str(value).strip().lower()
            if value not in allowed:
                raise ValueError(f"{f.label} ({f.key}) must be one of {', '.join(allowed)}, not {value!r}")
        data[f.key] = value
    if declaration.check is not None:
        declaration.check(data)
    if stored is not None and declaration.managed and _same_account(declaration, data, stored):
        data.update({key: stored[key] for key in declaration.managed if key in stored})
    return data


def _same_account(declaration: CredentialType, data: dict[str, Any], stored: dict[str, Any]) -> bool:
    """Tokens stay valid while the provider and the client stay the same."""
    return all(data.get(k) == stored.get(k) for k in ("token_url", "authorize_url", "client_id") if k in data)


def for_nodes(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """What a node sees: the stored fields, the type, and what the type derives (a database URL)."""
    declaration = _TYPES.get(type_)
    out = {"type": type_, **data}
    if declaration is not None and declaration.derive is not None:
        out.update(declaration.derive(data))
    return out


def secret_values(type_: str, data: dict[str, Any]) -> list[str]:
    """The secret values of a credential (its secret fields and managed tokens), to look for where they must not be."""
    declaration = _TYPES.get(type_)
    if declaration is None:
        return [str(v) for v in data.values() if isinstance(v, str)]
    keys = {f.key for f in declaration.fields if f.secret} | set(declaration.managed) - {"expires_at"}
    return [str(data[k]) for k in keys if data.get(k)]


# -- the built-in types -------------------------------------------------------------------------------------------

_TEST_URL = CredentialField("test_url", "Address to try it on (optional, for Test connection), e.g. "
                            "https://api.example.com/me", optional=True)


def _test_http(place: str) -> Tester:
    async def test(data: dict[str, Any]) -> str:
        from .credential_checks import check_http

        return await check_http(place, data)

    return test


def _test(name: str) -> Tester:
    async def test(data: dict[str, Any]) -> str:
        from . import credential_checks

        result: str = await getattr(credential_checks, name)(data)
        return result

    return test


def _db_check(data: dict[str, Any]) -> None:
    if data.get("kind") == "sqlite":
        if not data.get("database"):
            raise ValueError("Database (database) is required: for SQLite, the path of the database file")
        return
    for key, label in (("host", "Server (host)"), ("database", "Database (database)")):
        if not data.get(key):
            raise ValueError(f"{label} is required for {_DB_KINDS[data['kind']]}")
    port = str(data.get("port") or "")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"Port (port) must be a number from 1 to 65535, not {port!r}")


_DB_KINDS = {"postgresql": "PostgreSQL", "mariadb": "MariaDB or MySQL", "sqlite": "SQLite"}
_DB_DRIVERS = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}


def database_url(data: dict[str, Any]) -> str:
    """The SQLAlchemy URL of a database connection (kind, host, port, user, password, database)."""
    kind = data.get("kind", "postgresql")
    if kind == "sqlite":
        return f"sqlite:///{data['database']}"
    user = quote(str(data.get("user") or ""), safe="")
    password = quote(str(data.get("password") or ""), safe="")
    login = f"{user}:{password}@" if user and password else f"{user}@" if user else ""
    port = f":{data['port']}" if data.get("port") else ""
    return f"{_DB_DRIVERS[kind]}://{login}{data['host']}{port}/{quote(str(data['database']), safe='')}"


def _smtp_check(data: dict[str, Any]) -> None:
    port = str(data.get("port") or "")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise ValueError(f"Port (port) must be a number from 1 to 65535, not {port!r}")


for _declaration in (
    CredentialType("api_key", "API key (in a header or the query)", (
        CredentialField("where", "Where the key goes", choices=(("header", "In a header"),
                                                                ("query", "In a query parameter")), default="header"),
        CredentialField("name", "Header or query parameter name, e.g. X-API-Key or api_key", default="X-API-Key"),
        CredentialField("value", "API key", secret=True), _TEST_URL),
        help="A key the API gave you, sent with every request in the header or query parameter you name.",
        test=_test_http("api_key")),
    CredentialType("bearer", "Bearer token", (CredentialField("token", "Token", secret=True), _TEST_URL),
                   help="Sent as Authorization: Bearer followed by the token.", test=_test_http("bearer")),
    CredentialType("basic", "Basic auth (user, password)", (
        CredentialField("user", "User"), CredentialField("password", "Password", secret=True), _TEST_URL),
        help="A user name and password, sent as HTTP basic authentication.", test=_test_http("basic")),
    CredentialType("oauth2_client", "OAuth2 (client credentials: app to app)", (
        CredentialField("token_url", "Token address (token URL), e.g. https://login.example.com/oauth/token"),
        CredentialField("client_id", "Client ID"),
        CredentialField("client_secret", "Client secret", secret=True),
        CredentialField("scope", "Scopes, separated by spaces (optional)", optional=True),
        CredentialField("audience", "Audience (optional; some providers ask for it)", optional=True),
        CredentialField("client_auth", "How the client ID and secret are sent to the token address", choices=(
            ("basic", "As HTTP basic auth (the usual way)"), ("body", "In the request body (some providers ask so)")),
            default="basic")),
        help="Flowboard fetches an access token with the client ID and secret, and a new one before it expires.",
        oauth2="client"),
    CredentialType("oauth2_code", "OAuth2 (sign in to an account)", (
        CredentialField("authorize_url", "Sign-in address (authorization URL), e.g. "
                        "https://login.example.com/oauth/authorize"),
        CredentialField("token_url", "Token address (token URL), e.g. https://login.example.com/oauth/token"),
        CredentialField("client_id", "Client ID"),
        CredentialField("client_secret", "Client secret (empty for a public client)", secret=True, optional=True),
        CredentialField("scope", "Scopes, separated by spaces (optional)", optional=True),
        CredentialField("client_auth", "How the client ID and secret are sent to the token address", choices=(
            ("basic", "As HTTP basic auth (the usual way)"), ("body", "In the request body (some providers ask so)")),
            default="basic")),
        help="After saving, press Connect and sign in at the provider: Flowboard keeps the tokens encrypted and "
             "renews them before they expire. Register this server's address /oauth/callback as the redirect URL "
             "at the provider.",
        oauth2="code", managed=("access_token", "refresh_token", "expires_at")),
    CredentialType("header", "Header (name, value)", (
        CredentialField("name", "Header name"), CredentialField("value", "Value", secret=True), _TEST_URL),
        test=_test_http("header")),
    CredentialType("query", "Query parameter (name, value)", (
        CredentialField("name", "Query parameter name"), CredentialField("value", "Value", secret=True), _TEST_URL),
        test=_test_http("query")),
    CredentialType("cookie", "Cookie (name, value)", (
        CredentialField("name", "Cookie name"), CredentialField("value", "Value", secret=True), _TEST_URL),
        test=_test_http("cookie")),
    CredentialType("db", "Database connection (PostgreSQL, MariaDB, SQLite)", (
        CredentialField("kind", "Database", choices=tuple(_DB_KINDS.items()), default="postgresql"),
        CredentialField("host", "Server (host name), e.g. db.example.com (not for SQLite)", optional=True),
        CredentialField("port", "Port (empty: 5432 for PostgreSQL, 3306 for MariaDB)", optional=True),
        CredentialField("user", "User", optional=True),
        CredentialField("password", "Password", secret=True, optional=True),
        CredentialField("database", "Database name (for SQLite: the file's path)")),
        check=_db_check, derive=lambda data: {"url": database_url(data)}, test=_test("check_database")),
    CredentialType("database", "Database URL", (CredentialField("url", "Database URL", secret=True),),
                   help="A SQLAlchemy URL such as postgresql+psycopg://user:password@host/db.",
                   test=_test("check_database")),
    CredentialType("smtp", "Email server (SMTP)", (
        CredentialField("host", "Mail server (host name)"),
        CredentialField("port", "Port (empty: 587, 465 for tls, 25 for plain)", optional=True),
        CredentialField("security", "Security", optional=True,
                        choices=(("starttls", "STARTTLS (port 587)"), ("tls", "TLS from the start (port 465)"),
                                 ("plain", "None (port 25, only inside a trusted network)"))),
        CredentialField("user", "User (empty: no login)", optional=True),
        CredentialField("password", "Password", secret=True, optional=True),
        CredentialField("certificate", "Trusted certificate, PEM (only for a server with its own certificate)",
                        optional=True)),
        check=_smtp_check, test=_test("check_smtp")),
    CredentialType("secret", "Secret value", (CredentialField("value", "Value", secret=True),)),
    CredentialType("chat_webhook", "Chat webhook (Slack, Teams, Discord, Mattermost)", (
        CredentialField("url", "Incoming webhook URL", secret=True),)),
    CredentialType("redis", "Redis connection", (
        CredentialField("url", "Redis URL, e.g. redis://:password@127.0.0.1:6379/0", secret=True),),
        test=_test("check_redis")),
    CredentialType("rabbitmq", "RabbitMQ connection", (
        CredentialField("url", "RabbitMQ URL, e.g. amqp://user:password@127.0.0.1:5672/", secret=True),),
        test=_test("check_rabbitmq")),
    CredentialType("mqtt", "MQTT broker connection", (
        CredentialField("host", "MQTT broker (host name)"),
        CredentialField("port", "Port (empty: 1883)", optional=True),
        CredentialField("user", "User (empty: no login)", optional=True),
        CredentialField("password", "Password", secret=True, optional=True)),
        test=_test("check_mqtt")),
    CredentialType("nats", "NATS connection", (
        CredentialField("url", "NATS server URL, e.g. nats://user:password@127.0.0.1:4222", secret=True),),
        test=_test("check_nats")),
):
    register(_declaration)

#: The types that authenticate an HTTP request (the HTTP request node's credential picker offers these).
HTTP_TYPES = ["api_key", "bearer", "basic", "oauth2_client", "oauth2_code", "header", "query", "cookie"]
