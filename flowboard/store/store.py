"""The store: flows with their versions, runs with their steps, credentials and settings, over SQLAlchemy Core.

A sync API; callers in an event loop run it in a thread. Each method is one short transaction (SQLite has one writer
at a time, and the recorder writes from the event loop). Times are epoch seconds. The run recorder lives in
`recorder.py`; it writes the same tables with precompiled SQL.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import secrets
import socket
import sys
import time
import uuid
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from ..databases import dispose
from ..engine.states import GOING, RunStatus, Step, StepStatus, Waiting, sources_of, transition_allowed
from ..errors import FlowboardError
from ..model import Flow, dump_flow, parse_flow
from .db import database_url, init_db, make_engine, resolve_data_dir, write_transaction
from .secrets import Secrets
from .tables import (
    JSONText,
    api_keys_t,
    credentials_t,
    flows_t,
    oauth_sign_ins_t,
    runs_t,
    schedule_fires_t,
    schedule_state_t,
    settings_t,
    steps_t,
    table_trigger_state_t,
    versions_t,
    waits_t,
)


class StoreError(FlowboardError):
    """Base of the store's errors."""


class NotFound(StoreError, LookupError):
    pass


class AlreadyExists(StoreError):
    pass


class TransitionRefused(StoreError):
    """A run's state change that its state table does not allow (`engine.states.RUN_TRANSITIONS`), or one asked by a
    process that does not own the run (any more)."""


class CredentialInUse(StoreError):
    """A credential that stored flows use cannot be deleted; `flows` names them."""

    def __init__(self, name: str, flows: list[str]):
        self.flows = flows
        shown = ", ".join(repr(f) for f in flows[:10]) + (f" and {len(flows) - 10} more" if len(flows) > 10 else "")
        super().__init__(f"the credential {name!r} cannot be deleted: the flow{'s' if len(flows) > 1 else ''} "
                         f"{shown} use{'' if len(flows) > 1 else 's'} it. Change {'them' if len(flows) > 1 else 'it'} "
                         "to use another credential (or delete the flows) first")


class WaitGone(StoreError):
    """The node is not waiting (any more): it was resumed already, its run ended, or there is no such wait."""


class VersionConflict(StoreError):
    """The flow was saved by someone else since it was loaded: reload it (or force with its current version)."""

    def __init__(self, current_version: int):
        self.current_version = current_version
        super().__init__(f"the flow was changed meanwhile (now at version {current_version}); reload it before saving")


@dataclass(slots=True)
class FlowSummary:
    id: str
    name: str
    description: str
    active: bool
    version: int
    updated: float
    last_run_status: RunStatus | None
    last_run_at: float | None


@dataclass(slots=True)
class StoredFlow:
    flow: Flow
    version: int
    active: bool
    created: float
    updated: float


@dataclass(slots=True)
class VersionInfo:
    version: int
    created: float
    note: str


@dataclass(slots=True)
class RunRecord:
    id: str
    flow_id: str
    flow_version: int | None
    status: RunStatus
    trigger: str | None
    source: str | None
    input: list[dict[str, Any]]
    output: list[dict[str, Any]] | None
    error: dict[str, Any] | None
    created: float
    started: float | None
    finished: float | None
    owner: str | None
    heartbeat: float | None


@dataclass(slots=True)
class CredentialInfo:
    name: str
    type: str
    created: float
    updated: float
    problem: str | None = None  # what is wrong, in words (an OAuth2 sign-in whose renewal failed)


@dataclass(slots=True)
class ApiKeyInfo:
    """What is kept about an API key: never the key, only its first characters (`prefix`) to tell keys apart."""

    id: str
    name: str
    prefix: str
    created: float
    last_used: float | None
    user_id: str | None = None  # the user it acts for (None: made with the CLI, acts as an admin)


API_KEY_PREFIX = "fb_"
_API_KEY_TOUCH = 60.0  # seconds: `last_used` is written at most this often per key, not on every call
API_KEY_CACHE = 2.0  # seconds a valid key is trusted without reading the database again (this process)
#: Seconds a credential read by a run (or a webhook checking a call) is used again without reading and decrypting it
#: anew. A change made through this store is seen at once; one made by another process, within this time.
CREDENTIAL_CACHE = 2.0


#: A step's `outputs["main"]` as written when the node handed on exactly the run's input items (a trigger does): the
#: items are in the run row already, so they are written once. (A node's output port always holds a list, so this
#: object cannot be real output.) `get_steps` puts the items back.
SAME_AS_RUN_INPUT: dict[str, str] = {"$same_as": "run.input"}


#: What each entry of a run's packed steps (`runs.steps`, a JSON array) holds, in order: a `steps` row without its
#: run id, with its JSON columns as JSON values, not text. Written by the recorder (`recorder._packed`).
PACKED_STEP_COLUMNS = ("node_id", "status", "attempt", "started", "finished", "inputs", "outputs", "error", "logs",
                       "lineage")


def unpack_steps(run_id: str, text: str | bytes) -> list[dict[str, Any]]:
    """A run's packed steps as `steps` rows (column -> value, JSON columns parsed), as a read of the table gives."""
    return [{"run_id": run_id, **dict(zip(PACKED_STEP_COLUMNS, entry, strict=True))} for entry in orjson.loads(text)]


def unpack_into_rows(conn: sa.Connection, *where: sa.ColumnElement[bool]) -> None:
    """Move the packed steps of the runs `where` selects into `steps` rows (before anything changes them there)."""
    packed = conn.execute(sa.select(runs_t.c.id, runs_t.c.steps).where(runs_t.c.steps.is_not(None), *where)).all()
    for run_id, text in packed:
        rows = unpack_steps(run_id, text)
        if rows:  # a packed step is newer than a row of the same node (a start record left by a stopped process)
            conn.execute(steps_t.delete().where(steps_t.c.run_id == run_id,
                                                steps_t.c.node_id.in_([row["node_id"] for row in rows])))
            conn.execute(steps_t.insert(), rows)
        conn.execute(runs_t.update().where(runs_t.c.id == run_id).values(steps=None))


def same_as_step(node_id: str, port: str) -> dict[str, str]:
    """A step's output port as written when the node passed on, unchanged, the items of an earlier step's port
    (`Step.same_as`): those items are written once, with that step. `get_steps` puts them back."""
    return {"$same_as": "step", "node": node_id, "port": port}


def _resolve_step_references(steps: dict[str, Step]) -> None:
    """Put back the items of every output port written as a reference to an earlier step's (`same_as_step`),
    following references to references. A reference to a step no longer there (its data cleared) gives no items."""
    def resolve(value: Any, depth: int = 0) -> list[Any]:
        if isinstance(value, dict) and value.get("$same_as") == "step":
            source = steps.get(str(value.get("node")))
            if source is None or depth > len(steps):
                return []
            return resolve(source.outputs.get(str(value.get("port"))), depth + 1)
        return value if isinstance(value, list) else []

    for step in steps.values():
        for port, value in list(step.outputs.items()):
            if isinstance(value, dict) and value.get("$same_as") == "step":
                step.outputs[port] = copy.deepcopy(resolve(value))


def hash_api_key(key: str) -> str:
    """The stored form of an API key. A plain SHA-256 is enough: the key is 256 random bits, not a password."""
    return hashlib.sha256(key.encode()).hexdigest()


#: Retention defaults. `None` turns a limit off. Only finished runs are ever deleted.
DEFAULT_SETTINGS: dict[str, Any] = {
    "keep_days": 30,  # delete finished runs older than this
    "keep_runs": 10_000,  # per flow, keep at most this many finished runs
    "keep_success_data": True,  # False: drop the items of steps of succeeded runs (keep status and timing)
}
UNFINISHED = (RunStatus.queued.value, RunStatus.running.value)  # runs a process holds (waiting ones it does not)
#: Seconds a run's owner holds it without renewing its lease (`heartbeat`); after that, another process may take the
#: run over (`claim_run`). The owner renews every third of it. `FLOWBOARD_RUN_LEASE` changes it (tests shorten it).
GOING_HERE = ("queued", "running")  # a run in these states is being run by its owner


def flow_idle(conn: sa.Connection, flow_id: str) -> bool:
    """Whether no run of the flow is queued or running (run mode `skip` across processes), in the caller's
    transaction: on PostgreSQL under a lock per flow held to its end, so of two processes recording a run of the flow
    at once, the second sees the first's run."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"skip:{flow_id}"})
    going = sa.select(runs_t.c.id).where(runs_t.c.flow_id == flow_id, runs_t.c.status.in_(GOING_HERE)).limit(1)
    return conn.execute(going).first() is None
LEASE = float(os.environ.get("FLOWBOARD_RUN_LEASE") or 30.0)
FINISHED = tuple(s.value for s in RunStatus if s.finished)
_FILE_ID = re.compile(r'"\$file"\s*:\s*"([0-9a-f]{64})"')
_CHUNK = 500  # rows per delete transaction, so a big cleanup never holds SQLite's write lock for long


def make_owner_id() -> str:
    """Who runs a run: `host:pid:random`. The random part tells two stores of one process apart."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Store:
    def __init__(self, url: str | sa.Engine | None = None, *, data_dir: Path | str | None = None):
        self._data_dir = Path(data_dir) if data_dir is not None else None
        if isinstance(url, sa.Engine):
            self.engine = url
        else:
            self.engine = make_engine(url or database_url(self._data_dir))
        self.dialect = self.engine.dialect.name
        self.owner = make_owner_id()
        self.secrets = Secrets(self.data_dir)
        self.recorders: weakref.WeakSet[Any] = weakref.WeakSet()  # SqlRecorders on this store, closed with it
        self._valid_keys: dict[str, tuple[ApiKeyInfo, float]] = {}  # key hash -> (info, checked at); see API keys
        # name -> (type, decrypted data, read at): see `credential`. Cleared whenever this store changes a credential.
        self._credentials: dict[str, tuple[str, dict[str, Any], float]] = {}
        self._credentials_changed = 0  # counts changes: a read that overlapped one is not kept
        init_db(self.engine)

    def data_dir(self) -> Path:
        return resolve_data_dir(self._data_dir)

    def close(self) -> None:
        """Close the recorders made on this store (writing what they buffered), then every connection (one still in
        use by a thread is closed when that thread gives it back)."""
        for recorder in list(self.recorders):
            recorder.close()
        dispose(self.engine)

    # -- flows ------------------------------------------------------------------------------------------------------

    def list_flows(self) -> list[FlowSummary]:
        last = sa.select(runs_t.c.status, runs_t.c.created).where(runs_t.c.flow_id == flows_t.c.id) \
            .order_by(runs_t.c.created.desc()).limit(1)
        query = sa.select(flows_t.c.id, flows_t.c.name, flows_t.c.description, flows_t.c.active, flows_t.c.version,
                          flows_t.c.updated, last.with_only_columns(runs_t.c.status).scalar_subquery(),
                          last.with_only_columns(runs_t.c.created).scalar_subquery()) \
            .order_by(flows_t.c.name, flows_t.c.id)
        with self.engine.connect() as conn:
            return [FlowSummary(r[0], r[1], r[2], r[3], r[4], r[5], RunStatus(r[6]) if r[6] else None, r[7])
                    for r in conn.execute(query)]

    def flow_exists(self, flow_id: str) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(flows_t.c.id).where(flows_t.c.id == flow_id)).first() is not None

    def get_flow(self, flow_id: str) -> StoredFlow:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(flows_t).where(flows_t.c.id == flow_id)).first()
        if row is None:
            raise NotFound(f"there is no flow {flow_id!r}")
        return StoredFlow(parse_flow(row.document), row.version, row.active, row.created, row.updated)

    def save_flow(self, flow: Flow, expected_version: int | None, note: str = "") -> int:
        """Save a new version of `flow` and return its number. `expected_version` is the version the editor loaded;
        if the stored one differs, raise VersionConflict and change nothing. None creates the flow."""
        document = dump_flow(flow)
        now = time.time()
        with self.engine.begin() as conn:
            if expected_version is None:
                if conn.execute(sa.select(flows_t.c.id).where(flows_t.c.id == flow.id)).first() is not None:
                    raise AlreadyExists(f"a flow with id {flow.id!r} exists already")
                version = 1
                try:
                    conn.execute(flows_t.insert().values(id=flow.id, name=flow.name, description=flow.description,
                                                         active=False, version=1, document=document, created=now,
                                                         updated=now))
                except sa.exc.IntegrityError:
                    raise AlreadyExists(f"a flow with id {flow.id!r} exists already") from None
            else:
                version = expected_version + 1
                done = conn.execute(flows_t.update()
                                    .where(flows_t.c.id == flow.id, flows_t.c.version == expected_version)
                                    .values(name=flow.name, description=flow.description, version=version,
                                            document=document, updated=now))
                if done.rowcount != 1:
                    current = conn.execute(sa.select(flows_t.c.version).where(flows_t.c.id == flow.id)).scalar()
                    if current is None:
                        raise NotFound(f"there is no flow {flow.id!r}; save it as a new flow")
                    raise VersionConflict(current)
            conn.execute(versions_t.insert().values(flow_id=flow.id, version=version, document=document, created=now,
                                                    note=note))
        return version

    def delete_flow(self, flow_id: str) -> None:
        """Delete the flow, all its versions, and all its runs with their steps."""
        with self.engine.begin() as conn:
            run_ids = sa.select(runs_t.c.id).where(runs_t.c.flow_id == flow_id)
            conn.execute(steps_t.delete().where(steps_t.c.run_id.in_(run_ids)))
            conn.execute(waits_t.delete().where(waits_t.c.run_id.in_(run_ids)))
            conn.execute(runs_t.delete().where(runs_t.c.flow_id == flow_id))
            conn.execute(versions_t.delete().where(versions_t.c.flow_id == flow_id))
            conn.execute(schedule_fires_t.delete().where(schedule_fires_t.c.flow_id == flow_id))
            conn.execute(schedule_state_t.delete().where(schedule_state_t.c.flow_id == flow_id))
            if conn.execute(flows_t.delete().where(flows_t.c.id == flow_id)).rowcount != 1:
                raise NotFound(f"there is no flow {flow_id!r}")

    def list_versions(self, flow_id: str) -> list[VersionInfo]:
        """Newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(versions_t.c.version, versions_t.c.created, versions_t.c.note)
                                .where(versions_t.c.flow_id == flow_id).order_by(versions_t.c.version.desc())).all()
            if not rows and conn.execute(sa.select(flows_t.c.id).where(flows_t.c.id == flow_id)).first() is None:
                raise NotFound(f"there is no flow {flow_id!r}")
        return [VersionInfo(*row) for row in rows]

    def get_version(self, flow_id: str, version: int) -> Flow:
        with self.engine.connect() as conn:
            document = conn.execute(sa.select(versions_t.c.document).where(versions_t.c.flow_id == flow_id,
                                                                             versions_t.c.version == version)).scalar()
        if document is None:
            raise NotFound(f"flow {flow_id!r} has no version {version}")
        return parse_flow(document)

    def set_active(self, flow_id: str, active: bool) -> None:
        """Switch the flow's triggers on or off. Not a new version: `active` is not part of the flow file.
        Switching off forgets where its schedules were, so switching on again does not catch up on the time between."""
        with self.engine.begin() as conn:
            if conn.execute(flows_t.update().where(flows_t.c.id == flow_id).values(active=active)).rowcount != 1:
                raise NotFound(f"there is no flow {flow_id!r}")
            if not active:
                conn.execute(schedule_state_t.delete().where(schedule_state_t.c.flow_id == flow_id))
                conn.execute(table_trigger_state_t.delete().where(table_trigger_state_t.c.flow_id == flow_id))

    # -- runs -------------------------------------------------------------------------------------------------------

    def create_run(self, run_id: str, flow_id: str, flow_version: int | None, trigger: str | None,
                   input: list[dict[str, Any]], source: str | None, status: RunStatus | str = RunStatus.queued,
                   owner: str | None = None) -> RunRecord:
        """Accept a run before it starts (queued), so a crash cannot lose it. The recorder fills it in later."""
        record = RunRecord(run_id, flow_id, flow_version, RunStatus(status), trigger, source, input, None, None,
                           time.time(), None, None, owner, time.time() if owner else None)
        try:
            with self.engine.begin() as conn:
                conn.execute(runs_t.insert().values(
                    id=run_id, flow_id=flow_id, flow_version=flow_version, status=record.status.value,
                    trigger=trigger, source=source, input=input, created=record.created, owner=owner,
                    heartbeat=record.heartbeat))
        except sa.exc.IntegrityError:
            raise AlreadyExists(f"a run with id {run_id!r} exists already") from None
        return record

    def create_run_if_idle(self, run_id: str, flow_id: str, flow_version: int | None, trigger: str | None,
                           input: list[dict[str, Any]], source: str | None) -> bool:
        """Accept a queued run, with no owner, unless a run of the flow is queued or running (run mode `skip` across
        processes): the check and the insert are one transaction under a lock per flow (PostgreSQL), so of two
        concurrent triggers one run starts. False when it was skipped."""
        with self.engine.begin() as conn:
            if not flow_idle(conn, flow_id):
                return False
            conn.execute(runs_t.insert().values(
                id=run_id, flow_id=flow_id, flow_version=flow_version, status=RunStatus.queued.value,
                trigger=trigger, source=source, input=input, created=time.time(), owner=None, heartbeat=None))
        return True

    def get_run(self, run_id: str) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(*_RUN_RECORD).where(runs_t.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"there is no run {run_id!r}")
        return _run(row)

    def list_runs(self, flow_id: str | None = None, status: RunStatus | str | Iterable[str] | None = None,
                  source: str | None = None, since: float | None = None, limit: int = 50,
                  offset: int = 0) -> list[RunRecord]:
        """Newest first. `status` is one status or several; `since` is epoch seconds (runs created since)."""
        query = sa.select(*_RUN_RECORD)
        if flow_id is not None:
            query = query.where(runs_t.c.flow_id == flow_id)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            query = query.where(runs_t.c.status.in_([RunStatus(s).value for s in statuses]))
        if source is not None:
            query = query.where(runs_t.c.source == source)
        if since is not None:
            query = query.where(runs_t.c.created >= since)
        query = query.order_by(runs_t.c.created.desc(), runs_t.c.id).limit(limit).offset(offset)
        with self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(query)]

    def get_steps(self, run_id: str) -> dict[str, Step]:
        """The run's recorded steps as the engine's Step records, in the order they finished: its `steps` rows and
        the ones packed in its run row (`runs.steps`, see `unpack_steps`)."""
        query = sa.select(steps_t).where(steps_t.c.run_id == run_id).order_by(steps_t.c.finished, steps_t.c.node_id)
        with self.engine.connect() as conn:
            rows: list[Any] = [row._mapping for row in conn.execute(query)]
            packed = conn.execute(sa.select(runs_t.c.steps).where(runs_t.c.id == run_id)).scalar()
            if packed is not None:  # newer than a row of the same node (a start record left by a stopped process)
                latest = {row["node_id"]: row for row in [*rows, *unpack_steps(run_id, packed)]}
                rows = sorted(latest.values(), key=lambda r: (r["finished"], r["node_id"]))
            steps = {row["node_id"]: Step(row["run_id"], row["node_id"], StepStatus(row["status"]), row["started"],
                                          row["finished"], row["attempt"], row["inputs"] or {}, row["outputs"] or {},
                                          row["error"], row["logs"] or [], row["lineage"])
                     for row in rows}
            same = [step for step in steps.values() if step.outputs.get("main") == SAME_AS_RUN_INPUT]
            if same:  # a trigger's items are the run's input, written once (see recorder._step_row)
                run_input = conn.execute(sa.select(runs_t.c.input).where(runs_t.c.id == run_id)).scalar() or []
                for step in same:
                    step.outputs["main"] = copy.deepcopy(run_input) if len(same) > 1 else run_input
            _resolve_step_references(steps)
        return steps

    def unfinished_runs(self) -> list[RunRecord]:
        """Runs queued or running: after a crash, the ones to claim and resume. Oldest first."""
        with self.engine.connect() as conn:
            return [_run(row) for row in conn.execute(sa.select(*_RUN_RECORD).where(runs_t.c.status.in_(UNFINISHED))
                                                      .order_by(runs_t.c.created, runs_t.c.id))]

    def mark_run(self, run_id: str, status: RunStatus | str, error: dict[str, Any] | None = None, *,
                 owner: str | None = None) -> None:
        """Set a run's status (e.g. crashed, cancelled); a final status also sets `finished`. The change must be
        allowed from the run's current status (`engine.states.RUN_TRANSITIONS`), and with `owner` the run must be
        owned by it; otherwise TransitionRefused, and nothing changes. NotFound if there is no such run."""
        status = RunStatus(status)
        values: dict[str, Any] = {"status": status.value, "error": error}
        if status.finished:
            values["finished"] = time.time()
        where = [runs_t.c.id == run_id, runs_t.c.status.in_(sources_of(status))]
        if owner is not None:
            where.append(runs_t.c.owner == owner)
        with self.engine.begin() as conn:
            if conn.execute(runs_t.update().where(*where).values(**values)).rowcount == 1:
                return
            row = conn.execute(sa.select(runs_t.c.status, runs_t.c.owner).where(runs_t.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"there is no run {run_id!r}")
        if not transition_allowed(row.status, status):
            raise TransitionRefused(f"run {run_id} is {row.status}; it cannot become {status.value}")
        raise TransitionRefused(f"run {run_id} is run by another process ({row.owner}), not by {owner}")

    def file_ids_in_use(self) -> set[str]:
        """Every file (blob SHA-256) that something kept still names: runs (input, output, waiting data), steps,
        and flows (pinned test items) with their versions. Read from the JSON text, without parsing it."""
        found: set[str] = set()
        for table in (runs_t, steps_t, waits_t, flows_t, versions_t):
            columns = [c for c in table.c if isinstance(c.type, JSONText | sa.Text)]
            for column in columns:
                raw = sa.type_coerce(column, sa.Text)  # the stored text, not parsed
                query = sa.select(raw).where(raw.like('%"$file"%'))
                with self.engine.connect() as conn:
                    for (text,) in conn.execute(query.execution_options(yield_per=200)):
                        if isinstance(text, bytes | str):
                            found.update(_FILE_ID.findall(text if isinstance(text, str) else text.decode()))
        return found

    def delete_run(self, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(steps_t.delete().where(steps_t.c.run_id == run_id))
            conn.execute(waits_t.delete().where(waits_t.c.run_id == run_id))
            if conn.execute(runs_t.delete().where(runs_t.c.id == run_id)).rowcount != 1:
                raise NotFound(f"there is no run {run_id!r}")

    def claim_run(self, run_id: str, owner: str, stale_after: float = LEASE) -> bool:
        """Take an unfinished run for `owner` (usually `self.owner`) before resuming it. Succeeds when the run has no
        owner, is `owner`'s already, its owner's lease ran out (no heartbeat for `stale_after` seconds), or its owner
        is a process of this host that no longer exists. A live owner renews its lease while the run goes, however
        quiet the run is (a long call, a wait), so a live run is never taken. Atomic (compare-and-set), so two
        processes never both win."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs_t.c.status, runs_t.c.owner, runs_t.c.heartbeat)
                               .where(runs_t.c.id == run_id)).first()
        if row is None or row.status not in UNFINISHED:
            return False
        now = time.time()
        if row.owner not in (None, owner) and not _owner_gone(row.owner, row.heartbeat, now - stale_after):
            return False
        with self.engine.begin() as conn:
            done = conn.execute(runs_t.update().where(
                runs_t.c.id == run_id, runs_t.c.status.in_(UNFINISHED),
                runs_t.c.owner.is_not_distinct_from(row.owner),
                runs_t.c.heartbeat.is_not_distinct_from(row.heartbeat),
            ).values(owner=owner, heartbeat=now))
            return done.rowcount == 1

    def reopen_run(self, run_id: str, owner: str, keep: Iterable[str]) -> bool:
        """Take a failed, cancelled or crashed run to run it again in place (a retry): it becomes `running` for
        `owner`, and its steps other than `keep` (node ids) are deleted. Atomic: of two callers, one wins."""
        keep = list(keep)
        now = time.time()
        reopenable = (RunStatus.failed.value, RunStatus.cancelled.value, RunStatus.crashed.value)
        with self.engine.begin() as conn:
            done = conn.execute(runs_t.update().where(runs_t.c.id == run_id, runs_t.c.status.in_(reopenable))
                                .values(status=RunStatus.running.value, owner=owner, heartbeat=now, error=None,
                                        output=None, finished=None))
            if done.rowcount != 1:
                return False
            unpack_into_rows(conn, runs_t.c.id == run_id)  # the retry's writes go to rows
            conn.execute(steps_t.delete().where(steps_t.c.run_id == run_id, steps_t.c.node_id.not_in(keep)))
        return True

    def release_runs(self, owner: str) -> list[tuple[str, str]]:
        """Hand back every unfinished run `owner` holds (a worker stopping): no owner, so the next claim takes it at
        once. Returns (run id, flow id) of each."""
        with self.engine.begin() as conn:
            rows = conn.execute(runs_t.update().where(runs_t.c.owner == owner, runs_t.c.status.in_(GOING_HERE))
                                .values(owner=None, heartbeat=None).returning(runs_t.c.id, runs_t.c.flow_id)).all()
        return [(row.id, row.flow_id) for row in rows]

    def heartbeat(self, owner: str) -> int:
        """Renew `owner`'s lease on every unfinished run it owns, in one UPDATE; returns how many. `Lease` calls it
        every third of `LEASE`."""
        with self.engine.begin() as conn:
            return conn.execute(runs_t.update().where(runs_t.c.owner == owner, runs_t.c.status.in_(UNFINISHED))
                                .values(heartbeat=time.time())).rowcount

    def lost_runs(self, owner: str, run_ids: Iterable[str]) -> set[str]:
        """Of `run_ids` (runs `owner` is running), those it lost: recorded, but owned by another process now, or
        ended. A run not recorded yet is not lost (the recorder writes a pure run only when it ends)."""
        ids = list(run_ids)
        lost: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), _CHUNK):
                mine = sa.or_(runs_t.c.owner == owner,  # or nobody's yet (accepted, not started)
                              sa.and_(runs_t.c.owner.is_(None), runs_t.c.status == RunStatus.queued.value))
                query = sa.select(runs_t.c.id).where(runs_t.c.id.in_(ids[i:i + _CHUNK]),
                                                     sa.or_(sa.not_(mine), runs_t.c.status.not_in(GOING)))
                lost.update(conn.execute(query).scalars())
        return lost

    # -- waits: runs parked by a node (`sdk.Suspend`) until a deadline or a resume call ------------------------------

    def waits_of(self, run_id: str) -> dict[str, Waiting]:
        """The recorded waits of a run, by node id, resumed ones too."""
        t = waits_t
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.node_id, t.c.resume_at, t.c.data, t.c.resumed, t.c.payload, t.c.who)
                                .where(t.c.run_id == run_id)).all()
        return {row.node_id: Waiting(row.resume_at, row.data or {}, row.resumed is not None, row.payload,
                                     row.resumed, row.who) for row in rows}

    def _parked(self) -> sa.Select[Any]:
        return sa.select(waits_t.c.run_id, waits_t.c.node_id, waits_t.c.resume_at).join(
            runs_t, runs_t.c.id == waits_t.c.run_id).where(
            waits_t.c.resumed.is_(None), waits_t.c.resume_at.is_not(None),
            runs_t.c.status == RunStatus.waiting.value).order_by(waits_t.c.resume_at)

    def next_wake(self) -> float | None:
        """The earliest deadline of a parked run's wait (epoch seconds), None when no parked run has one. One indexed
        read, whatever the number of waiting runs."""
        with self.engine.connect() as conn:
            row = conn.execute(self._parked().limit(1)).first()
        return None if row is None else float(row.resume_at)

    def due_waits(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        """(run id, node id) of parked waits whose deadline has come, earliest first."""
        with self.engine.connect() as conn:
            return [(row.run_id, row.node_id) for row in
                    conn.execute(self._parked().where(waits_t.c.resume_at <= now).limit(limit))]

    def cancel_waiting(self, run_id: str) -> bool:
        """Cancel a parked run: it ends `cancelled`, its waiting steps too, and its waits are gone. False when the
        run is not waiting (it was resumed or ended meanwhile). One transaction."""
        now = time.time()
        with self.engine.begin() as conn:
            if conn.execute(runs_t.update().where(runs_t.c.id == run_id, runs_t.c.status == RunStatus.waiting.value)
                            .values(status=RunStatus.cancelled.value, finished=now,
                                    error={"message": "the run was cancelled"})).rowcount != 1:
                return False
            conn.execute(steps_t.update().where(steps_t.c.run_id == run_id,
                                                steps_t.c.status == StepStatus.waiting.value)
                         .values(status=StepStatus.cancelled.value, finished=now))
            conn.execute(waits_t.delete().where(waits_t.c.run_id == run_id))
        return True

    def resume_wait(self, run_id: str, node_id: str, owner: str | None, payload: Any = None,
                    who: str | None = None) -> RunRecord:
        """Take a parked run to resume it: its wait at `node_id` is marked resumed with `payload` (kept, so a crash
        before the node's step is recorded still resumes it with the same payload), and the run becomes `running`
        for `owner` (None: for the worker that claims it). One transaction; of two callers one wins, the other gets
        WaitGone."""
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(waits_t.c.resumed, waits_t.c.who).where(
                waits_t.c.run_id == run_id, waits_t.c.node_id == node_id)).first()
            if row is None:
                raise WaitGone(f"run {run_id} is not waiting at node {node_id!r}")
            if row.resumed is not None:
                raise WaitGone(resumed_already(row.resumed, row.who))
            taken = conn.execute(runs_t.update().where(runs_t.c.id == run_id,
                                                       runs_t.c.status == RunStatus.waiting.value)
                                 .values(status=RunStatus.running.value, owner=owner, heartbeat=now))
            if taken.rowcount != 1:
                status = conn.execute(sa.select(runs_t.c.status).where(runs_t.c.id == run_id)).scalar()
                raise WaitGone(f"run {run_id} is {status}, not waiting; a waiting run can be resumed once it has "
                               "stopped, try again in a moment" if status in UNFINISHED else
                               f"run {run_id} has ended ({status}); it cannot be resumed")
            conn.execute(waits_t.update().where(waits_t.c.run_id == run_id, waits_t.c.node_id == node_id)
                         .values(resumed=now, payload=payload, who=who))
            record = conn.execute(sa.select(*_RUN_RECORD).where(runs_t.c.id == run_id)).first()
        return _run(record)

    def apply_retention(self) -> int:
        """Apply the retention settings; returns how many runs were deleted. Unfinished runs are never touched."""
        settings = self.get_settings()
        doomed: set[str] = set()
        with self.engine.connect() as conn:
            if settings.get("keep_days") is not None:
                cutoff = time.time() - float(settings["keep_days"]) * 86400
                doomed.update(conn.execute(sa.select(runs_t.c.id).where(runs_t.c.status.in_(FINISHED),
                                                                        runs_t.c.created < cutoff)).scalars())
            if settings.get("keep_runs") is not None:
                rank = sa.func.row_number().over(partition_by=runs_t.c.flow_id,
                                                 order_by=(runs_t.c.created.desc(), runs_t.c.id.desc())).label("rank")
                ranked = sa.select(runs_t.c.id, rank).where(runs_t.c.status.in_(FINISHED)).subquery()
                doomed.update(conn.execute(sa.select(ranked.c.id).where(ranked.c.rank > int(settings["keep_runs"])))
                              .scalars())
        ids = sorted(doomed)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            with self.engine.begin() as conn:
                conn.execute(steps_t.delete().where(steps_t.c.run_id.in_(chunk)))
                conn.execute(waits_t.delete().where(waits_t.c.run_id.in_(chunk)))
                conn.execute(runs_t.delete().where(runs_t.c.id.in_(chunk), runs_t.c.status.in_(FINISHED)))
        if settings.get("keep_days") is not None:  # old schedule claims: their times never come back
            with self.engine.begin() as conn:
                conn.execute(schedule_fires_t.delete().where(
                    schedule_fires_t.c.claimed < time.time() - float(settings["keep_days"]) * 86400))
        if not settings.get("keep_success_data", True):
            succeeded = sa.select(runs_t.c.id).where(runs_t.c.status == RunStatus.succeeded.value)
            empty: sa.ColumnElement[str] = sa.literal_column("'{}'")  # compared as text, not as JSON
            with self.engine.begin() as conn:
                unpack_into_rows(conn, runs_t.c.status == RunStatus.succeeded.value)  # pruned below with the rest
                conn.execute(steps_t.update().where(steps_t.c.run_id.in_(succeeded),
                                                    sa.or_(steps_t.c.inputs != empty, steps_t.c.outputs != empty))
                             .values(inputs={}, outputs={}, lineage=None))
        return len(ids)

    # -- settings ---------------------------------------------------------------------------------------------------

    def get_settings(self) -> dict[str, Any]:
        """Every setting: the retention defaults overlaid with what was saved."""
        with self.engine.connect() as conn:
            saved = {row.key: row.value for row in conn.execute(sa.select(settings_t))}
        return {**DEFAULT_SETTINGS, **saved}

    def set_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Save some settings (the others keep their values); returns all of them."""
        for key in ("keep_days", "keep_runs"):
            value = values.get(key)
            if key in values and value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                                        or value < 0):
                raise ValueError(f"{key} must be a number of at least 0, or null for no limit")
        if "keep_success_data" in values and not isinstance(values["keep_success_data"], bool):
            raise ValueError("keep_success_data must be true or false")
        with self.engine.begin() as conn:
            for key, value in values.items():
                if conn.execute(settings_t.update().where(settings_t.c.key == key).values(value=value)).rowcount == 0:
                    conn.execute(settings_t.insert().values(key=key, value=value))
        return self.get_settings()

    # -- credentials ------------------------------------------------------------------------------------------------

    def set_credential(self, name: str, type: str, data: dict[str, Any]) -> None:
        """Create or replace a credential (clearing any problem shown with it). `data` is encrypted before it reaches
        the database."""
        token = self.secrets.encrypt(name, data)
        now = time.time()
        self._forget_credentials()
        with self.engine.begin() as conn:
            if conn.execute(credentials_t.update().where(credentials_t.c.name == name)
                            .values(type=type, data=token, updated=now, problem=None)).rowcount == 0:
                conn.execute(credentials_t.insert().values(name=name, type=type, data=token, created=now, updated=now))
        self._forget_credentials()

    def get_credential(self, name: str) -> dict[str, Any] | None:
        """The decrypted data, or None if there is no such credential. Raises SecretKeyError with the wrong key."""
        found = self.credential(name)
        return None if found is None else found[1]

    def credential(self, name: str, max_age: float = 0.0) -> tuple[str, dict[str, Any]] | None:
        """The type and the decrypted data, or None if there is no such credential. `max_age` > 0: a copy of what
        this store read less than that many seconds ago will do (`cached_credential`); what is read is kept for that.
        Runs and webhooks read with `CREDENTIAL_CACHE`, so a busy flow does not read and decrypt per call."""
        if max_age > 0:
            hit = self.cached_credential(name, max_age)
            if hit is not None:
                return hit
        changes = self._credentials_changed
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(credentials_t.c.type, credentials_t.c.data)
                               .where(credentials_t.c.name == name)).first()
        if row is None:
            return None
        data = self.secrets.decrypt(name, row.data)
        if changes == self._credentials_changed:  # no change of this store overlapped the read
            self._credentials[name] = (row.type, copy.deepcopy(data), time.monotonic())
        return row.type, data

    def _forget_credentials(self) -> None:
        self._credentials_changed += 1
        self._credentials.clear()

    def cached_credential(self, name: str, max_age: float = CREDENTIAL_CACHE) -> tuple[str, dict[str, Any]] | None:
        """A copy of the credential as this store read it less than `max_age` seconds ago, else None. Never reads
        the database: safe to call on the event loop."""
        hit = self._credentials.get(name)
        if hit is None or time.monotonic() - hit[2] > max_age:
            return None
        return hit[0], copy.deepcopy(hit[1])

    def set_credential_problem(self, name: str, problem: str | None) -> None:
        """Say what is wrong with a credential (shown on the credentials page), or None when it works again."""
        with self.engine.begin() as conn:
            conn.execute(credentials_t.update().where(credentials_t.c.name == name).values(problem=problem))

    def list_credentials(self) -> list[CredentialInfo]:
        """Names, types and problems, never the data."""
        query = sa.select(credentials_t.c.name, credentials_t.c.type, credentials_t.c.created, credentials_t.c.updated,
                          credentials_t.c.problem)
        with self.engine.connect() as conn:
            return [CredentialInfo(*row) for row in conn.execute(query.order_by(credentials_t.c.name))]

    def credential_users(self, name: str) -> list[str]:
        """The names of the stored flows whose current version uses the credential `name` (any config field called
        `credential`, at any depth, naming it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(flows_t.c.name, flows_t.c.document).order_by(flows_t.c.name)).all()
        return [row.name for row in rows if name in row.document and _uses_credential(orjson.loads(row.document), name)]

    def delete_credential(self, name: str) -> None:
        """Delete a credential; refused (CredentialInUse, listing them) while stored flows use it."""
        users = self.credential_users(name)
        if users:
            raise CredentialInUse(name, users)
        self._forget_credentials()
        with self.engine.begin() as conn:
            if conn.execute(credentials_t.delete().where(credentials_t.c.name == name)).rowcount != 1:
                raise NotFound(f"there is no credential {name!r}")
        self._forget_credentials()

    def add_sign_in(self, state: str, credential: str, secret: dict[str, Any], lifetime: float) -> None:
        """Keep an OAuth2 sign-in until the provider sends the browser back (`take_sign_in`): `secret` (the PKCE
        verifier, ...) encrypted, under the state's SHA-256, for `lifetime` seconds. Expired ones are dropped here."""
        key = _sign_in_key(state)
        token = self.secrets.encrypt(f"sign-in {key}", secret)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(oauth_sign_ins_t.delete().where(oauth_sign_ins_t.c.expires < now))
            conn.execute(oauth_sign_ins_t.insert().values(state=key, credential=credential, data=token, created=now,
                                                          expires=now + lifetime))

    def take_sign_in(self, state: str) -> tuple[str, dict[str, Any]] | None:
        """The credential name and secret of the sign-in with this state, deleted as it is read (once only, by
        whichever server gets the redirect), or None when unknown, taken already or expired."""
        key = _sign_in_key(state)
        with write_transaction(self.engine) as conn:
            row = conn.execute(sa.select(oauth_sign_ins_t).where(oauth_sign_ins_t.c.state == key)).first()
            if row is None or conn.execute(oauth_sign_ins_t.delete().where(
                    oauth_sign_ins_t.c.state == key)).rowcount != 1:
                return None
        if row.expires < time.time():
            return None
        return row.credential, self.secrets.decrypt(f"sign-in {key}", row.data)

    def rotate_secret_key(self, fail_after: int | None = None) -> int:
        """Re-encrypt every credential under a new secret key, all or nothing; returns how many. See
        `Secrets.rotate`: the key file holds new and old key while the rows change in one transaction, so a failure
        at any point leaves a key that reads every row. `fail_after` (tests) raises after that many rows."""
        self._forget_credentials()
        with self.secrets.rotate() as fernet, self.engine.begin() as conn:
            rows = conn.execute(sa.select(credentials_t.c.name, credentials_t.c.data)).all()
            for count, row in enumerate(rows):
                if fail_after is not None and count == fail_after:
                    raise RuntimeError("stopped on purpose (test)")
                self.secrets.decrypt(row.name, row.data)  # any row the current key cannot read stops it all
                conn.execute(credentials_t.update().where(credentials_t.c.name == row.name)
                             .values(data=fernet.rotate(row.data.encode()).decode()))
            for sign_in in conn.execute(sa.select(oauth_sign_ins_t.c.state, oauth_sign_ins_t.c.data)).all():
                try:  # a sign-in going on meanwhile still finishes; one the old key cannot read is dropped
                    data = fernet.rotate(sign_in.data.encode()).decode()
                except InvalidToken:
                    conn.execute(oauth_sign_ins_t.delete().where(oauth_sign_ins_t.c.state == sign_in.state))
                    continue
                conn.execute(oauth_sign_ins_t.update().where(oauth_sign_ins_t.c.state == sign_in.state)
                             .values(data=data))
            return len(rows)

    # -- API keys ---------------------------------------------------------------------------------------------------

    def create_api_key(self, name: str, user_id: str | None = None) -> tuple[ApiKeyInfo, str]:
        """A new key for the REST API: its info and the key itself, in clear, which is never available again (only
        its hash is stored). With `user_id`, the key acts for that user, with their roles."""
        name = name.strip()
        if not name or len(name) > 200:
            raise ValueError("an API key needs a name of 1 to 200 characters, e.g. the script or service using it")
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        info = ApiKeyInfo(uuid.uuid4().hex[:12], name, key[:10], time.time(), None, user_id)
        with self.engine.begin() as conn:
            conn.execute(api_keys_t.insert().values(id=info.id, name=info.name, prefix=info.prefix,
                                                    hash=hash_api_key(key), created=info.created, last_used=None,
                                                    user_id=user_id))
        return info, key

    def list_api_keys(self) -> list[ApiKeyInfo]:
        """Oldest first. Never the keys or their hashes."""
        query = sa.select(api_keys_t.c.id, api_keys_t.c.name, api_keys_t.c.prefix, api_keys_t.c.created,
                          api_keys_t.c.last_used, api_keys_t.c.user_id).order_by(api_keys_t.c.created, api_keys_t.c.id)
        with self.engine.connect() as conn:
            return [ApiKeyInfo(*row) for row in conn.execute(query)]

    def revoke_api_key(self, key_id: str) -> None:
        """Delete the key: calls made with it are refused from now on (in another process, within
        `API_KEY_CACHE` seconds)."""
        with self.engine.begin() as conn:
            if conn.execute(api_keys_t.delete().where(api_keys_t.c.id == key_id)).rowcount != 1:
                raise NotFound(f"there is no API key with the id {key_id!r}")
        self._valid_keys.clear()

    def check_api_key(self, key: str) -> ApiKeyInfo | None:
        """The key's info if `key` is a valid key, else None. Notes the use (`last_used`, at most once a minute).
        A valid key is remembered for `API_KEY_CACHE` seconds (see `cached_api_key`)."""
        if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_api_key(key)
        query = sa.select(api_keys_t.c.id, api_keys_t.c.name, api_keys_t.c.prefix, api_keys_t.c.created,
                          api_keys_t.c.last_used, api_keys_t.c.user_id).where(api_keys_t.c.hash == digest)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            self._valid_keys.pop(digest, None)
            return None
        info = ApiKeyInfo(*row)
        now = time.time()
        if info.last_used is None or now - info.last_used >= _API_KEY_TOUCH:
            with self.engine.begin() as conn:
                conn.execute(api_keys_t.update().where(api_keys_t.c.id == info.id).values(last_used=now))
            info.last_used = now
        self._valid_keys[digest] = (info, time.monotonic())
        return info

    def cached_api_key(self, key: str) -> ApiKeyInfo | None:
        """The key's info if this store found it valid less than `API_KEY_CACHE` seconds ago; no database read (the
        API checks every call, and a call should not cost a query). None means: ask `check_api_key`."""
        hit = self._valid_keys.get(hash_api_key(key)) if key.startswith(API_KEY_PREFIX) and len(key) <= 200 else None
        if hit is None or time.monotonic() - hit[1] > API_KEY_CACHE:
            return None
        return hit[0]

    # -- schedules: a fire is claimed by inserting it, so exactly one process starts each scheduled run -------------

    def start_schedule(self, flow_id: str, node_id: str, now: int) -> int:
        """The schedule trigger's `last_fire`: every scheduled time up to it is handled. A trigger seen for the first
        time (or since its flow was switched off) starts at `now`, so activating never catches up on the past."""
        query = sa.select(schedule_state_t.c.last_fire).where(schedule_state_t.c.flow_id == flow_id,
                                                              schedule_state_t.c.node_id == node_id)
        with self.engine.connect() as conn:
            last = conn.execute(query).scalar()
        if last is not None:
            return int(last)
        try:
            with self.engine.begin() as conn:
                conn.execute(schedule_state_t.insert().values(flow_id=flow_id, node_id=node_id, last_fire=now,
                                                              updated=time.time()))
            return now
        except sa.exc.IntegrityError:  # another process started it a moment ago
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

    def skip_schedule_fires(self, flow_id: str, node_id: str, until: int) -> None:
        """Mark every scheduled time up to `until` handled without running it (missed fires that are skipped)."""
        with self.engine.begin() as conn:
            conn.execute(schedule_state_t.update().where(
                schedule_state_t.c.flow_id == flow_id, schedule_state_t.c.node_id == node_id,
                schedule_state_t.c.last_fire < until).values(last_fire=until, updated=time.time()))

    def claim_schedule_fire(self, flow_id: str, node_id: str, fire_time: int, *, owner: str | None = None,
                            run_id: str | None = None, flow_version: int | None = None,
                            items: list[dict[str, Any]] | None = None, missed: int = 0,
                            source: str = "schedule", idle_only: bool = False) -> bool | None:
        """Claim the scheduled time `fire_time` of one schedule trigger. True for the one caller whose insert
        succeeded: it starts the run. False when another process claimed it first, or the flow is not active (any
        more). With `run_id`, the run row is created (queued, input `items`) in the same transaction, so a claimed
        fire never loses its run. `idle_only` (run mode skip across processes): when a run of the flow is queued or
        running, the fire is claimed without a run and the answer is None."""
        now = time.time()
        try:
            with self.engine.begin() as conn:
                skipped = idle_only and run_id is not None and not flow_idle(conn, flow_id)
                if skipped:
                    run_id = None
                conn.execute(schedule_fires_t.insert().values(flow_id=flow_id, node_id=node_id, fire_time=fire_time,
                                                              claimed=now, owner=owner, run_id=run_id,
                                                              missed=missed))
                if not conn.execute(sa.select(flows_t.c.active).where(flows_t.c.id == flow_id)).scalar():
                    raise _NotActive
                conn.execute(schedule_state_t.update().where(
                    schedule_state_t.c.flow_id == flow_id, schedule_state_t.c.node_id == node_id,
                    schedule_state_t.c.last_fire < fire_time).values(last_fire=fire_time, updated=now))
                if run_id is not None:
                    conn.execute(runs_t.insert().values(
                        id=run_id, flow_id=flow_id, flow_version=flow_version, status=RunStatus.queued.value,
                        trigger=node_id, source=source, input=items or [], created=now, owner=owner,
                        heartbeat=now if owner else None))
        except (sa.exc.IntegrityError, _NotActive):
            return False
        return None if skipped else True

    def schedule_fires(self, flow_id: str, node_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest claimed fires of a flow's schedule triggers (newest first)."""
        t = schedule_fires_t
        query = sa.select(t.c.node_id, t.c.fire_time, t.c.claimed, t.c.owner, t.c.run_id, t.c.missed) \
            .where(t.c.flow_id == flow_id).order_by(t.c.fire_time.desc(), t.c.node_id).limit(limit)
        if node_id is not None:
            query = query.where(t.c.node_id == node_id)
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def schedule_last_fire(self, flow_id: str, node_id: str) -> int | None:
        """Up to when the trigger's scheduled times are handled (None: not running, or its flow was switched off)."""
        with self.engine.connect() as conn:
            last = conn.execute(sa.select(schedule_state_t.c.last_fire).where(
                schedule_state_t.c.flow_id == flow_id, schedule_state_t.c.node_id == node_id)).scalar()
        return None if last is None else int(last)


def _uses_credential(value: Any, name: str) -> bool:
    if isinstance(value, dict):
        return any((key == "credential" and item == name) or _uses_credential(item, name)
                   for key, item in value.items())
    if isinstance(value, list):
        return any(_uses_credential(item, name) for item in value)
    return False


def resumed_already(when: float, who: str | None) -> str:
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))
    return f"this wait was resumed already ({'by ' + who + ', ' if who else ''}at {at})"


class _NotActive(Exception):
    """Rolls a schedule claim back: the flow was switched off meanwhile (perhaps by another process)."""


#: What a RunRecord is read from: the run row without its packed steps (`runs.steps`, read only by `get_steps`).
_RUN_RECORD = [column for column in runs_t.c if column.name != "steps"]


def _run(row: Any) -> RunRecord:
    return RunRecord(row.id, row.flow_id, row.flow_version, RunStatus(row.status), row.trigger, row.source,
                     row.input if row.input is not None else [], row.output, row.error, row.created, row.started,
                     row.finished, row.owner, row.heartbeat)


def _owner_gone(owner: str, heartbeat: float | None, stale_before: float) -> bool:
    """The owner stopped heartbeating, or it is a process of this host that does not exist any more."""
    if heartbeat is None or heartbeat < stale_before:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or sys.platform == "win32":
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def _sign_in_key(state: str) -> str:
    """What the database keeps of an OAuth2 sign-in's state: its SHA-256 (the state itself finishes the sign-in)."""
    return hashlib.sha256(state.encode()).hexdigest()
