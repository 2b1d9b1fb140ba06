"""Approval tasks as records (store/approvals.py) on SQLite and PostgreSQL: create, list with filters, decide (the
first decision wins, also between threads racing on separate connections), hand on, CSV, and the hash-chained
decision log that `verify()` / `flowboard audit verify` checks after tampering in SQL."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flowboard.store import Store
from flowboard.store.approvals import (
    AlreadyClosed,
    ApprovalError,
    ApprovalStore,
    DeadlinePassed,
    NotAllowed,
    Task,
    TaskNotFound,
    when,
)

from .clihelp import flowboard
from .test_store import MakeStore, make_store  # noqa: F401  (the fixture: SQLite and PostgreSQL)


@pytest.fixture
def approvals(make_store: MakeStore) -> ApprovalStore:  # noqa: F811
    return ApprovalStore(make_store().engine)


def new(approvals: ApprovalStore, **over: Any) -> Task:
    values: dict[str, Any] = {"flow_id": "vacation", "run_id": "r1", "node_id": "approve",
                              "title": "Vacation request from Grace", "assignees": ["user:ada", "role:manager"],
                              "requester": "grace", "data": {"days": 3}}
    values.update(over)
    return approvals.create(**values)


def hhmm(at: float | None) -> str:
    assert at is not None
    return datetime.fromtimestamp(at).astimezone().strftime("%H:%M")


# -- create, list, filter -------------------------------------------------------------------------------------------


def test_create_and_list_with_filters(approvals: ApprovalStore) -> None:
    a = new(approvals, title="a")
    b = new(approvals, title="b", flow_id="invoice", run_id="r2", assignees=["role:finance"])
    c = new(approvals, title="c", due=time.time() - 60)  # overdue
    d = new(approvals, title="d", due=time.time() + 3600)
    approvals.decide(a.id, "approve", "ada")

    def titles(**filters: Any) -> list[str]:
        return [t.title for t in approvals.list_tasks(**filters)]

    assert titles() == ["d", "c", "b", "a"]  # newest first
    assert titles(status="open") == ["d", "c", "b"]
    assert titles(status=["decided", "cancelled"]) == ["a"]
    assert titles(flow_id="invoice") == ["b"]
    assert titles(run_id="r1", node_id="approve") == ["d", "c", "a"]
    assert titles(assignee="role:finance") == ["b"]
    assert titles(assignee="role:man") == [], "a name matches whole, never in part"
    assert titles(assignee="user:ada") == ["d", "c", "a"]
    assert titles(responder="ada") == ["a"]
    assert titles(overdue=True) == ["c"]
    assert titles(overdue=False) == ["d", "b", "a"]
    assert titles(since=b.created, until=d.created) == ["c", "b"]
    assert titles(limit=2, offset=1) == ["c", "b"]
    task = approvals.get(b.id)
    assert task.data == {"days": 3} and task.outcomes == ["approve", "reject"] and task.status == "open"
    assert approvals.get(c.id).overdue and not approvals.get(d.id).overdue
    with pytest.raises(TaskNotFound, match="there is no approval task 'nope'"):
        approvals.get("nope")


def test_an_assignee_filter_with_sql_wildcards_matches_only_itself(approvals: ApprovalStore) -> None:
    new(approvals, title="odd", assignees=["user:a_b%c"])
    new(approvals, title="plain", assignees=["user:axbyc"])
    assert [t.title for t in approvals.list_tasks(assignee="user:a_b%c")] == ["odd"]


# -- deciding ----------------------------------------------------------------------------------------------------


def test_first_decision_wins_and_the_second_is_told_who_and_when(approvals: ApprovalStore) -> None:
    task = new(approvals)
    decided = approvals.decide(task.id, "approve", "Ada", comment="enjoy", fields={"days": 2}, channel="inbox")
    assert (decided.status, decided.decision, decided.responder, decided.comment, decided.fields, decided.channel) \
        == ("decided", "approve", "Ada", "enjoy", {"days": 2}, "inbox")
    assert approvals.get(task.id) == decided
    with pytest.raises(AlreadyClosed) as info:
        approvals.decide(task.id, "reject", "Bob", roles=["manager"])
    assert str(info.value) == f"already approved by Ada at {hhmm(decided.decided)}"
    rejected = approvals.decide(new(approvals).id, "reject", "Bob", roles=["manager"])
    assert rejected.describe() == f"rejected by Bob at {hhmm(rejected.decided)}"
    custom = approvals.decide(new(approvals, outcomes=["approve", "ask_hr"]).id, "ask_hr", "ada")
    assert custom.describe().startswith("answered 'ask_hr' by ada at ")


def test_who_may_decide(approvals: ApprovalStore) -> None:
    task = new(approvals)
    with pytest.raises(NotAllowed, match=r"^Grace asked for this approval, so someone else must decide it$"):
        approvals.decide(task.id, "approve", "Grace")  # even a trusted caller (roles None)
    with pytest.raises(NotAllowed, match=r"^bob is not among the people who may decide this task \(user:ada, "
                                         r"role:manager\)$"):
        approvals.decide(task.id, "approve", "bob", roles=["approver"])
    with pytest.raises(ApprovalError, match=r"^'maybe' is not an answer to this task; its answers are approve, "
                                            r"reject$"):
        approvals.decide(task.id, "maybe", "ada", roles=[])
    with pytest.raises(NotAllowed, match=r"^a decision needs the name of who decides$"):
        approvals.decide(task.id, "approve", "  ")
    assert approvals.decide(task.id, "approve", "bob", roles=["Manager"]).responder == "bob"  # by role
    assert approvals.decide(new(approvals).id, "approve", "ada", roles=[]).responder == "ada"  # by name


def test_deadline_and_closing(approvals: ApprovalStore) -> None:
    late = new(approvals, due=time.time() - 1)
    with pytest.raises(DeadlinePassed, match=r"^the deadline of this task passed at .* it can no longer be decided$"):
        approvals.decide(late.id, "approve", "ada")
    closed = approvals.close(late.id, "timed_out", reason="no answer in 3 days")
    with pytest.raises(AlreadyClosed, match=rf"^already timed out at {hhmm(closed.decided)}$"):
        approvals.decide(late.id, "approve", "ada")
    cancelled = approvals.close(new(approvals).id, "cancelled", by="ada", reason="run cancelled")
    assert cancelled.describe() == f"cancelled at {hhmm(cancelled.decided)}"


def test_reassign(approvals: ApprovalStore) -> None:
    task = new(approvals)
    moved = approvals.reassign(task.id, ["user:linus"], by="ada", reason="on holiday")
    assert moved.assignees == ["user:linus"]
    with pytest.raises(NotAllowed):
        approvals.decide(task.id, "approve", "ada", roles=["manager"])
    approvals.decide(task.id, "approve", "linus", roles=[])
    with pytest.raises(AlreadyClosed, match=r"^this task cannot be handed on: it is already approved by linus at "):
        approvals.reassign(task.id, ["user:ada"], by="ada")
    with pytest.raises(ApprovalError, match=r"^name at least one person or role to hand the task to$"):
        approvals.reassign(new(approvals).id, [" "], by="ada")
    entry = approvals.log(task.id)[1]
    assert (entry.event, entry.actor, entry.content()) == (
        "reassigned", "ada", {"from": ["user:ada", "role:manager"], "to": ["user:linus"], "reason": "on holiday"})


@pytest.mark.timeout(60)
def test_concurrent_decisions_on_separate_connections(make_store: MakeStore) -> None:  # noqa: F811
    """Eight people press at the same moment, each through its own connection: exactly one decision is recorded,
    and every other one is told who won."""
    task = new(ApprovalStore(make_store().engine))
    stores = [ApprovalStore(make_store().engine) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    results: list[Any] = [None] * len(stores)

    def press(index: int) -> None:
        barrier.wait()
        try:
            results[index] = stores[index].decide(task.id, "approve" if index % 2 else "reject", f"user{index}")
        except AlreadyClosed as exc:
            results[index] = exc

    threads = [threading.Thread(target=press, args=(i,)) for i in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [r for r in results if isinstance(r, Task)]
    assert len(winners) == 1, results
    [winner] = winners
    verb = "approved" if winner.decision == "approve" else "rejected"
    expected = f"already {verb} by {winner.responder} at {hhmm(winner.decided)}"
    assert [str(r) for r in results if not isinstance(r, Task)] == [expected] * 7
    log = stores[0].log(task.id)
    assert [e.event for e in log] == ["created", "decided"] and log[1].actor == winner.responder
    assert stores[0].verify().ok


# -- CSV ---------------------------------------------------------------------------------------------------------


def test_csv_export(approvals: ApprovalStore) -> None:
    task = new(approvals, title="=HYPERLINK(\"http://evil.example\")", due=1_800_000_000.0,
               assignees=["user:ada", "role:manager"])
    approvals.decide(task.id, "approve", "ada", comment="ok, \"fine\"\nsecond line")
    new(approvals, title="open one")
    rows = list(csv.DictReader(io.StringIO(approvals.to_csv(approvals.list_tasks()))))
    assert [r["title"] for r in rows] == ["open one", "'=HYPERLINK(\"http://evil.example\")"]
    row = rows[1]
    assert row["assignees"] == "user:ada; role:manager"
    assert row["due"] == "2027-01-15T08:00:00+00:00"
    assert (row["status"], row["decision"], row["responder"]) == ("decided", "approve", "ada")
    assert row["comment"] == "ok, \"fine\"\nsecond line"
    assert datetime.fromisoformat(row["decided"]) <= datetime.now(UTC)
    assert rows[0]["decided"] == "" and rows[0]["decision"] == ""


# -- the decision log --------------------------------------------------------------------------------------------


def history(approvals: ApprovalStore) -> list[Task]:
    """Seven log entries: three created, one reassigned, two decided, one timed out."""
    a, b, c = new(approvals, title="a"), new(approvals, title="b"), new(approvals, title="c")
    approvals.reassign(a.id, ["user:linus"], by="ada")
    approvals.decide(a.id, "approve", "linus")
    approvals.decide(b.id, "reject", "ada", comment="not now")
    approvals.close(c.id, "timed_out")
    return [a, b, c]


def test_an_untouched_log_verifies(approvals: ApprovalStore) -> None:
    history(approvals)
    result = approvals.verify()
    assert result.ok and result.problems == [] and result.entries == 7
    assert result.head == approvals.log()[-1].hash
    assert [e.prev_hash for e in approvals.log()[1:]] == [e.hash for e in approvals.log()[:-1]]


TAMPERING: list[tuple[str, Callable[[sa.Connection, list[Task]], None], str]] = [
    ("a log entry's content changed",
     lambda conn, t: conn.execute(sa.text("UPDATE approval_log SET data = replace(data, 'not now', 'ok') "
                                          "WHERE seq = 6")),
     r"^entry 6 \(decided of task \w+ by ada at \d\d:\d\d\) was changed after it was written: its content does "
     r"not match its hash$"),
    ("a log entry's actor changed",
     lambda conn, t: conn.execute(sa.text("UPDATE approval_log SET actor = 'mallory' WHERE seq = 5")),
     r"^entry 5 \(decided of task \w+ by mallory at \d\d:\d\d\) was changed after it was written"),
    ("a log entry removed",
     lambda conn, t: conn.execute(sa.text("DELETE FROM approval_log WHERE seq = 2")),
     r"^entry 2 is missing \(the next one is 3\): entries were removed from the log$"),
    ("an entry rewritten with a fresh hash of its own",
     lambda conn, t: _rewrite_entry(conn, 4),
     r"^entry 5 \(decided of task \w+ by linus at \d\d:\d\d\) does not follow the entry before it"),
    ("a decision changed in the task row",
     lambda conn, t: conn.execute(sa.text("UPDATE approval_tasks SET decision = 'approve' WHERE id = :id"),
                                  {"id": t[1].id}),
     r"^task \w+ \('b'\) was changed outside Flowboard: its decision is 'approve', but the log \(entry 6\) says "
     r"'reject'$"),
    ("a responder changed in the task row",
     lambda conn, t: conn.execute(sa.text("UPDATE approval_tasks SET responder = 'mallory' WHERE id = :id"),
                                  {"id": t[0].id}),
     r"^task \w+ \('a'\) was changed outside Flowboard: its responder is 'mallory', but the log \(entry 5\) says "
     r"'linus'$"),
    ("a task reopened in its row",
     lambda conn, t: conn.execute(sa.text("UPDATE approval_tasks SET status = 'open' WHERE id = :id"),
                                  {"id": t[2].id}),
     r"^task \w+ \('c'\) was changed outside Flowboard: its status is 'open', but the log \(entry 7\) says "
     r"'timed_out'$"),
    ("a task deleted",
     lambda conn, t: conn.execute(sa.text("DELETE FROM approval_tasks WHERE id = :id"), {"id": t[0].id}),
     r"^task \w+ \('a'\) is in the log but was deleted from the tasks$"),
]


def _rewrite_entry(conn: sa.Connection, seq: int) -> None:
    """What a careful forger does: change an entry and give it a correct hash of its own."""
    from flowboard.store.approvals import entry_hash

    row = conn.execute(sa.text("SELECT * FROM approval_log WHERE seq = :s"), {"s": seq}).mappings().one()
    data = row["data"].replace("linus", "mallory")
    digest = entry_hash(row["prev_hash"], seq, row["task_id"], row["event"], row["actor"], row["at"], data)
    conn.execute(sa.text("UPDATE approval_log SET data = :d, hash = :h WHERE seq = :s"),
                 {"d": data, "h": digest, "s": seq})


@pytest.mark.parametrize(("what", "tamper", "expected"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_tampering_in_sql_is_found_and_named(approvals: ApprovalStore, what: str,
                                             tamper: Callable[[sa.Connection, list[Task]], None],
                                             expected: str) -> None:
    tasks = history(approvals)
    with approvals.engine.begin() as conn:
        tamper(conn, tasks)
    result = approvals.verify()
    assert not result.ok
    assert len(result.problems) >= 1
    import re

    assert re.search(expected, result.problems[0]), result.problems


def test_audit_verify_command(tmp_path: Path) -> None:
    store = Store(data_dir=tmp_path)
    approvals = ApprovalStore(store.engine)
    tasks = history(approvals)
    store.close()
    ok = flowboard(tmp_path, "audit", "verify")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("The decision log checks out: 7 entries, every task agrees with it.\n")
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'flowboard.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE approval_tasks SET decision = 'approve' WHERE id = :id"), {"id": tasks[1].id})
    engine.dispose()
    broken = flowboard(tmp_path, "audit", "verify")
    assert broken.returncode == 1
    assert broken.stderr == ("The decision log does NOT check out (7 entries):\n"
                             f"  - task {tasks[1].id} ('b') was changed outside Flowboard: its decision is 'approve', "
                             "but the log (entry 6) says 'reject'\n")
    exported = flowboard(tmp_path, "approvals", "--status", "decided", "--csv")
    assert exported.returncode == 0, exported.stderr
    assert [r["title"] for r in csv.DictReader(io.StringIO(exported.stdout))] == ["b", "a"]


def test_when_reads_like_people_talk() -> None:
    now = time.time()
    assert when(now) == f"at {hhmm(now)}"
    old = datetime(2025, 3, 4, 9, 5).astimezone().timestamp()
    assert when(old) == "on 2025-03-04 at 09:05"
