"""What a node type sees. A node module imports this and the libraries it wraps, nothing else of Flowboard.

A node type is one class::

    class Uppercase(NodeType):
        type = "text.upper"
        title = "Uppercase"
        category = Category.logic
        icon = "text_fields"
        description = "Uppercases one field of every item."

        class Config(BaseModel):
            field: str = Field(description="Field to uppercase")

        async def run(self, ctx: Context, config: Config, inputs: Inputs) -> Outputs:
            return [{**item, config.field: str(item.get(config.field, "")).upper()} for item in inputs["main"]]

`run` gets the items on each input port and returns the items for each output port (a dict), or a list for the single
`main` output. An empty port means "branch not taken": nodes fed only by it are skipped. Config values may hold
expressions (`{{ item.email }}`); `config` is rendered against the first input item, and `ctx.each(items)` gives each
item with the config rendered for it, for nodes that work item by item.

Items a node receives are frozen (other nodes and the run's record share them): build changed copies, such as
`{**item, "field": value}`. A node that makes new items other than one per input item, in order, says where each
came from with `ctx.paired(new_item, input_index)`, so `nodes['Earlier'].item` finds the matching item after it.

A node module may declare a credential type beside its node types, one declaration at module level::

    TICKETS_KEY = CredentialType("tickets_key", "Tickets API key", (CredentialField("key", "API key", secret=True),))

It appears on the credentials page and in the CLI; `ctx.credential(name)` gives its fields and `type`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .blobs import Blobs, FileTooLarge, is_file_ref
from .credential_types import CredentialField, CredentialType
from .curl import CurlError, CurlRequest, parse_curl
from .datatables import Change as TableChange
from .datatables import Condition as TableCondition
from .datatables import Op as TableOp
from .datatables import Sort as TableSort
from .errors import NodeError
from .frozen import FrozenDict, FrozenList, freeze
from .regex import compile_regex
from .values import MISSING, UrlPath, child, get_path, split_path, to_bool, to_date, to_number, to_text

if TYPE_CHECKING:
    import httpx
    import sqlalchemy

    from .coderun import CodeRunner
    from .notify.chat import SERVICE_NAMES, ChatConfig, Service, post_messages
    from .notify.email import EmailConfig, send_messages

Item = dict[str, Any]
Items = list[Item]
Inputs = Mapping[str, Items]
Outputs = dict[str, Items] | Items

__all__ = [
    "MISSING",
    "SERVICE_NAMES",
    "Approvals",
    "Category",
    "ChatConfig",
    "Context",
    "CredentialField",
    "CredentialType",
    "CurlError",
    "CurlRequest",
    "EmailConfig",
    "Emit",
    "EmptyConfig",
    "Files",
    "Flows",
    "FrozenDict",
    "FrozenList",
    "Inputs",
    "Item",
    "Items",
    "Listening",
    "NodeError",
    "NodeType",
    "Outputs",
    "PasteImport",
    "PastedConfig",
    "RunOutcome",
    "Server",
    "ServerConnection",
    "Service",
    "Suspend",
    "TableChange",
    "TableCondition",
    "TableOp",
    "TableSort",
    "Tables",
    "UrlPath",
    "child",
    "compile_regex",
    "freeze",
    "get_path",
    "message_bytes",
    "message_value",
    "parse_curl",
    "plain",
    "post_messages",
    "secret_forms",
    "send_messages",
    "split_path",
    "to_bool",
    "to_date",
    "to_number",
    "to_text",
]

#: Telling people (flowboard/notify/): imported on first use, as those modules import this one.
_NOTIFY = {"EmailConfig": "email", "send_messages": "email", "ChatConfig": "chat", "Service": "chat",
           "SERVICE_NAMES": "chat", "post_messages": "chat"}


def __getattr__(name: str) -> Any:
    if name in _NOTIFY:
        import importlib

        return getattr(importlib.import_module(f"flowboard.notify.{_NOTIFY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_node_log = logging.getLogger("flowboard.node")

# httpx logs every request's URL at INFO (an API key in a query string with it) and httpcore every answer's headers at
# DEBUG (a Set-Cookie, an OAuth2 code in a Location): secrets must never reach a log, so below WARNING they stay quiet.
for _library in ("httpx", "httpcore"):
    logging.getLogger(_library).setLevel(logging.WARNING)


def secret_forms(secret: str) -> set[str]:
    """A secret and the forms it travels in: URL-encoded (query strings, forms, URLs a server echoes) and base64
    (basic auth, tokens a server wraps). A node that blanks a secret out of its output or errors blanks all of them,
    since a leak in any of these forms is as bad as the secret itself."""
    import base64
    from urllib.parse import quote, quote_plus

    raw = secret.encode()
    b64 = base64.b64encode(raw).decode("ascii")
    urlsafe = base64.urlsafe_b64encode(raw).decode("ascii")
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), b64, b64.rstrip("="), urlsafe,
            urlsafe.rstrip("=")}


class Category(StrEnum):
    trigger = "trigger"
    logic = "logic"
    integration = "integration"


class EmptyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass
class PastedConfig:
    """What pasted text gave: the node's config values, a credential to save for it (suggested name, type, data;
    the config's `credential` field then names it), and notes on what could not be carried over."""

    config: dict[str, Any]
    credential: tuple[str, str, dict[str, Any]] | None = None
    notes: list[str] = dataclass_field(default_factory=list)


@dataclass(frozen=True)
class PasteImport:
    """A node type's "fill the form from pasted text" (the HTTP request node: a curl command). `parse` raises
    ValueError in plain words for text it cannot read."""

    label: str
    hint: str
    parse: Callable[[str], PastedConfig]


class NodeType:
    """Base class of every node type. Subclasses set the class attributes and implement `run`."""

    type: ClassVar[str]
    version: ClassVar[int] = 1
    title: ClassVar[str]
    category: ClassVar[Category]
    icon: ClassVar[str] = "widgets"  # a Material Symbols name
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[str, ...]] = ("main",)
    outputs: ClassVar[tuple[str, ...]] = ("main",)
    Config: ClassVar[builtins.type[BaseModel]] = EmptyConfig
    #: True for nodes that change the world (HTTP, SQL, email): their finished steps are written to the store before
    #: the run goes on, so a crash never makes them run twice.
    side_effects: ClassVar[bool] = False
    #: True for nodes with side effects whose work may be done again harmlessly (idempotent calls): after a timeout
    #: it is tried again, and a step that a stop of Flowboard or of a worker interrupted runs again when the run
    #: resumes. Without it such a step is not repeated: a timed-out one fails, and an interrupted one fails with a
    #: message asking to check its target (`interrupted`). A node whose safety depends on its config says so in
    #: `retry_safe_with`.
    retry_safe: ClassVar[bool] = False
    #: True for the few node types most flows use (If, Send email...): the editor offers them first when a node is
    #: added after another, before any search.
    common: ClassVar[bool] = False
    #: True for nodes that must see every connected input, even an empty one (merge).
    runs_on_empty: ClassVar[bool] = False
    #: True for a trigger whose `run` hands on the items it is given, unchanged, whenever it is given some
    #: (`list(given) or [an example]`): the engine then makes its step itself, without a Context or a call.
    passes_input: ClassVar[bool] = False
    #: A listening trigger (one that implements `listen`) names the service it holds a connection to, as people call
    #: it ("RabbitMQ"); the flows page says "Connected to RabbitMQ".
    service: ClassVar[str] = ""
    #: Fill the form from pasted text (a button in the inspector), e.g. the HTTP request node's curl import.
    paste_import: ClassVar[PasteImport | None] = None

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs | Suspend:
        raise NotImplementedError

    @classmethod
    def explain(cls, config: Any) -> str | None:
        """What the node will do with this (valid) config, shown under its form in the editor, e.g. the SQL
        statement it writes. None (the default): nothing to show. Must not reach the network or the disk."""
        return None

    async def resume(self, ctx: Context, config: Any, inputs: Inputs, payload: Any) -> Outputs:
        """The node's output when its run resumes after it returned `Suspend`: `payload` is what the resume call
        brought (None when the deadline passed). By default the payload becomes the output (an object as one item,
        a list of objects as the items), and a deadline passes the input items on."""
        if payload is None:
            return [item for items in inputs.values() for item in items]
        if isinstance(payload, dict):
            return [payload]
        if isinstance(payload, list) and all(isinstance(item, dict) for item in payload):
            return payload
        return [{"data": payload}]

    async def listen(self, ctx: Listening, config: Any, emit: Emit) -> None:
        """Listening triggers (message brokers) implement this: connect, call `ctx.connected()`, then hand each
        message to `emit` for as long as the connection holds. Return or raise when it is lost: Flowboard calls
        `listen` again with a growing pause (backoff) while the flow is active, shows the state on the flows page,
        and cancels the call when the flow is switched off. `run` still serves manual and editor runs."""
        raise NotImplementedError

    @classmethod
    def listens(cls) -> bool:
        return cls.listen is not NodeType.listen

    @classmethod
    def output_ports(cls, config: Mapping[str, Any]) -> tuple[str, ...]:
        """Output ports for a given config; override for nodes whose outputs depend on it (switch)."""
        return cls.outputs

    @classmethod
    def name_for(cls, config: Mapping[str, Any]) -> str | None:
        """A short name saying what a node with this config does, in the user's words ("Find rows in Employees"),
        or None when the config does not say yet. The editor names a new node with it until the user renames the
        node. `config` is the raw config as edited: it may be incomplete or hold expressions (`{{ ... }}`)."""
        return None

    @classmethod
    def changes_world(cls, config: Mapping[str, Any]) -> bool:
        """Whether a node with this config changes something outside the run (sends, writes, deletes). The editor
        runs the nodes before a newly added one by itself, so their fields are there to drag, only when none of
        them does. Defaults to `side_effects`; a node that also only reads (a data table's find) says so here."""
        return cls.side_effects

    @classmethod
    def retry_safe_with(cls, config: Mapping[str, Any]) -> bool:
        """Whether a node with this config (as written in the flow: it may hold expressions) may do its work again
        harmlessly: an HTTP call that sends an idempotency key (`Context.idempotency_key`), a read. Defaults to
        `retry_safe`. Decided once per flow version, before any run; a node of a type with side effects that is not
        retry-safe has its step recorded as started before it runs, so that a run resumed after a stop knows it was
        interrupted and does not do it a second time. Defaults to `retry_safe`, or True for a config that only reads
        (`changes_world` is False)."""
        return cls.retry_safe or not cls.changes_world(config)

    @classmethod
    def target(cls, config: Mapping[str, Any]) -> str:
        """Where the node's side effects land, in the user's words ("the server api.example.com"), for the message
        of a step that was interrupted while it was sending. Must not reach the network or the disk."""
        return "where this step sends to"

    @classmethod
    def suggest(cls, config: Mapping[str, Any], fields: Mapping[str, Any], others: Sequence[Mapping[str, Any]],
                tables: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
        """Values to fill in for a node just added, so a person need not type what the flow already says: `fields`
        are the fields of the items coming in (`.email` to its first value), `others` the configs of the flow's
        other nodes of this type, `tables` the data tables by name with their columns (the key column first). The
        editor sets only fields still empty (inside an object too), and they show in the form as typed ones would
        (an Email node's To reads the items' address field). Default: nothing."""
        return {}


def plain(value: Any) -> str | None:
    """`value` as a short text for a node's name, or None when it is empty or an expression (`{{ ... }}`)."""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = " ".join(str(value).split())
    if not text or "{{" in text or "{%" in text:
        return None
    return text if len(text) <= 40 else text[:39] + "…"


def message_bytes(value: Any) -> bytes:
    """What a message node (Redis, NATS, MQTT) sends for a value: text as it is, bytes as they are, anything else as
    compact JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def message_value(payload: Any) -> Any:
    """A received message as item data: JSON data when it is JSON, else its text (bytes that are not UTF-8 are
    replaced, never an error); a payload that is neither bytes nor text (a client's number) as it is."""
    if isinstance(payload, bytes | bytearray):
        payload = bytes(payload).decode(errors="replace")
    if not isinstance(payload, str):
        return payload
    try:
        return json.loads(payload)
    except ValueError:
        return payload


class Tables(Protocol):
    """Flowboard's data tables as a node sees them (`ctx.tables`). Rows are dicts of column values plus `id`,
    `created_at` and `updated_at`; every change is recorded as made by the node's run. Refusals raise NodeError with
    the reason in plain words."""

    async def schema(self, table: str) -> dict[str, Any]: ...

    async def find(self, table: str, conditions: Sequence[TableCondition] = (), *, sort: Sequence[TableSort] = (),
                   limit: int | None = 100, match: str = "all") -> Items: ...

    async def insert(self, table: str, rows: Sequence[Item]) -> Items: ...

    async def update(self, table: str, conditions: Sequence[TableCondition], values: Item, *,
                     match: str = "all") -> Items: ...

    async def upsert(self, table: str, rows: Sequence[Item]) -> Items: ...

    async def delete(self, table: str, conditions: Sequence[TableCondition], *, match: str = "all") -> Items: ...

    async def change(self, table: str, conditions: Sequence[TableCondition], changes: Sequence[TableChange], *,
                     match: str = "all") -> Items:
        """Atomic conditional update: the rows changed (none when the conditions did not hold)."""
        ...


class Approvals(Protocol):
    """Approval tasks as a node sees them (`ctx.approvals`): ask people to decide one item. Asking again for the same
    run, node and item gives the tasks made before (a node that runs again after a crash asks nobody twice)."""

    async def ask(self, *, flow_id: str, run_id: str, node_id: str, item_index: int, title: str, data: Any,
                  approvers: Sequence[str], rule: str = "any", needed: int = 1,
                  outcomes: Sequence[str] = ("approve", "reject"), requester: str | None = None,
                  due: float | None = None, escalate_to: Sequence[str] = (),
                  escalate_after: float | None = None, remind_before: float | None = None,
                  remind_every: float | None = None) -> list[Any]: ...

    def link(self, task_id: str, recipient: str, expires: float | None = None, outcome: str | None = None) -> str:
        """The recipient's own signed one-click link to a task (for email and chat buttons)."""
        ...

    async def reach(self, assignees: Sequence[str]) -> dict[str, list[tuple[str, str | None]]]:
        """Who each assignee stands for, each with their email address from the Users page (None: none given): a
        user is themselves, `role:x` is everyone holding the role (each gets their own link, and decides as
        themselves). An assignee no account knows stands for itself, without an address."""
        ...


class Flows(Protocol):
    """Other stored flows as a node sees them (`ctx.flows`): the Call flow node runs one with items."""

    async def call(self, flow: str, items: Items, *, wait: bool = True) -> Items:
        """Run the flow (its id or name) with `items`; with `wait`, its result items (NodeError when it fails),
        else at once one item with the new run's id. A called flow that parks (an approval, a long wait) raises
        Suspend: the calling node parks too, and is resumed with the called run's result when it ends."""
        ...


RunOutcome = Literal["started", "succeeded", "failed", "skipped"]


class Emit(Protocol):
    """Starts the flow's run with a message's items (a listening trigger's third argument).

    `await emit(items)` starts the run and returns "started" once it is going; it waits only while the
    listener already has its maximum of runs going (back pressure). `await emit(items, wait=True)` returns when the
    run ended: "succeeded" once it succeeded and is recorded (acknowledge the message now), "failed" when it failed
    or crashed. Either returns "skipped" when the flow's run mode (skip) ignored the message."""

    async def __call__(self, items: Items, *, wait: bool = False) -> RunOutcome: ...


class Listening:
    """What a listening trigger's `listen` gets: its credentials, a logger, and a way to say it is connected."""

    __slots__ = ("_connected", "_services", "flow_id", "node_id", "secrets")

    def __init__(self, *, flow_id: str, node_id: str, services: Services, connected: Callable[[str], None]):
        self.flow_id = flow_id
        self.node_id = node_id
        self._services = services
        self._connected = connected
        #: secret values read from credentials, blanked out of the connection state and logs
        self.secrets: set[str] = set()

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return logging.LoggerAdapter(_node_log, {"flow_id": self.flow_id, "node_id": self.node_id})

    async def credential(self, name: str) -> dict[str, Any]:
        """The decrypted fields of the credential called `name`. Never put them in items or logs."""
        from urllib.parse import urlsplit

        data = await self._services.credential(name)
        for value in data.values():
            if isinstance(value, str) and len(value) >= 4:
                self.secrets |= secret_forms(value)
                try:
                    password = urlsplit(value).password  # a URL's password shows up alone in some errors
                except ValueError:
                    password = None
                if password:
                    self.secrets |= secret_forms(password)
        return data

    def connected(self, detail: str = "") -> None:
        """Say the connection is up (and what it listens to, e.g. "queue orders"); resets the backoff."""
        self._connected(detail)


@dataclass(frozen=True)
class Server:
    """A kind of server a node reaches by URL (Redis, NATS, RabbitMQ): the words and checks of its Server and
    Credential fields. A node's connection settings are a `ServerConnection` that names it::

        REDIS = Server("Redis", credential_type="redis", schemes=("redis", "rediss", "unix"),
                       example="redis://127.0.0.1:6379/0", address="address and database number", login="a password")

        class Connection(ServerConnection):
            server = REDIS
            url: str = REDIS.url_field()
            credential: str | None = REDIS.credential_field()

    The URL in the flow never holds a password (a flow file is shared and exported): one with a password belongs in
    a credential of `credential_type`, whose field `url` holds it."""

    service: str  #: as people call it, e.g. "RabbitMQ"
    credential_type: str  #: the credential type whose `url` holds the address with the login
    schemes: tuple[str, ...]  #: what the address may start with, e.g. ("amqp", "amqps")
    example: str  #: an address, also the field's default, e.g. "amqp://127.0.0.1:5672/"
    address: str = "address"  #: what the URL names, e.g. "address and database number"
    login: str = "a user and password"  #: what belongs in the credential instead, e.g. "a password"
    note: str = ""  #: said after the example, e.g. "(logs in as guest)"
    user_is_secret: bool = False  #: a user name in the URL is refused too (NATS: it may be a token)

    def url_field(self) -> Any:
        note = f" {self.note}" if self.note else ""
        return Field(self.example, title="Server", description=f"The {self.service} server's {self.address}, e.g. "
                     f"{self.example}{note}. For {self.login}, pick a credential instead.",
                     json_schema_extra={"expressions": False})

    def credential_field(self) -> Any:
        article = "An" if self.service[:1] in "AEIOU" else "A"
        return Field(None, description=f"{article} {self.service} connection credential (its URL with {self.login}); "
                     "used instead of Server.",
                     json_schema_extra={"widget": "credential", "credential_types": [self.credential_type]})

    def check(self, value: str) -> str:
        """The URL, stripped; a ValueError in plain words when it is not one of this server's or holds a login."""
        from urllib.parse import urlsplit

        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in self.schemes:
            starts = [f"{scheme}://" for scheme in self.schemes]
            either = starts[0] if len(starts) == 1 else f"{', '.join(starts[:-1])} or {starts[-1]}"
            raise ValueError(f"the server address starts with {either}, e.g. {self.example}")
        if parts.password or (self.user_is_secret and parts.username):
            what = "a user, password or token" if self.user_is_secret else "a password"
            raise ValueError(f"{what} does not belong in the flow: put the URL in a {self.service} credential and "
                             "pick it under Credential")
        return value


class ServerConnection(BaseModel):
    """A node's connection settings to a `Server`: its URL without a password, or a credential holding one. A
    subclass names the server and declares both fields with it (see `Server`)."""

    model_config = ConfigDict(extra="forbid")

    server: ClassVar[Server]
    url: str
    credential: str | None = None

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str) -> str:
        return cls.server.check(value)

    async def server_url(self, ctx: Context | Listening) -> str:
        """The URL to connect to: the credential's when one is picked (with the login), else the field's."""
        if not self.credential:
            return self.url
        url = str((await ctx.credential(self.credential)).get("url") or "")
        if not url:
            raise NodeError(f"the credential {self.credential!r} has no URL; open it under Credentials and enter the "
                            f"{self.server.service} URL", field="credential", retryable=False)
        return url


class Suspend(Exception):
    """Return (or raise) it from `run` to park the run durably: the engine records the node's step and the run as
    `waiting` and frees everything the run held in memory. The run resumes at `resume_at` (epoch seconds, or a
    timezone-aware datetime), or earlier when someone calls `Flowboard.resume_waiting` for this node (a resume link,
    an approval); None waits for that call only. It resumes after any number of restarts, on the flow version it
    started with; the node's `resume` then gives its output. `data` (JSON) is kept with the wait: how it may be
    resumed, what a person deciding should see."""

    def __init__(self, resume_at: float | datetime | None = None, *, data: dict[str, Any] | None = None):
        if isinstance(resume_at, datetime):
            resume_at = resume_at.timestamp()
        self.resume_at = resume_at
        self.data = data or {}
        super().__init__("the node suspended its run")


class Context:
    """Everything a node may touch while it runs. Built by the engine, one per step."""

    __slots__ = ("_config_for", "_pairs", "_progress", "_services", "attempt", "cancelled", "flow_id", "logs",
                 "node_id", "node_name", "run_id")

    def __init__(self, run_id: str, flow_id: str, node_id: str, node_name: str, attempt: int,
                 services: Services, config_for: Callable[[Item | None], Any], cancelled: asyncio.Event,
                 progress: Callable[[str, int, str | None, Items | None], None] | None = None):
        # (positional as well as by name: the engine passes them in this order, a quicker call than by keyword)
        self.run_id = run_id
        self.flow_id = flow_id
        self.node_id = node_id
        self.node_name = node_name
        self.attempt = attempt
        self._services = services
        self._config_for = config_for
        self.cancelled = cancelled
        #: Lines the node printed (the Code node's print() output), kept with the step and shown in its data.
        self.logs: list[str] = []
        self._pairs: dict[int, tuple[Item, tuple[Any, ...]]] | None = None
        self._progress = progress

    def progress(self, count: int, message: str | None = None, items: Items | None = None) -> None:
        """Say how far a long step has got while it runs: `count` items so far (the canvas badge counts up),
        `message` in plain words ("page 3 read"), and `items`, the items so far (or the latest ones), which the
        editor and the run page show while the node runs. Call it per page or batch, not per item: the views hear
        of it at most ten times a second. `items` is held (not copied) until the node ends: build new lists rather
        than change one passed here. Does nothing where nobody records the run."""
        if self._progress is not None:
            self._progress(self.node_id, count, message, items)

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry the run and node. Never log credentials."""
        return logging.LoggerAdapter(_node_log, {"run_id": self.run_id, "node_id": self.node_id})

    @property
    def http(self) -> httpx.AsyncClient:
        """The shared HTTP client (httpx API on the fastest transport that passes the tests)."""
        return self._services.http()

    def database(self, url: str) -> sqlalchemy.Engine:
        """A pooled SQLAlchemy engine for `url`, shared by every node that names it."""
        return self._services.database(url)

    async def credential(self, name: str) -> dict[str, Any]:
        """The decrypted fields of the credential called `name`. Never put them in items or logs."""
        return await self._services.credential(name)

    async def connection(self, key: Hashable, open: Callable[[], Awaitable[Any]], *,
                         broken: Callable[[Any], bool] | None = None) -> Any:
        """A client connection shared by every node and run that names the same `key` (say ("redis", url)): opened
        with `open()` on first use, closed (its `aclose()` or `close()`) when Flowboard stops. With `broken`, one
        that `broken(connection)` finds broken since its last use (the server restarted) is dropped and a new one
        opened. A node that finds it broken later, while using it, calls `drop_connection(key)`."""
        connection = await self._services.connection(key, open)
        if broken is not None and broken(connection):
            await self._services.drop_connection(key)
            connection = await self._services.connection(key, open)
        return connection

    async def drop_connection(self, key: Hashable) -> None:
        await self._services.drop_connection(key)

    async def run_code(self, code: str, items: Items, *, mode: str = "all", timeout: float = 10.0,
                       memory_mb: int = 256, network: bool = False) -> Items:
        """Run Python `code` in the sandboxed worker pool, never in this process: once with `items` (mode "all") or
        once per `item` (mode "each"). Returns the items; the printed lines go to `logs`, also when the code fails
        (a NodeError naming the line)."""
        from .coderun import CodeFailed

        try:
            result = await self._services.code_runner().run(code, items, mode=mode, timeout=timeout,
                                                            memory_mb=memory_mb, network=network)
        except CodeFailed as exc:
            self.logs.extend(exc.logs)
            where = f"line {exc.line}: " if exc.line else ""
            raise NodeError(f"{where}{exc.message}", item_index=exc.item_index, field="code" if exc.line else None,
                            data={"kind": exc.kind, "line": exc.line}) from None
        self.logs.extend(result.logs)
        return result.items

    @property
    def files(self) -> Files:
        """Files in items: keep bytes and get a reference to put in an item (`put`), read a reference's bytes
        (`read`), and paths inside the folder file nodes may use (`in_folder`)."""
        return self._services.files()

    @property
    def tables(self) -> Tables:
        """Flowboard's data tables, with every change recorded as made by this run."""
        return self._services.tables(self.run_id)

    @property
    def flows(self) -> Flows:
        """Other stored flows, to call (Call flow node); calls made through it are this run's children."""
        return self._services.flows(self.run_id, self.node_id)

    @property
    def approvals(self) -> Approvals:
        """Approval tasks: ask people to decide (the Approval node)."""
        return self._services.approvals()

    def idempotency_key(self, index: int = 0) -> str:
        """A key for the work this step does for input item `index`, the same each time this run's step does it
        again (after a timeout, or when the run resumes after a stop) and different for any other run, node or item:
        a UUID derived from the run id, node id and item index. Send it where the service honours one (the HTTP
        request node's Idempotency-Key header), and a repeat is harmless."""
        return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{self.run_id}/{self.node_id}/{index}"))

    def each(self, items: Items) -> Iterator[tuple[int, Item, Any]]:
        """Each item with its index and the node's config rendered for it."""
        config_for = self._config_for
        for index, item in enumerate(items):
            try:
                config = config_for(item)
            except NodeError as exc:
                if exc.item_index is None:
                    exc.item_index = index
                raise
            yield index, item, config

    def paired(self, item: Item, *sources: int | tuple[str, int]) -> Item:
        """Say which input items a new output item came from, so `nodes['Earlier node'].item` in later expressions
        finds the matching item: input item numbers (from 0) of the `main` input, or (input, number) pairs for a node
        with several inputs. Returns `item`.

        Not needed for an item passed on as it came (Filter, Sort), nor for a node that returns exactly one new item
        per input item, in order (Set): the engine sees those by itself."""
        if self._pairs is None:
            self._pairs = {}
        self._pairs[id(item)] = (item, sources)
        return item

    def delegate(self, config_for: Callable[[Any], Any],
                 credential: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None) -> Context:
        """A context for handing this step's work to another node type (an OpenAPI connector's operation runs the
        HTTP request node): the same run, node, HTTP client and cancellation. `config_for` turns this node's config
        (rendered for an item) into the other type's; `credential`, when given, turns a credential's fields (name,
        fields) into the ones the other type reads. Printed lines are shared; say where output items came from on
        this context (`paired`), not on the delegate. Progress said on either reaches the same node."""
        outer = self._config_for
        services = self._services if credential is None else _MappedCredentials(self._services, credential)
        ctx = Context(run_id=self.run_id, flow_id=self.flow_id, node_id=self.node_id, node_name=self.node_name,
                      attempt=self.attempt, services=services, config_for=lambda item: config_for(outer(item)),
                      cancelled=self.cancelled, progress=self._progress)
        ctx.logs = self.logs
        return ctx

    def check_cancelled(self) -> None:
        if self.cancelled.is_set():
            raise asyncio.CancelledError()


_IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c0b8e-2a4d-5e7f-9b3a-f10b0a4d1e13")  # Flowboard's own


class Files:
    """What a node sees of files: an item carries a file as a reference (a small JSON object with `$file`, `name`,
    `mime_type` and `size`); the bytes are kept by Flowboard, content-addressed, never inside the item."""

    def __init__(self, blobs: Blobs | None, folder: Callable[[], Path] | None):
        self._blobs = blobs
        self._folder = folder

    def _store(self) -> Blobs:
        if self._blobs is None:
            raise NodeError("files are not available here: run the flow in Flowboard (the editor, the server or "
                            "`flowboard run`)")
        return self._blobs

    @staticmethod
    def is_file(value: Any) -> bool:
        """Whether `value` is a file reference."""
        return is_file_ref(value)

    async def put(self, data: bytes, name: str, mime_type: str | None = None) -> Item:
        """Keep `data` as a file called `name`; returns the reference to put in an item."""
        try:
            return await asyncio.to_thread(self._store().put, bytes(data), name, mime_type)
        except FileTooLarge as exc:
            raise NodeError(str(exc)) from None

    async def read(self, ref: Any, *, field: str | None = None, item_index: int | None = None) -> bytes:
        """The bytes of the file `ref`; a NodeError naming `field` when it is not a file or no longer kept."""
        if not is_file_ref(ref):
            raise NodeError(f"{field or 'the value'} is not a file (expected a file from an earlier node, such as "
                            "Read file or HTTP request)", field=field, item_index=item_index)
        try:
            return await asyncio.to_thread(self._store().get, ref)
        except FileNotFoundError as exc:
            raise NodeError(str(exc), field=field, item_index=item_index) from None

    @property
    def folder(self) -> Path:
        """The folder file nodes may read and write (FLOWBOARD_FILES_DIR, else `files` in the data folder)."""
        if self._folder is None:
            raise NodeError("no folder for files is set: set FLOWBOARD_FILES_DIR to the folder flows may use")
        folder = self._folder()
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def in_folder(self, path: str, *, field: str = "path", item_index: int | None = None) -> Path:
        """`path` (relative to the folder, or absolute inside it) as a resolved path inside the folder. Refused with
        a NodeError when it leads outside, also through a symbolic link or `..`."""
        folder = self.folder.resolve()
        text = str(path).strip()
        if not text or "\x00" in text:
            raise NodeError(f"{field}: give a file name inside {folder}, e.g. reports/today.csv", field=field,
                            item_index=item_index)
        target = (folder / text).resolve()
        if not target.is_relative_to(folder) or target == folder:
            raise NodeError(f"{field}: {text!r} leads outside the folder flows may use ({folder}); use a path "
                            "inside it (symbolic links to elsewhere are refused too)", field=field,
                            item_index=item_index)
        return target


class Services:
    """Shared resources behind every Context: overridden by the app, the CLI and tests."""

    def __init__(self, credentials: Callable[[str], Any] | None = None,
                 tables: Callable[[str], Tables] | None = None, approvals: Approvals | None = None,
                 flows: Callable[[str, str], Flows] | None = None, blobs: Blobs | None = None,
                 files_dir: Callable[[], Path] | None = None):
        self._files = Files(blobs, files_dir)
        self._http: httpx.AsyncClient | None = None
        self._engines: dict[str, sqlalchemy.Engine] = {}
        self._credentials = credentials
        self._code_runner: CodeRunner | None = None
        self._tables = tables
        self._approvals = approvals
        self._flows = flows
        self._connections: dict[Hashable, Any] = {}
        self._opening: dict[Hashable, asyncio.Future[Any]] = {}

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = make_http_client()
        return self._http

    def database(self, url: str) -> sqlalchemy.Engine:
        engine = self._engines.get(url)
        if engine is None:
            import sqlalchemy

            try:
                engine = sqlalchemy.create_engine(url, pool_pre_ping=True)
            except Exception as exc:  # bad URL, missing driver
                raise NodeError(f"cannot use the database URL: {exc}", field="url") from None
            self._engines[url] = engine
        return engine

    async def credential(self, name: str) -> dict[str, Any]:
        if self._credentials is None:
            raise NodeError(f"no credential store is configured; cannot read credential {name!r}")
        value = self._credentials(name)
        if asyncio.iscoroutine(value):
            value = await value
        if value is None:
            raise NodeError(f"there is no credential called {name!r}; add it under Credentials")
        return dict(value)

    async def connection(self, key: Hashable, open: Callable[[], Awaitable[Any]]) -> Any:
        client = self._connections.get(key)
        if client is not None:
            return client
        opening = self._opening.get(key)
        if opening is not None:  # another run is opening it: share that one
            return await asyncio.shield(opening)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._opening[key] = future
        try:
            client = await open()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            self._opening.pop(key, None)
        future.set_result(client)
        self._connections[key] = client
        return client

    async def drop_connection(self, key: Hashable) -> None:
        client = self._connections.pop(key, None)
        if client is not None:
            await _close_quietly(client)

    def code_runner(self) -> CodeRunner:
        """The Code node's pool of sandboxed Python workers, started on first use."""
        if self._code_runner is None:
            from .coderun import CodeRunner

            self._code_runner = CodeRunner()
        return self._code_runner

    def files(self) -> Files:
        return self._files

    def tables(self, run_id: str) -> Tables:
        if self._tables is None:
            raise NodeError("data tables are not available here: run the flow in Flowboard (the editor, the server or "
                            "`flowboard run` of a stored flow)")
        return self._tables(run_id)

    def flows(self, run_id: str, node_id: str = "") -> Flows:
        if self._flows is None:
            raise NodeError("other flows cannot be called here: run the flow in Flowboard (the editor, the server or "
                            "`flowboard run` of a stored flow)")
        return self._flows(run_id, node_id)

    def approvals(self) -> Approvals:
        if self._approvals is None:
            raise NodeError("approvals are not available here: run the flow in Flowboard (the editor or the server), "
                            "where people can decide")
        return self._approvals

    async def aclose(self) -> None:
        if self._code_runner is not None:
            await self._code_runner.aclose()
            self._code_runner = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._engines:
            from .databases import dispose  # (SQLAlchemy: imported only where a SQL node ran)

            for engine in self._engines.values():
                dispose(engine)  # a node's query still running in a thread: its connection is closed when it ends
            self._engines.clear()
        for key in list(self._connections):
            await self.drop_connection(key)


async def _close_quietly(client: Any) -> None:
    close = getattr(client, "aclose", None) or getattr(client, "close", None)
    if close is None:
        return
    try:
        done = close()
        if asyncio.iscoroutine(done) or isinstance(done, asyncio.Future):
            await asyncio.wait_for(done, 5)
    except Exception:  # a broken connection may fail to close; it is dropped either way
        _node_log.debug("closing a shared connection failed", exc_info=True)


class _MappedCredentials(Services):
    """Another context's services, with each credential's fields mapped on the way (`Context.delegate`)."""

    def __init__(self, inner: Services, mapping: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]):
        super().__init__()
        self._inner = inner
        self._mapping = mapping

    def http(self) -> httpx.AsyncClient:
        return self._inner.http()

    def database(self, url: str) -> sqlalchemy.Engine:
        return self._inner.database(url)

    async def credential(self, name: str) -> dict[str, Any]:
        return await self._mapping(name, await self._inner.credential(name))

    def code_runner(self) -> CodeRunner:
        return self._inner.code_runner()

    def files(self) -> Files:
        return self._inner.files()

    def tables(self, run_id: str) -> Tables:
        return self._inner.tables(run_id)

    def flows(self, run_id: str, node_id: str = "") -> Flows:
        return self._inner.flows(run_id, node_id)

    def approvals(self) -> Approvals:
        return self._inner.approvals()

    async def connection(self, key: Hashable, open: Callable[[], Awaitable[Any]]) -> Any:
        return await self._inner.connection(key, open)

    async def drop_connection(self, key: Hashable) -> None:
        await self._inner.drop_connection(key)

    async def aclose(self) -> None:  # the inner services belong to someone else
        return None


def make_http_client() -> httpx.AsyncClient:
    """The client behind `ctx.http`: httpx's API on aiohttp, with a short way for plain calls
    (`flowboard/httpclient.py`). It keeps no cookies: a session cookie one flow receives must never ride along on
    another flow's requests (a node that needs one sends a `Cookie` header)."""
    from .httpclient import make_client

    return make_client()
