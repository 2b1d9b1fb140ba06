"""ApprovalService (flowboard/approvals.py) on a real store: rules any / all / N of M / sequence, settling several
items, cancelling moot tasks, and deadlines (time out, escalate once) with the event-driven timer. The run's resume is
the service's injection point: here it records what the engine would be handed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from flowboard.approvals import ApprovalService, verdict
from flowboard.store import Store
from flowboard.store.approvals import AlreadyClosed, ApprovalError, ApprovalStore, NotAllowed


@pytest.mark.parametrize(("rule", "needed", "approvers", "answers", "expected"), [
    ("any", 1, 3, [None, None, None], None),
    ("any", 1, 3, [None, "reject", None], "reject"),
    ("any", 1, 2, ["approve", None], "approve"),
    ("all", 1, 3, ["approve", "approve", None], None),
    ("all", 1, 3, ["approve", "approve", "approve"], "approve"),
    ("all", 1, 3, ["approve", "reject", None], "reject"),
    ("all", 1, 2, ["ask_hr", None], "ask_hr"),
    ("n_of_m", 2, 3, ["approve", None, None], None),
    ("n_of_m", 2, 3, ["approve", "reject", None], None),
    ("n_of_m", 2, 3, ["approve", "reject", "approve"], "approve"),
    ("n_of_m", 2, 3, ["reject", None, "reject"], "reject"),
    ("n_of_m", 3, 4, ["reject", "reject", None, None], "reject"),
    ("n_of_m", 1, 3, [None, "approve", None], "approve"),
    ("sequence", 1, 3, ["approve"], None),
    ("sequence", 1, 3, ["approve", "approve", "approve"], "approve"),
    ("sequence", 1, 3, ["approve", "reject"], "reject"),
    ("any", 1, 2, ["timed_out", None], "timed_out"),
    ("n_of_m", 2, 3, ["approve", "timed_out", None], "timed_out"),
])
def test_verdicts(rule: str, needed: int, approvers: int, answers: list[str | None], expected: str | None) -> None:
    assert verdict(rule, needed, approvers, answers) == expected


class Runs:
    """What the engine would be handed: each resume call, in order."""

    def __init__(self) -> None:
        self.resumed: list[tuple[str, str, dict[str, Any]]] = []
        self.event = asyncio.Event()

    async def resume(self, run_id: str, node_id: str, payload: dict[str, Any]) -> None:
        self.resumed.append((run_id, node_id, payload))
        self.event.set()


@pytest.fixture
async def service(tmp_path: Path) -> Any:
    store = Store(data_dir=tmp_path)
    runs = Runs()
    svc = ApprovalService(ApprovalStore(store.engine), runs.resume)
    yield svc, runs
    await svc.stop()
    store.close()


async def ask(svc: ApprovalService, approvers: list[str], rule: str = "any", item_index: int = 0,
              **over: Any) -> list[Any]:
    values: dict[str, Any] = {"flow_id": "vacation", "run_id": "r1", "node_id": "approve", "item_index": item_index,
                              "title": f"Grace, item {item_index}", "data": {"days": 3}, "approvers": approvers,
                              "rule": rule, "requester": "grace"}
    values.update(over)
    return await svc.ask(**values)


async def test_any_one_answer_settles_and_cancels_the_rest(service: Any) -> None:
    svc, runs = service
    tasks = await ask(svc, ["user:ada", "user:bob", "role:manager"])
    assert len(tasks) == 3
    await svc.decide(tasks[1].id, "reject", "bob", comment="too busy", roles=[])
    [(run_id, node_id, payload)] = runs.resumed
    assert (run_id, node_id) == ("r1", "approve")
    decision = payload["decisions"]["0"]
    assert decision["outcome"] == "reject" and decision["decided_by"] == ["bob"] and decision["comment"] == "too busy"
    states = {t.assignees[0]: t.status for t in svc.store.list_tasks()}
    assert states == {"user:ada": "cancelled", "user:bob": "decided", "role:manager": "cancelled"}
    with pytest.raises(AlreadyClosed, match=r"^already cancelled at "):
        await svc.decide(tasks[0].id, "approve", "ada", roles=[])
    assert svc.store.verify().ok


async def test_all_must_approve(service: Any) -> None:
    svc, runs = service
    tasks = await ask(svc, ["user:ada", "user:bob"], rule="all")
    await svc.decide(tasks[0].id, "approve", "ada", roles=[])
    assert runs.resumed == []
    await svc.decide(tasks[1].id, "approve", "bob", fields={"days": 2}, roles=[])
    decision = runs.resumed[0][2]["decisions"]["0"]
    assert decision["outcome"] == "approve" and decision["decided_by"] == ["ada", "bob"]
    assert decision["fields"] == {"days": 2}


async def test_two_of_three(service: Any) -> None:
    svc, runs = service
    tasks = await ask(svc, ["user:ada", "user:bob", "user:carol"], rule="n_of_m", needed=2)
    await svc.decide(tasks[0].id, "approve", "ada", roles=[])
    await svc.decide(tasks[1].id, "reject", "bob", roles=[])
    assert runs.resumed == []
    await svc.decide(tasks[2].id, "approve", "carol", roles=[])
    assert runs.resumed[0][2]["decisions"]["0"]["outcome"] == "approve"


async def test_a_sequence_asks_one_after_the_other(service: Any) -> None:
    svc, runs = service
    [first] = await ask(svc, ["user:ada", "user:bob"], rule="sequence")
    assert [t.assignees for t in svc.store.list_tasks()] == [["user:ada"]]
    await svc.decide(first.id, "approve", "ada", roles=[])
    assert runs.resumed == []
    second = svc.store.list_tasks(status="open")
    assert [t.assignees for t in second] == [["user:bob"]]
    with pytest.raises(NotAllowed):
        await svc.decide(second[0].id, "approve", "ada", roles=[])
    await svc.decide(second[0].id, "approve", "bob", roles=[])
    assert runs.resumed[0][2]["decisions"]["0"]["decided_by"] == ["ada", "bob"]


async def test_the_run_resumes_once_every_item_is_settled(service: Any) -> None:
    svc, runs = service
    [a] = await ask(svc, ["user:ada"], item_index=0)
    [b] = await ask(svc, ["user:ada"], item_index=1)
    await svc.decide(a.id, "approve", "ada", roles=[])
    assert runs.resumed == []
    await svc.decide(b.id, "reject", "ada", roles=[])
    [(_, _, payload)] = runs.resumed
    assert {k: v["outcome"] for k, v in payload["decisions"].items()} == {"0": "approve", "1": "reject"}


async def test_a_deadline_times_out_or_escalates_once(service: Any) -> None:
    svc, runs = service
    [late] = await ask(svc, ["user:ada"], due=time.time() - 1)
    await svc.expire()
    assert runs.resumed[0][2]["decisions"]["0"]["outcome"] == "timed_out"
    assert svc.store.get(late.id).status == "timed_out"

    [task] = await ask(svc, ["user:ada"], run_id="r2", due=time.time() - 1, escalate_to=["role:director"],
                       escalate_after=3600)
    await svc.expire()
    escalated = svc.store.get(task.id)
    assert escalated.status == "open" and escalated.assignees == ["role:director"]
    assert escalated.due is not None and escalated.due > time.time() + 3000
    assert len(runs.resumed) == 1
    await svc.decide(task.id, "approve", "dora", roles=["director"])
    assert runs.resumed[1][2]["decisions"]["0"]["outcome"] == "approve"
    assert svc.store.verify().ok, svc.store.verify().problems


async def test_the_timer_wakes_at_the_earliest_deadline(service: Any) -> None:
    svc, runs = service
    svc.start()
    await asyncio.sleep(0)
    await ask(svc, ["user:ada"], due=time.time() + 0.3)
    await asyncio.wait_for(runs.event.wait(), timeout=10)
    assert runs.resumed[0][2]["decisions"]["0"]["outcome"] == "timed_out"


async def test_asking_again_for_the_same_item_asks_nobody_twice(service: Any) -> None:
    svc, _runs = service
    first = await ask(svc, ["user:ada", "user:bob"])
    again = await ask(svc, ["user:ada", "user:bob"])  # the node ran again after a crash, before its wait was recorded
    assert [t.id for t in again] == [t.id for t in first]
    assert len(svc.store.list_tasks()) == 2
    other = await ask(svc, ["user:ada"], item_index=1)
    assert len(other) == 1 and len(svc.store.list_tasks()) == 3


async def test_an_approver_away_has_new_tasks_go_to_their_delegate(service: Any) -> None:
    svc, runs = service
    store = svc.store
    store.set_out_of_office("user:Ada", "bob")
    store.set_out_of_office("carol", "dora", until=time.time() - 1)  # back already
    assert store.delegate_of("ada") == "user:bob" and store.delegate_of("user:carol") == "user:carol"
    assert store.delegate_of("role:manager") == "role:manager"
    tasks = await ask(svc, ["user:ada", "carol"], rule="all")
    assert sorted(t.assignees[0] for t in tasks) == ["carol", "user:bob"]
    store.set_out_of_office("bob", "ada")  # a circle of absences: nobody's task is lost
    assert store.delegate_of("ada") == "ada"
    store.set_out_of_office("ada", None)  # ada is back
    assert store.delegate_of("ada") == "ada" and list(store.out_of_office()) == ["bob"]
    with pytest.raises(ApprovalError, match=r"^eve cannot hand their tasks to themselves; name someone else$"):
        store.set_out_of_office("eve", "user:Eve")
    merged = await ask(svc, ["user:bob", "ada"], rule="n_of_m", needed=2, run_id="r9")
    assert [t.assignees for t in merged] == [["user:ada"]], "bob's delegate is ada, who is asked once"
    assert runs.resumed == []


async def test_a_decision_before_the_wait_is_recorded_resumes_the_run_once_it_is(service: Any) -> None:
    svc, runs = service
    refusals = [RuntimeError("run r1 is not waiting at node 'approve'")] * 2
    recorded = runs.resume

    async def resume(run_id: str, node_id: str, payload: dict[str, Any]) -> None:
        if refusals:
            raise refusals.pop()
        await recorded(run_id, node_id, payload)

    svc.resume = resume
    [task] = await ask(svc, ["user:ada"])
    await svc.decide(task.id, "approve", "ada", roles=[])  # returns at once; the resume is tried again meanwhile
    await asyncio.wait_for(runs.event.wait(), timeout=10)
    assert refusals == [] and runs.resumed[0][2]["decisions"]["0"]["outcome"] == "approve"


@pytest.mark.parametrize(("every", "before", "due", "after", "expected"), [
    (None, None, 100.0, 0.0, None),  # no reminders
    (10.0, None, None, 0.0, 10.0),  # every 10 s, no deadline
    (10.0, None, 100.0, 95.0, None),  # the next would come at the deadline: none
    (None, 30.0, 100.0, 0.0, 70.0),  # 30 s before the deadline
    (None, 30.0, 100.0, 70.0, None),  # sent already
    (None, 30.0, None, 0.0, None),  # before a deadline there is not
    (50.0, 30.0, 100.0, 0.0, 50.0),  # whichever comes first
    (50.0, 30.0, 100.0, 50.0, 70.0),
    (50.0, 30.0, 100.0, 70.0, None),  # every: 120 is past the deadline
])
def test_when_the_next_reminder_comes(every: float | None, before: float | None, due: float | None, after: float,
                                      expected: float | None) -> None:
    from flowboard.approvals import reminder_due

    assert reminder_due({"remind_every": every, "remind_before": before}, due, after) == expected


async def test_reminders_tell_the_open_assignees_again_until_they_answer(service: Any) -> None:
    """The timer wakes for a reminder (no polling), tells only the task still open, records it in the log and on the
    task (the inbox counts it), and stops once the task is decided."""
    svc, _runs = service
    told: list[tuple[list[str], bool]] = []

    async def notifier(tasks: list[Any], reminder: bool) -> None:
        told.extend((t.assignees, reminder) for t in tasks)

    svc.notifier = notifier
    svc.start()
    ada, bob = await ask(svc, ["user:ada", "user:bob"], rule="all", remind_every=0.2, due=time.time() + 3600)
    assert ada.remind_at is not None and ada.remind_at <= time.time() + 0.2
    await svc.decide(bob.id, "approve", "bob", roles=[])
    for _ in range(1500):  # up to 30 s on a loaded machine
        if len(told) >= 2:
            break
        await asyncio.sleep(0.02)
    assert told[:2] == [(["user:ada"], True)] * 2, "only ada, who has not answered, is reminded, again and again"
    task = svc.store.get(ada.id)
    assert len(task.data["request"]["reminded"]) >= 2 and task.remind_at is not None
    assert svc.store.get(bob.id).remind_at is None
    assert [e.event for e in svc.store.log(ada.id)][:3] == ["created", "reminded", "reminded"]
    await svc.decide(ada.id, "approve", "ada", roles=[])
    count = len(told)
    await asyncio.sleep(0.5)
    assert len(told) == count and svc.store.get(ada.id).remind_at is None
    assert svc.store.verify().ok, svc.store.verify().problems


async def test_a_reminder_survives_a_restart(tmp_path: Path) -> None:
    """The next reminder is a column of the task: a new service on the same database reminds at that time."""
    store = Store(data_dir=tmp_path)
    first = ApprovalService(ApprovalStore(store.engine), Runs().resume)
    [task] = await ask(first, ["user:ada"], remind_before=3599.7, due=time.time() + 3600)
    await first.stop()
    second = ApprovalService(ApprovalStore(store.engine), Runs().resume)
    told = asyncio.Event()

    async def notifier(tasks: list[Any], reminder: bool) -> None:
        assert reminder and [t.id for t in tasks] == [task.id]
        told.set()

    second.notifier = notifier
    second.start()
    try:
        await asyncio.wait_for(told.wait(), timeout=10)
        assert second.store.get(task.id).remind_at is None, "one reminder before the deadline, then no more"
    finally:
        await second.stop()
        store.close()


async def test_an_escalation_and_the_next_in_a_sequence_get_reminders_of_their_own(service: Any) -> None:
    svc, _runs = service
    [task] = await ask(svc, ["user:ada"], due=time.time() - 1, escalate_to=["role:director"], escalate_after=3600,
                       remind_before=600)
    await svc.expire()
    escalated = svc.store.get(task.id)
    assert escalated.assignees == ["role:director"] and escalated.due is not None
    assert escalated.remind_at == pytest.approx(escalated.due - 600)
    first, = await ask(svc, ["user:ada", "user:bob"], rule="sequence", run_id="r3", remind_every=60)
    await svc.decide(first.id, "approve", "ada", roles=[])
    [second] = svc.store.list_tasks(run_id="r3", status="open")
    assert second.assignees == ["user:bob"] and second.remind_at == pytest.approx(time.time() + 60, abs=5)


async def test_an_approver_hands_a_task_on(service: Any) -> None:
    svc, runs = service
    told: list[list[str]] = []

    async def notifier(tasks: list[Any], reminder: bool) -> None:
        told.extend(t.assignees for t in tasks)

    svc.notifier = notifier
    [task] = await ask(svc, ["user:ada"])
    with pytest.raises(NotAllowed, match=r"^bob is not among the people who may hand this task on"):
        await svc.hand_on(task.id, ["bob"], "bob", roles=[])
    with pytest.raises(ApprovalError, match="cannot hand the task to themselves"):
        await svc.hand_on(task.id, ["user:ada"], "ada", roles=[])
    handed = await svc.hand_on(task.id, ["bob"], "ada", "on leave tomorrow", roles=[])
    assert handed.assignees == ["bob"] and told == [["bob"]]
    with pytest.raises(NotAllowed):
        await svc.decide(task.id, "approve", "ada", roles=[])
    await svc.decide(task.id, "approve", "bob", roles=[])
    assert runs.resumed[0][2]["decisions"]["0"]["decided_by"] == ["bob"]
    assert [e.event for e in svc.store.log(task.id)] == ["created", "reassigned", "decided"]
