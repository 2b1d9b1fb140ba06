"""The tables. Times are epoch seconds (floats, UTC), like the engine's. JSON is stored as text written by orjson: the
same bytes on SQLite and PostgreSQL, readable in any SQL shell, and fast to write from the recorder's raw SQL."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class JSONText(sa.TypeDecorator[Any]):
    """JSON as text, through orjson. SQL NULL is Python None."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else orjson.loads(value)


def _time(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None if nullable else 0.0, sa_type=sa.Double, nullable=nullable, index=index)


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=JSONText, nullable=nullable)


class FlowRow(SQLModel, table=True):
    __tablename__ = "flows"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_type=sa.Text)
    active: bool = False
    version: int = 1  # the current version number
    document: str = Field(sa_type=sa.Text)  # the flow file exactly as `dump_flow` wrote it
    created: float = _time()
    updated: float = _time()


class FlowVersionRow(SQLModel, table=True):
    __tablename__ = "flow_versions"

    flow_id: str = Field(foreign_key="flows.id", primary_key=True, max_length=64, ondelete="CASCADE")
    version: int = Field(primary_key=True)
    document: str = Field(sa_type=sa.Text)
    created: float = _time()
    note: str = Field(default="", sa_type=sa.Text)


class RunRow(SQLModel, table=True):
    """A run. No foreign key to `flows`: a flow file run from the command line need not be saved first."""

    __tablename__ = "runs"
    __table_args__ = (sa.Index("ix_runs_flow_created", "flow_id", "created"),)

    id: str = Field(primary_key=True, max_length=64)
    flow_id: str = Field(max_length=64)
    flow_version: int | None = None
    status: str = Field(max_length=16, index=True)  # a RunStatus value
    trigger: str | None = Field(default=None, max_length=64)  # the trigger node's id
    source: str | None = Field(default=None, max_length=32)  # manual, cli, webhook, schedule, ...
    input: Any = _json()  # items
    output: Any = _json()  # items
    error: Any = _json()
    created: float = _time(index=True)  # when the run was accepted (queued) or, without a queue, started
    started: float | None = _time(nullable=True)
    finished: float | None = _time(nullable=True)
    owner: str | None = Field(default=None, max_length=200)  # the process that runs it (Store.owner)
    heartbeat: float | None = _time(nullable=True)


class StepRow(SQLModel, table=True):
    __tablename__ = "steps"

    run_id: str = Field(foreign_key="runs.id", primary_key=True, max_length=64, ondelete="CASCADE")
    node_id: str = Field(primary_key=True, max_length=64)
    status: str = Field(max_length=16)  # a StepStatus value
    attempt: int = 1
    started: float = _time()
    finished: float = _time()
    inputs: Any = _json()  # {port: items}
    outputs: Any = _json()  # {port: items}
    error: Any = _json()
    logs: Any = _json()  # lines the node printed (the Code node's print()), or null
    lineage: Any = _json()  # {port: "=" or, per output item, the input item(s) it came from}: engine/lineage.py


class WaitRow(SQLModel, table=True):
    """A node that suspended its run (`sdk.Suspend`): until when, with what data, and, once resumed (by its deadline
    or by a call), with what payload. The row is written with the run's `waiting` step, in one transaction, and
    deleted when the node's resumed step is recorded. The sleeper reads the earliest `resume_at` of the rows not
    resumed yet: the index keeps that one read cheap with any number of runs waiting."""

    __tablename__ = "waits"
    __table_args__ = (sa.Index("ix_waits_due", "resumed", "resume_at"),)

    run_id: str = Field(foreign_key="runs.id", primary_key=True, max_length=64, ondelete="CASCADE")
    node_id: str = Field(primary_key=True, max_length=64)
    resume_at: float | None = _time(nullable=True)  # epoch seconds; None: only a call resumes it
    data: Any = _json()  # what the node attached (how it may be resumed, what to show)
    created: float = _time()
    resumed: float | None = _time(nullable=True)  # when it was resumed; None while it waits
    payload: Any = _json()  # what it was resumed with (None for a deadline)
    who: str | None = Field(default=None, max_length=200)  # who resumed it, in words ("timer", "resume link", ...)


class CredentialRow(SQLModel, table=True):
    __tablename__ = "credentials"

    name: str = Field(primary_key=True, max_length=200)
    type: str = Field(max_length=100)
    data: str = Field(sa_type=sa.Text)  # a Fernet token: never the secret in clear
    created: float = _time()
    updated: float = _time()
    problem: str | None = Field(default=None, sa_type=sa.Text, nullable=True)  # e.g. an OAuth2 refresh that failed


class OAuthSignInRow(SQLModel, table=True):
    """An OAuth2 sign-in between "Connect" and the provider's redirect back, kept in the database so that any server
    of the data folder or database finishes it, after a restart too. Used once, then deleted; dropped when expired."""

    __tablename__ = "oauth_sign_ins"

    state: str = Field(primary_key=True, max_length=64)  # SHA-256 of the state sent to the provider, never the state
    credential: str = Field(max_length=200)
    data: str = Field(sa_type=sa.Text)  # a Fernet token: the PKCE verifier and the redirect address
    created: float = _time()
    expires: float = _time(index=True)


class SettingRow(SQLModel, table=True):
    __tablename__ = "settings"

    key: str = Field(primary_key=True, max_length=100)
    value: Any = _json()


class ApiKeyRow(SQLModel, table=True):
    """A key for the REST API. Only a SHA-256 hash of the key is kept: the key itself is shown once, at creation."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    prefix: str = Field(max_length=16)  # the key's first characters, so a user can tell keys apart
    hash: str = Field(max_length=64, unique=True)  # sha256 hex of the whole key
    created: float = _time()
    last_used: float | None = _time(nullable=True)
    user_id: str | None = Field(default=None, max_length=32, index=True)  # whose key: it acts with their roles;
    # None: made with the CLI on the server's machine before any user existed, acts as an admin


class ScheduleFireRow(SQLModel, table=True):
    """A claimed schedule fire: inserting the row IS the claim, so among processes sharing the database exactly one
    starts the run for a scheduled time (the primary key refuses the others)."""

    __tablename__ = "schedule_fires"

    flow_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(primary_key=True, max_length=64)
    fire_time: int = Field(primary_key=True, sa_type=sa.BigInteger, sa_column_kwargs={"autoincrement": False})
    claimed: float = _time(index=True)  # when it was claimed (epoch seconds)
    owner: str | None = Field(default=None, max_length=200)  # the process that claimed it (Store.owner)
    run_id: str | None = Field(default=None, max_length=64)
    missed: int = 0  # scheduled times this run stands for that passed while no server ran (catch-up run), else 0


class ScheduleStateRow(SQLModel, table=True):
    """Per schedule trigger: every scheduled time up to `last_fire` is handled (run, or skipped after downtime)."""

    __tablename__ = "schedule_state"

    flow_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(primary_key=True, max_length=64)
    last_fire: int = Field(sa_type=sa.BigInteger)  # epoch seconds
    updated: float = _time()


class DataTableRow(SQLModel, table=True):
    """A data table: its name and columns (a `TableSchema` as JSON). Its rows live in the SQL table `storage`."""

    __tablename__ = "data_tables"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200, unique=True)
    definition: Any = _json(nullable=False)
    storage: str = Field(max_length=64)  # dt_<id>
    created: float = _time()
    updated: float = _time()
    version: int = 1  # bumped by every change of the definition (optimistic concurrency, SQL table cache)


class TableChangeRow(SQLModel, table=True):
    """The outbox of data-table changes: written in the transaction that changes the row, read by the table-change
    trigger in id order."""

    __tablename__ = "table_changes"
    __table_args__ = (sa.Index("ix_table_changes_table", "table_id", "id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer, "sqlite"))
    table_id: str = Field(max_length=32)
    row_id: int = Field(sa_type=sa.BigInteger)
    op: str = Field(max_length=8)  # insert, update, delete
    old: Any = _json()
    new: Any = _json()
    created: float = _time()
    via: str = Field(default="api", max_length=16)  # grid, api, node, import
    run_id: str | None = Field(default=None, max_length=64)  # the run whose node made the change
    depth: int = 0  # table-change triggers deep: a change made by a run that a table change started is 1, ...


class TableTriggerStateRow(SQLModel, table=True):
    """Per table-change trigger: every change up to `last_change` is handled (its run claimed, or not matching)."""

    __tablename__ = "table_trigger_state"

    flow_id: str = Field(primary_key=True, max_length=64)
    node_id: str = Field(primary_key=True, max_length=64)
    last_change: int = Field(sa_type=sa.BigInteger)
    updated: float = _time()


class ApprovalTaskRow(SQLModel, table=True):
    """A decision asked of people: one row per approval task, with its current state. What happened to it is in
    `approval_log`, which this row must always agree with (`flowboard audit verify` checks both)."""

    __tablename__ = "approval_tasks"
    __table_args__ = (sa.Index("ix_approval_tasks_status_due", "status", "due"),
                      sa.Index("ix_approval_tasks_run", "run_id", "node_id"),
                      sa.Index("ix_approval_tasks_status_remind", "status", "remind_at"))

    id: str = Field(primary_key=True, max_length=32)
    flow_id: str = Field(max_length=64, index=True)
    run_id: str = Field(max_length=64)
    node_id: str = Field(max_length=64)
    item_index: int = 0  # which of the node's input items this task decides
    title: str = Field(default="", sa_type=sa.Text)
    data: Any = _json()  # what the approver sees: the message and the chosen fields
    outcomes: Any = _json(nullable=False)  # the answers allowed, e.g. ["approve", "reject"]
    assignees: Any = _json(nullable=False)  # who may decide: "user:ada", "role:approver" (a bare name is a user)
    requester: str | None = Field(default=None, max_length=200)  # who asked; never allowed to decide
    due: float | None = _time(nullable=True)
    remind_at: float | None = _time(nullable=True)  # when the open task's assignees are reminded next
    status: str = Field(max_length=16)  # open, decided, timed_out, cancelled
    decision: str | None = Field(default=None, max_length=64)  # the outcome chosen
    responder: str | None = Field(default=None, max_length=200)
    comment: str = Field(default="", sa_type=sa.Text)
    fields: Any = _json()  # the form fields the responder filled in
    channel: str | None = Field(default=None, max_length=16)  # where it was decided: inbox, link, api, ...
    created: float = _time(index=True)
    updated: float = _time()
    decided: float | None = _time(nullable=True)


class ApprovalLogRow(SQLModel, table=True):
    """The decision log: append-only, one entry per event of a task, each carrying the hash of the entry before it,
    so a changed, removed or inserted entry breaks the chain at that place."""

    __tablename__ = "approval_log"

    seq: int = Field(primary_key=True, sa_type=sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                     sa_column_kwargs={"autoincrement": False})
    task_id: str = Field(max_length=32, index=True)
    event: str = Field(max_length=16)  # created, decided, reassigned, timed_out, cancelled
    actor: str = Field(max_length=200)
    at: float = _time()
    data: str = Field(sa_type=sa.Text)  # canonical JSON of what happened (the bytes the hash covers)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
class UserRow(SQLModel, table=True):
    """A person who signs in. `name` is the login name, lower-case; the password only as an argon2id hash."""

    __tablename__ = "users"

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=64, unique=True)
    full_name: str = Field(default="", max_length=200)
    email: str | None = Field(default=None, max_length=320)
    roles: Any = _json(nullable=False)  # a list of Role values
    password_hash: str = Field(max_length=200)
    created: float = _time()
    updated: float = _time()


class SessionRow(SQLModel, table=True):
    """A signed-in browser. `id` is the SHA-256 of the session cookie's value: the database never holds a cookie
    that would let someone in."""

    __tablename__ = "sessions"

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(foreign_key="users.id", max_length=32, index=True, ondelete="CASCADE")
    created: float = _time()
    last_seen: float = _time()  # idle expiry counts from here (written at most once a minute)
    expires: float = _time(index=True)  # absolute expiry
    address: str | None = Field(default=None, max_length=64)  # the client address at sign-in


class ConnectorRow(SQLModel, table=True):
    """An OpenAPI connector: the document as imported (JSON), from where, and the server address given at import."""

    __tablename__ = "connectors"

    name: str = Field(primary_key=True, max_length=64)  # its node types are api.<name>.<operation>
    title: str = Field(max_length=200)
    source: str = Field(default="", sa_type=sa.Text)  # the URL or file name it was imported from
    server: str = Field(default="", sa_type=sa.Text)  # a base URL given at import ("" = the document's)
    document: Any = _json(nullable=False)
    created: float = _time()
    updated: float = _time()


class BlobRow(SQLModel, table=True):
    """A file's bytes when the store is PostgreSQL (several servers and workers share them); on SQLite they are files
    in the data folder. Content-addressed: the id is the SHA-256 of the bytes (flowboard/blobs.py)."""

    __tablename__ = "blobs"

    id: str = Field(primary_key=True, max_length=64)
    data: bytes = Field(sa_type=sa.LargeBinary)
    size: int = Field(sa_type=sa.BigInteger)
    created: float = _time()  # last kept (made again counts): the sweep spares young files


flows_t: sa.Table = FlowRow.__table__  # type: ignore[attr-defined]
versions_t: sa.Table = FlowVersionRow.__table__  # type: ignore[attr-defined]
runs_t: sa.Table = RunRow.__table__  # type: ignore[attr-defined]
steps_t: sa.Table = StepRow.__table__  # type: ignore[attr-defined]
waits_t: sa.Table = WaitRow.__table__  # type: ignore[attr-defined]
credentials_t: sa.Table = CredentialRow.__table__  # type: ignore[attr-defined]
oauth_sign_ins_t: sa.Table = OAuthSignInRow.__table__  # type: ignore[attr-defined]
settings_t: sa.Table = SettingRow.__table__  # type: ignore[attr-defined]
api_keys_t: sa.Table = ApiKeyRow.__table__  # type: ignore[attr-defined]
schedule_fires_t: sa.Table = ScheduleFireRow.__table__  # type: ignore[attr-defined]
schedule_state_t: sa.Table = ScheduleStateRow.__table__  # type: ignore[attr-defined]
data_tables_t: sa.Table = DataTableRow.__table__  # type: ignore[attr-defined]
table_changes_t: sa.Table = TableChangeRow.__table__  # type: ignore[attr-defined]
table_trigger_state_t: sa.Table = TableTriggerStateRow.__table__  # type: ignore[attr-defined]
approval_tasks_t: sa.Table = ApprovalTaskRow.__table__  # type: ignore[attr-defined]
approval_log_t: sa.Table = ApprovalLogRow.__table__  # type: ignore[attr-defined]
users_t: sa.Table = UserRow.__table__  # type: ignore[attr-defined]
sessions_t: sa.Table = SessionRow.__table__  # type: ignore[attr-defined]
connectors_t: sa.Table = ConnectorRow.__table__  # type: ignore[attr-defined]
blobs_t: sa.Table = BlobRow.__table__  # type: ignore[attr-defined]
