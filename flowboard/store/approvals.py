"""Approval tasks as records, and their tamper-evident decision log.

```
 create ─▶ approval_tasks (current state, for lists, filters, CSV)
 decide      │  same transaction
 reassign    ▼
 close   ─▶ approval_log  seq 1 ─▶ seq 2 ─▶ seq 3 ...   each entry: sha256(previous hash + its own content)
```

- Every change of a task and its log entry are written in ONE transaction that holds the write lock (SQLite
  `BEGIN IMMEDIATE`, PostgreSQL an advisory lock), so the log's order is the order things happened, and of two
  people deciding at once exactly one wins: the other is told who decided and when ("already approved by Ada at
  10:42"), never silently overwritten.
- The log is only ever appended to. `verify()` recomputes the chain and names the first entry that does not fit (an
  entry changed, removed or inserted by hand in SQL), then replays the log and checks every task row against it (a
  decision changed in `approval_tasks` directly). Someone who can write the database AND recompute every later hash
  can still forge a consistent history: keep a copy of `verify()`'s head hash elsewhere to catch that too.

Methods are synchronous (the store's style): async callers run them in a thread.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from ..errors import FlowboardError
from .db import write_transaction
from .tables import approval_log_t, approval_tasks_t, settings_t

OPEN, DECIDED, TIMED_OUT, CANCELLED = "open", "decided", "timed_out", "cancelled"
STATUSES = (OPEN, DECIDED, TIMED_OUT, CANCELLED)
GENESIS = "0" * 64  # the "previous hash" of the first entry
_LOCK_ID = 0x4170707276  # PostgreSQL advisory lock key for approval writes: "Apprv"
_PAST = {"approve": "approved", "reject": "rejected"}
_AWAY = "approval_out_of_office"  # settings key: {user: {"delegate": name, "until": epoch seconds or None}}


class Keep:
    """Leave the value as it is (`reassign(remind_at=KEEP)`)."""


KEEP = Keep()


class ApprovalError(FlowboardError):
    """A task operation was refused; the message says why in plain words."""


class TaskNotFound(ApprovalError, LookupError):
    pass


class AlreadyClosed(ApprovalError):
    """The task was decided (or timed out, or cancelled) before this decision: the first one wins."""


class NotAllowed(ApprovalError):
    """This person may not decide this task (not an assignee, or the requester)."""


class DeadlinePassed(ApprovalError):
    pass


@dataclass(slots=True)
class Task:
    id: str
    flow_id: str
    run_id: str
    node_id: str
    item_index: int
    title: str
    data: Any
    outcomes: list[str]
    assignees: list[str]
    requester: str | None
    due: float | None
    status: str
    decision: str | None
    responder: str | None
    comment: str
    fields: dict[str, Any]
    channel: str | None
    created: float
    updated: float
    decided: float | None
    remind_at: float | None = None  # when its assignees are reminded next (open tasks with reminders)

    @property
    def overdue(self) -> bool:
        return self.status == OPEN and self.due is not None and self.due < time.time()

    def describe(self) -> str:
        """What happened to it, in words: "approved by Ada at 10:42", "timed out at 18:00", "open"."""
        if self.status == DECIDED:
            verb = _PAST.get(self.decision or "", f"answered {self.decision!r}")
            return f"{verb} by {self.responder} {when(self.decided)}"
        if self.status == TIMED_OUT:
            return f"timed out {when(self.decided)}"
        if self.status == CANCELLED:
            return f"cancelled {when(self.decided)}"
        return "open"

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)} | {"overdue": self.overdue}


@dataclass(slots=True)
class LogEntry:
    seq: int
    task_id: str
    event: str
    actor: str
    at: float
    data: str
    prev_hash: str
    hash: str

    def content(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.data)
        return value


@dataclass(slots=True)
class Verification:
    ok: bool
    entries: int
    head: str  # the last entry's hash: keep a copy elsewhere to detect a rewritten history
    problems: list[str] = field(default_factory=list)


def when(at: float | None) -> str:
    """`at 10:42` today, else `on 2026-11-28 at 10:42` (local time, as people read it)."""
    if at is None:
        return ""
    moment = datetime.fromtimestamp(at).astimezone()
    if moment.date() == datetime.now().astimezone().date():
        return f"at {moment:%H:%M}"
    return f"on {moment:%Y-%m-%d} at {moment:%H:%M}"


def entry_hash(prev_hash: str, seq: int, task_id: str, event: str, actor: str, at: float, data: str) -> str:
    """The hash an entry carries: over the previous entry's hash and everything in this one."""
    at_ms = round(at * 1000)
    text = f"{prev_hash}\n{seq}\n{task_id}\n{event}\n{actor}\n{at_ms}\n{data}"
    return hashlib.sha256(text.encode()).hexdigest()


def may_decide(task: Task, responder: str, roles: Iterable[str] | None) -> str | None:
    """Why `responder` may not decide `task`, or None when they may. `roles` None: a trusted caller (an API key
    acting for someone), who still cannot decide their own request."""
    if task.requester and responder.strip().lower() == task.requester.strip().lower():
        return f"{responder} asked for this approval, so someone else must decide it"
    if roles is None or not task.assignees:
        return None
    names = {responder.lower(), f"user:{responder.lower()}"} | {f"role:{r.lower()}" for r in roles}
    if any(a.lower() in names for a in task.assignees):
        return None
    return f"{responder} is not among the people who may decide this task ({', '.join(task.assignees)})"


class ApprovalStore:
    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # -- writing ------------------------------------------------------------------------------------------------------

    def create(self, *, flow_id: str, run_id: str, node_id: str, title: str, assignees: Sequence[str],
               outcomes: Sequence[str] = ("approve", "reject"), data: Any = None, requester: str | None = None,
               due: float | None = None, item_index: int = 0, actor: str = "flowboard",
               task_id: str | None = None, remind_at: float | None = None) -> Task:
        outcomes = [o for o in (str(o).strip() for o in outcomes) if o]
        if not outcomes:
            raise ApprovalError("a task needs at least one outcome, such as approve")
        now = time.time()
        row = {"id": task_id or uuid.uuid4().hex, "flow_id": flow_id, "run_id": run_id, "node_id": node_id,
               "item_index": item_index, "title": title, "data": data, "outcomes": list(outcomes),
               "assignees": [str(a) for a in assignees], "requester": requester, "due": due, "status": OPEN,
               "decision": None, "responder": None, "comment": "", "fields": {}, "channel": None, "created": now,
               "updated": now, "decided": None, "remind_at": remind_at}
        with self._write() as conn:
            conn.execute(approval_tasks_t.insert().values(**row))
            self._append(conn, row["id"], "created", actor, now,
                         {k: row[k] for k in ("flow_id", "run_id", "node_id", "item_index", "title", "outcomes",
                                              "assignees", "requester", "due")})
        return _task(row)

    def decide(self, task_id: str, outcome: str, responder: str, *, comment: str = "",
               fields: dict[str, Any] | None = None, channel: str = "api", roles: Iterable[str] | None = None,
               now: float | None = None) -> Task:
        """Record a decision; the first one wins. Raises TaskNotFound, AlreadyClosed ("already approved by Ada at
        10:42"), DeadlinePassed, NotAllowed, or ApprovalError for an outcome the task does not have."""
        responder = responder.strip()
        if not responder:
            raise NotAllowed("a decision needs the name of who decides")
        now = time.time() if now is None else now
        with self._write() as conn:
            task = self._get(conn, task_id)
            if task.status != OPEN:
                raise AlreadyClosed(f"already {task.describe()}")
            if task.due is not None and now > task.due:
                raise DeadlinePassed(f"the deadline of this task passed {when(task.due)}; it can no longer be "
                                     "decided")
            if outcome not in task.outcomes:
                raise ApprovalError(f"{outcome!r} is not an answer to this task; its answers are "
                                    f"{', '.join(task.outcomes)}")
            refusal = may_decide(task, responder, roles)
            if refusal:
                raise NotAllowed(refusal)
            values = {"status": DECIDED, "decision": outcome, "responder": responder, "comment": comment,
                      "fields": fields or {}, "channel": channel, "decided": now, "updated": now, "remind_at": None}
            done = conn.execute(approval_tasks_t.update()
                                .where(approval_tasks_t.c.id == task_id, approval_tasks_t.c.status == OPEN)
                                .values(**values))
            if done.rowcount != 1:  # pragma: no cover - the write lock makes this impossible; kept as a guard
                raise AlreadyClosed("already decided by someone else a moment ago")
            self._append(conn, task_id, "decided", responder, now,
                         {"outcome": outcome, "comment": comment, "fields": fields or {}, "channel": channel})
            return _replace(task, **values)

    def reassign(self, task_id: str, assignees: Sequence[str], by: str, reason: str = "", *,
                 due: float | None = None, data: Any = None, remind_at: float | Keep | None = KEEP) -> Task:
        """Hand an open task to other people or roles (delegation, escalation), with a new deadline if `due` (and
        its next reminder if `remind_at` is given)."""
        assignees = [str(a).strip() for a in assignees if str(a).strip()]
        if not assignees:
            raise ApprovalError("name at least one person or role to hand the task to")
        now = time.time()
        with self._write() as conn:
            task = self._get(conn, task_id)
            if task.status != OPEN:
                raise AlreadyClosed(f"this task cannot be handed on: it is already {task.describe()}")
            values: dict[str, Any] = {"assignees": assignees, "updated": now}
            content: dict[str, Any] = {"from": task.assignees, "to": assignees, "reason": reason}
            if due is not None:
                values["due"] = content["due"] = due
            if data is not None:
                values["data"] = data
            if not isinstance(remind_at, Keep):
                values["remind_at"] = remind_at
            conn.execute(approval_tasks_t.update().where(approval_tasks_t.c.id == task_id).values(**values))
            self._append(conn, task_id, "reassigned", by or "flowboard", now, content)
            return _replace(task, **values)

    def reminded(self, task_id: str, next_at: float | None, data: Any = None, now: float | None = None
                 ) -> Task | None:
        """Record that an open task's assignees were reminded (a log entry), and when the next reminder is due
        (None: no more). None when the task is no longer open (decided meanwhile: nobody is reminded)."""
        now = time.time() if now is None else now
        with self._write() as conn:
            task = self._get(conn, task_id)
            if task.status != OPEN:
                return None
            values: dict[str, Any] = {"remind_at": next_at, "updated": now}
            if data is not None:
                values["data"] = data
            conn.execute(approval_tasks_t.update().where(approval_tasks_t.c.id == task_id).values(**values))
            self._append(conn, task_id, "reminded", "flowboard", now, {"to": task.assignees, "next": next_at})
            return _replace(task, **values)

    def close(self, task_id: str, status: str, by: str = "flowboard", reason: str = "") -> Task:
        """End an open task without a decision: `timed_out` (its deadline passed) or `cancelled` (its run ended)."""
        if status not in (TIMED_OUT, CANCELLED):
            raise ValueError(f"a task is closed as {TIMED_OUT} or {CANCELLED}, not {status!r}")
        now = time.time()
        with self._write() as conn:
            task = self._get(conn, task_id)
            if task.status != OPEN:
                raise AlreadyClosed(f"already {task.describe()}")
            conn.execute(approval_tasks_t.update().where(approval_tasks_t.c.id == task_id)
                         .values(status=status, decided=now, updated=now, remind_at=None))
            self._append(conn, task_id, status, by, now, {"reason": reason})
            return _replace(task, status=status, decided=now, updated=now, remind_at=None)

    # -- out of office -------------------------------------------------------------------------------------------------

    def out_of_office(self, now: float | None = None) -> dict[str, dict[str, Any]]:
        """Who is away now, and who receives their new tasks: {user: {"delegate", "until"}}."""
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            value = conn.execute(sa.select(settings_t.c.value).where(settings_t.c.key == _AWAY)).scalar()
        away = value if isinstance(value, dict) else {}
        return {user: entry for user, entry in away.items()
                if isinstance(entry, dict) and (entry.get("until") is None or entry["until"] > now)}

    def set_out_of_office(self, user: str, delegate: str | None, until: float | None = None) -> None:
        """`user` is away (until `until`, or until switched off): their new tasks go to `delegate`. None: back."""
        user = _bare(user)
        if delegate is not None and _bare(delegate) == user:
            raise ApprovalError(f"{user} cannot hand their tasks to themselves; name someone else")
        with self._write() as conn:
            value = conn.execute(sa.select(settings_t.c.value).where(settings_t.c.key == _AWAY)).scalar()
            away = dict(value) if isinstance(value, dict) else {}
            if delegate is None:
                away.pop(user, None)
            else:
                away[user] = {"delegate": _bare(delegate), "until": until}
            if conn.execute(settings_t.update().where(settings_t.c.key == _AWAY).values(value=away)).rowcount == 0:
                conn.execute(settings_t.insert().values(key=_AWAY, value=away))

    def delegate_of(self, approver: str, now: float | None = None) -> str:
        """The approver who receives a new task meant for `approver`: their out-of-office delegate (followed through
        a chain of absences, never in a circle), else `approver` itself. Roles are never delegated."""
        if approver.lower().startswith("role:"):
            return approver
        away = self.out_of_office(now)
        seen = {_bare(approver)}
        name = _bare(approver)
        while name in away:
            name = away[name]["delegate"]
            if name in seen:
                return approver  # a circle of absences: keep the original approver
            seen.add(name)
        return approver if name == _bare(approver) else f"user:{name}"

    # -- reading ------------------------------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task:
        with self.engine.connect() as conn:
            return self._get(conn, task_id)

    def list_tasks(self, *, status: str | Iterable[str] | None = None, flow_id: str | None = None,
             run_id: str | None = None, node_id: str | None = None, assignee: str | None = None,
             responder: str | None = None, overdue: bool | None = None, since: float | None = None,
             until: float | None = None, limit: int = 100, offset: int = 0,
             involving: tuple[Sequence[str], str] | None = None) -> list[Task]:
        """Newest first. `assignee` matches a name exactly as listed (`user:ada`, `role:approver`, or `ada`).
        `involving` (names as listed, person): only tasks listing one of the names, or decided or asked by the person
        (what an approver may see)."""
        t = approval_tasks_t
        query = sa.select(t).order_by(t.c.created.desc(), t.c.id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(t.c.status.in_([status] if isinstance(status, str) else list(status)))
        for column, value in ((t.c.flow_id, flow_id), (t.c.run_id, run_id), (t.c.node_id, node_id),
                              (t.c.responder, responder)):
            if value is not None:
                query = query.where(column == value)
        if assignee is not None:
            query = query.where(_listing(assignee))
        if involving is not None:
            names, person = involving
            query = query.where(sa.or_(*(_listing(n) for n in names), t.c.responder == person,
                                       t.c.requester == person))
        now = time.time()
        if overdue is True:
            query = query.where(t.c.status == OPEN, t.c.due.is_not(None), t.c.due < now)
        elif overdue is False:
            query = query.where(sa.or_(t.c.status != OPEN, t.c.due.is_(None), t.c.due >= now))
        if since is not None:
            query = query.where(t.c.created >= since)
        if until is not None:
            query = query.where(t.c.created < until)
        with self.engine.connect() as conn:
            return [_task(row._mapping) for row in conn.execute(query)]

    def next_due(self) -> float | None:
        """The earliest deadline or reminder of an open task (what the deadline timer sleeps until): two indexed
        lookups."""
        t = approval_tasks_t
        with self.engine.connect() as conn:
            due = conn.execute(sa.select(sa.func.min(t.c.due)).where(t.c.status == OPEN, t.c.due.is_not(None))
                               ).scalar()
            remind = conn.execute(sa.select(sa.func.min(t.c.remind_at))
                                  .where(t.c.status == OPEN, t.c.remind_at.is_not(None))).scalar()
        times = [float(v) for v in (due, remind) if v is not None]
        return min(times) if times else None

    def reminders_due(self, now: float | None = None, limit: int = 1000) -> list[Task]:
        """Open tasks whose next reminder has come, earliest first."""
        t = approval_tasks_t
        now = time.time() if now is None else now
        query = (sa.select(t).where(t.c.status == OPEN, t.c.remind_at.is_not(None), t.c.remind_at <= now)
                 .order_by(t.c.remind_at).limit(limit))
        with self.engine.connect() as conn:
            return [_task(row._mapping) for row in conn.execute(query)]

    def log(self, task_id: str | None = None) -> list[LogEntry]:
        query = sa.select(approval_log_t).order_by(approval_log_t.c.seq)
        if task_id is not None:
            query = query.where(approval_log_t.c.task_id == task_id)
        with self.engine.connect() as conn:
            return [LogEntry(**row._mapping) for row in conn.execute(query)]

    def to_csv(self, tasks: Iterable[Task]) -> str:
        """Tasks as CSV (UTF-8, a header row, times in ISO 8601 UTC). A cell that a spreadsheet would run as a formula
        (starting with = + - @) is written with a leading apostrophe."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        columns = ["id", "flow_id", "run_id", "node_id", "item_index", "title", "assignees", "requester", "due",
                   "status", "decision", "responder", "comment", "channel", "created", "decided", "updated"]
        writer.writerow(columns)
        for task in tasks:
            row: list[Any] = []
            for name in columns:
                value = getattr(task, name)
                if name in ("due", "created", "decided", "updated"):
                    value = "" if value is None else datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
                elif name == "assignees":
                    value = "; ".join(value)
                elif value is None:
                    value = ""
                row.append(_cell(value))
            writer.writerow(row)
        return out.getvalue()

    def verify(self) -> Verification:
        """Check the chain entry by entry, then every task row against what the log says happened to it."""
        entries = self.log()
        problems: list[str] = []
        prev = GENESIS
        for expected_seq, entry in enumerate(entries, start=1):
            where = f"entry {entry.seq} ({entry.event} of task {entry.task_id} by {entry.actor} {when(entry.at)})"
            if entry.seq != expected_seq:
                problems.append(f"entry {expected_seq} is missing (the next one is {entry.seq}): entries were "
                                "removed from the log")
                break
            if entry.prev_hash != prev:
                problems.append(f"{where} does not follow the entry before it: an entry before it was changed, "
                                "removed or inserted")
                break
            if entry_hash(prev, entry.seq, entry.task_id, entry.event, entry.actor, entry.at, entry.data) \
                    != entry.hash:
                problems.append(f"{where} was changed after it was written: its content does not match its hash")
                break
            prev = entry.hash
        if not problems:
            problems.extend(self._replay(entries))
        return Verification(ok=not problems, entries=len(entries), head=prev, problems=problems)

    def _replay(self, entries: list[LogEntry]) -> list[str]:
        expected: dict[str, dict[str, Any]] = {}
        for entry in entries:
            content = entry.content()
            if entry.event == "created":
                expected[entry.task_id] = {"status": OPEN, "decision": None, "responder": None, "comment": "",
                                           "assignees": content["assignees"], "requester": content["requester"],
                                           "due": content["due"], "title": content["title"],
                                           "outcomes": content["outcomes"], "seq": entry.seq}
                continue
            state = expected.get(entry.task_id)
            if state is None:
                return [f"entry {entry.seq} is about task {entry.task_id}, which the log never created"]
            state["seq"] = entry.seq
            if entry.event == "decided":
                state.update(status=DECIDED, decision=content["outcome"], responder=entry.actor,
                             comment=content["comment"])
            elif entry.event == "reassigned":
                state["assignees"] = content["to"]
                if "due" in content:
                    state["due"] = content["due"]
            elif entry.event in (TIMED_OUT, CANCELLED):
                state["status"] = entry.event
        problems: list[str] = []
        with self.engine.connect() as conn:
            rows = {row.id: _task(row._mapping) for row in conn.execute(sa.select(approval_tasks_t))}
        for task_id, task in rows.items():
            state = expected.pop(task_id, None)
            if state is None:
                problems.append(f"task {task_id} ({task.title!r}) is not in the log: it was added outside Flowboard")
                continue
            for key in ("status", "decision", "responder", "comment", "assignees", "requester", "due", "title",
                        "outcomes"):
                if getattr(task, key) != state[key]:
                    problems.append(f"task {task_id} ({task.title!r}) was changed outside Flowboard: its {key} is "
                                    f"{getattr(task, key)!r}, but the log (entry {state['seq']}) says {state[key]!r}")
                    break
        for task_id, state in expected.items():
            problems.append(f"task {task_id} ({state['title']!r}) is in the log but was deleted from the tasks")
        return problems

    # -- SQL helpers --------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One transaction holding the approval write lock from its first statement, committed at the end."""
        with write_transaction(self.engine, pg_lock=_LOCK_ID) as conn:
            yield conn

    def _get(self, conn: sa.Connection, task_id: str) -> Task:
        row = conn.execute(sa.select(approval_tasks_t).where(approval_tasks_t.c.id == task_id)).first()
        if row is None:
            raise TaskNotFound(f"there is no approval task {task_id!r}")
        return _task(row._mapping)

    def _append(self, conn: sa.Connection, task_id: str, event: str, actor: str, at: float, content: Any) -> None:
        last = conn.execute(sa.select(approval_log_t.c.seq, approval_log_t.c.hash)
                            .order_by(approval_log_t.c.seq.desc()).limit(1)).first()
        seq, prev = (last.seq + 1, last.hash) if last is not None else (1, GENESIS)
        data = orjson.dumps(content, option=orjson.OPT_SORT_KEYS).decode()
        conn.execute(approval_log_t.insert().values(
            seq=seq, task_id=task_id, event=event, actor=actor, at=at, data=data, prev_hash=prev,
            hash=entry_hash(prev, seq, task_id, event, actor, at, data)))


def _listing(name: str) -> sa.ColumnElement[bool]:
    """The task lists `name` among its assignees (the JSON list's text holds each name quoted)."""
    needle = orjson.dumps(name).decode()
    escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.type_coerce(approval_tasks_t.c.assignees, sa.Text).like(f"%{escaped}%", escape="\\")


def _bare(name: str) -> str:
    """`user:Ada` and `ada` are the same person."""
    name = name.strip()
    return (name[5:] if name.lower().startswith("user:") else name).strip().lower()


def person_key(name: str) -> str:
    """One key per person or role: `user:Ada` and `ada` → `ada`; `role:Manager` → `role:manager`."""
    return name.strip().lower() if name.strip().lower().startswith("role:") else _bare(name)


def _task(row: Any) -> Task:
    values = dict(row)
    values["fields"] = values.get("fields") or {}
    values["comment"] = values.get("comment") or ""
    return Task(**values)


def _replace(task: Task, **changes: Any) -> Task:
    return dataclasses.replace(task, **changes)


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
