"""The tables. Times are epoch seconds (floats, UTC), like the engine's. JSON is stored as text written by orjson: the
same bytes on SQLite and PostgreSQL, readable in any SQL shell, and fast to write from the recorder's raw SQL.

Plain SQLAlchemy Core tables: the store reads and writes them with Core statements only. They were SQLModel classes
until 2026-11-29; building those classes and importing sqlmodel was the largest part of `flowboard serve`'s imports
before its first webhook answer (docs/engine.md, start-up). `metadata` is what Alembic compares the migrations with.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

metadata = sa.MetaData()


class JSONText(sa.TypeDecorator[Any]):
    """JSON as text, through orjson. SQL NULL is Python None."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return None if value is None else orjson.loads(value)


def _key(name: str, length: int, *foreign: sa.ForeignKey) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length), *foreign, primary_key=True)


def _str(name: str, length: int, nullable: bool = False, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.String(length), nullable=nullable, **kw)


def _text(name: str, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.Text, nullable=False, **kw)


def _int(name: str, default: int, **kw: Any) -> sa.Column[Any]:
    return sa.Column(name, sa.Integer, nullable=False, default=default, **kw)


def _time(name: str, nullable: bool = False, index: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Double, default=None if nullable else 0.0, nullable=nullable, index=index)


def _json(name: str, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, JSONText, nullable=nullable)


def _cascade(target: str) -> sa.ForeignKey:
    return sa.ForeignKey(target, ondelete="CASCADE")


_BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite's rowid alias must be INTEGER

flows_t = sa.Table(
    "flows", metadata,
    _key("id", 64),
    _str("name", 200),
    _text("description", default=""),
    sa.Column("active", sa.Boolean, nullable=False, default=False),
    _int("version", 1),  # the current version number
    _text("document"),  # the flow file exactly as `dump_flow` wrote it
    _time("created"),
    _time("updated"),
)

versions_t = sa.Table(
    "flow_versions", metadata,
    _key("flow_id", 64, _cascade("flows.id")),
    sa.Column("version", sa.Integer, primary_key=True),
    _text("document"),
    _time("created"),
    _text("note", default=""),
)

# A run. No foreign key to `flows`: a flow file run from the command line need not be saved first.
runs_t = sa.Table(
    "runs", metadata,
    _key("id", 64),
    _str("flow_id", 64),
    sa.Column("flow_version", sa.Integer, nullable=True),
    _str("status", 16, index=True),  # a RunStatus value
    _str("trigger", 64, nullable=True),  # the trigger node's id
    _str("source", 32, nullable=True),  # manual, cli, webhook, schedule, ...
    _json("input"),  # items
    _json("output"),  # items
    _json("error"),
    _time("created", index=True),  # when the run was accepted (queued) or, without a queue, started
    _time("started", nullable=True),
    _time("finished", nullable=True),
    _str("owner", 200, nullable=True),  # the process that runs it (Store.owner)
    _time("heartbeat", nullable=True),
    # The steps of a run that ended within one write (no step of it written before: nothing with side effects), as
    # one JSON array of [node_id, status, attempt, started, finished, inputs, outputs, error, logs, lineage] instead
    # of a `steps` row each (store.PACKED_STEP_COLUMNS; `Store.get_steps` reads both). Text, not parsed on reads of
    # the run. Moved into `steps` rows when the run is reopened (a retry) or its items are pruned.
    sa.Column("steps", sa.Text, nullable=True),
    sa.Index("ix_runs_flow_created", "flow_id", "created"),
)

steps_t = sa.Table(
    "steps", metadata,
    _key("run_id", 64, _cascade("runs.id")),
    _key("node_id", 64),
    _str("status", 16),  # a StepStatus value
    _int("attempt", 1),
    _time("started"),
    _time("finished"),
    _json("inputs"),  # {port: items}
    _json("outputs"),  # {port: items}
    _json("error"),
    _json("logs"),  # lines the node printed (the Code node's print()), or null
    _json("lineage"),  # {port: "=" or, per output item, the input item(s) it came from}: engine/lineage.py
)

# A node that suspended its run (`sdk.Suspend`): until when, with what data, and, once resumed (by its deadline or by
# a call), with what payload. The row is written with the run's `waiting` step, in one transaction, and deleted when
# the node's resumed step is recorded. The sleeper reads the earliest `resume_at` of the rows not resumed yet: the
# index keeps that one read cheap with any number of runs waiting.
waits_t = sa.Table(
    "waits", metadata,
    _key("run_id", 64, _cascade("runs.id")),
    _key("node_id", 64),
    _time("resume_at", nullable=True),  # epoch seconds; None: only a call resumes it
    _json("data"),  # what the node attached (how it may be resumed, what to show)
    _time("created"),
    _time("resumed", nullable=True),  # when it was resumed; None while it waits
    _json("payload"),  # what it was resumed with (None for a deadline)
    _str("who", 200, nullable=True),  # who resumed it, in words ("timer", "resume link", ...)
    sa.Index("ix_waits_due", "resumed", "resume_at"),
)

credentials_t = sa.Table(
    "credentials", metadata,
    _key("name", 200),
    _str("type", 100),
    _text("data"),  # a Fernet token: never the secret in clear
    _time("created"),
    _time("updated"),
    sa.Column("problem", sa.Text, nullable=True),  # e.g. an OAuth2 refresh that failed
)

# An OAuth2 sign-in between "Connect" and the provider's redirect back, kept in the database so that any server of
# the data folder or database finishes it, after a restart too. Used once, then deleted; dropped when expired.
oauth_sign_ins_t = sa.Table(
    "oauth_sign_ins", metadata,
    _key("state", 64),  # SHA-256 of the state sent to the provider, never the state
    _str("credential", 200),
    _text("data"),  # a Fernet token: the PKCE verifier and the redirect address
    _time("created"),
    _time("expires", index=True),
)

settings_t = sa.Table(
    "settings", metadata,
    _key("key", 100),
    _json("value"),
)

# A key for the REST API. Only a SHA-256 hash of the key is kept: the key itself is shown once, at creation.
api_keys_t = sa.Table(
    "api_keys", metadata,
    _key("id", 32),
    _str("name", 200),
    _str("prefix", 16),  # the key's first characters, so a user can tell keys apart
    _str("hash", 64, unique=True),  # sha256 hex of the whole key
    _time("created"),
    _time("last_used", nullable=True),
    _str("user_id", 32, nullable=True, index=True),  # whose key: it acts with their roles; None: made with the CLI
    # on the server's machine before any user existed, acts as an admin
)

# A claimed schedule fire: inserting the row IS the claim, so among processes sharing the database exactly one starts
# the run for a scheduled time (the primary key refuses the others).
schedule_fires_t = sa.Table(
    "schedule_fires", metadata,
    _key("flow_id", 64),
    _key("node_id", 64),
    sa.Column("fire_time", sa.BigInteger, primary_key=True, autoincrement=False),
    _time("claimed", index=True),  # when it was claimed (epoch seconds)
    _str("owner", 200, nullable=True),  # the process that claimed it (Store.owner)
    _str("run_id", 64, nullable=True),
    _int("missed", 0),  # scheduled times this run stands for that passed while no server ran (catch-up run), else 0
)

# Per schedule trigger: every scheduled time up to `last_fire` is handled (run, or skipped after downtime).
schedule_state_t = sa.Table(
    "schedule_state", metadata,
    _key("flow_id", 64),
    _key("node_id", 64),
    sa.Column("last_fire", sa.BigInteger, nullable=False),  # epoch seconds
    _time("updated"),
)

# A data table: its name and columns (a `TableSchema` as JSON). Its rows live in the SQL table `storage`.
data_tables_t = sa.Table(
    "data_tables", metadata,
    _key("id", 32),
    _str("name", 200, unique=True),
    _json("definition", nullable=False),
    _str("storage", 64),  # dt_<id>
    _time("created"),
    _time("updated"),
    _int("version", 1),  # bumped by every change of the definition (optimistic concurrency, SQL table cache)
)

# The outbox of data-table changes: written in the transaction that changes the row, read by the table-change trigger
# in id order.
table_changes_t = sa.Table(
    "table_changes", metadata,
    sa.Column("id", _BIG_ID, primary_key=True),
    _str("table_id", 32),
    sa.Column("row_id", sa.BigInteger, nullable=False),
    _str("op", 8),  # insert, update, delete
    _json("old"),
    _json("new"),
    _time("created"),
    _str("via", 16, default="api"),  # grid, api, node, import
    _str("run_id", 64, nullable=True),  # the run whose node made the change
    _int("depth", 0),  # table-change triggers deep: a change made by a run that a table change started is 1, ...
    sa.Index("ix_table_changes_table", "table_id", "id"),
)

# Per table-change trigger: every change up to `last_change` is handled (its run claimed, or not matching).
table_trigger_state_t = sa.Table(
    "table_trigger_state", metadata,
    _key("flow_id", 64),
    _key("node_id", 64),
    sa.Column("last_change", sa.BigInteger, nullable=False),
    _time("updated"),
)

# A decision asked of people: one row per approval task, with its current state. What happened to it is in
# `approval_log`, which this row must always agree with (`flowboard audit verify` checks both).
approval_tasks_t = sa.Table(
    "approval_tasks", metadata,
    _key("id", 32),
    _str("flow_id", 64, index=True),
    _str("run_id", 64),
    _str("node_id", 64),
    _int("item_index", 0),  # which of the node's input items this task decides
    _text("title", default=""),
    _json("data"),  # what the approver sees: the message and the chosen fields
    _json("outcomes", nullable=False),  # the answers allowed, e.g. ["approve", "reject"]
    _json("assignees", nullable=False),  # who may decide: "user:ada", "role:approver" (a bare name is a user)
    _str("requester", 200, nullable=True),  # who asked; never allowed to decide
    _time("due", nullable=True),
    _time("remind_at", nullable=True),  # when the open task's assignees are reminded next
    _str("status", 16),  # open, decided, timed_out, cancelled
    _str("decision", 64, nullable=True),  # the outcome chosen
    _str("responder", 200, nullable=True),
    _text("comment", default=""),
    _json("fields"),  # the form fields the responder filled in
    _str("channel", 16, nullable=True),  # where it was decided: inbox, link, api, ...
    _time("created", index=True),
    _time("updated"),
    _time("decided", nullable=True),
    sa.Index("ix_approval_tasks_status_due", "status", "due"),
    sa.Index("ix_approval_tasks_run", "run_id", "node_id"),
    sa.Index("ix_approval_tasks_status_remind", "status", "remind_at"),
)

# The decision log: append-only, one entry per event of a task, each carrying the hash of the entry before it, so a
# changed, removed or inserted entry breaks the chain at that place.
approval_log_t = sa.Table(
    "approval_log", metadata,
    sa.Column("seq", _BIG_ID, primary_key=True, autoincrement=False),
    _str("task_id", 32, index=True),
    _str("event", 16),  # created, decided, reassigned, timed_out, cancelled
    _str("actor", 200),
    _time("at"),
    _text("data"),  # canonical JSON of what happened (the bytes the hash covers)
    _str("prev_hash", 64),
    _str("hash", 64),
)

# A person who signs in. `name` is the login name, lower-case; the password only as an argon2id hash.
users_t = sa.Table(
    "users", metadata,
    _key("id", 32),
    _str("name", 64, unique=True),
    _str("full_name", 200, default=""),
    _str("email", 320, nullable=True),
    _json("roles", nullable=False),  # a list of Role values
    _str("password_hash", 200),
    _time("created"),
    _time("updated"),
)

# A signed-in browser. `id` is the SHA-256 of the session cookie's value: the database never holds a cookie that
# would let someone in.
sessions_t = sa.Table(
    "sessions", metadata,
    _key("id", 64),
    sa.Column("user_id", sa.String(32), _cascade("users.id"), nullable=False, index=True),
    _time("created"),
    _time("last_seen"),  # idle expiry counts from here (written at most once a minute)
    _time("expires", index=True),  # absolute expiry
    _str("address", 64, nullable=True),  # the client address at sign-in
)

# An OpenAPI connector: the document as imported (JSON), from where, and the server address given at import.
connectors_t = sa.Table(
    "connectors", metadata,
    _key("name", 64),  # its node types are api.<name>.<operation>
    _str("title", 200),
    _text("source", default=""),  # the URL or file name it was imported from
    _text("server", default=""),  # a base URL given at import ("" = the document's)
    _json("document", nullable=False),
    _time("created"),
    _time("updated"),
)

# A file's bytes when the store is PostgreSQL (several servers and workers share them); on SQLite they are files in
# the data folder. Content-addressed: the id is the SHA-256 of the bytes (flowboard/blobs.py).
blobs_t = sa.Table(
    "blobs", metadata,
    _key("id", 64),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    _time("created"),  # last kept (made again counts): the sweep spares young files
)
