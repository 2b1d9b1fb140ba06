"""Approvals as a service: who decides an Approval node's item, when it is settled, and what happens at a deadline.

```
 Approval node ──ctx.approvals.ask()──▶ ApprovalService ──▶ ApprovalStore (tasks + hash-chained log)
      ▲                                   │   ▲
      │ resume(run, node, payload)         │   └── decide() from the inbox, a one-time link, the API
      └────────────────────────────────────┘       deadline timer: escalate (hand on) or time out
```

- One request (one item of one Approval node in one run) is a group of tasks, one per approver, all written with the
  request's rule in their data: `any` (the first answer settles it), `all` (everyone must approve; the first other
  answer settles it), `n_of_m` (N approvals settle it; enough other answers that N can no longer be reached settle
  it with the most common of them) or `sequence` (one approver at a time, in order; the next task is made when the
  one before approves).
- When a request settles, its open tasks are cancelled ("settled by another answer"), and when every request of the
  node is settled the run resumes with one decision per item: outcome, who answered, when, comments and fields.
- Deadlines and reminders need no polling: one timer sleeps until the earliest deadline or reminder of an open task
  (indexed columns `due` and `remind_at`) and is woken whenever a task is made or changes, so both survive restarts.
  A reminder tells the task's assignees again through the node's channels (their own links) and is counted in the
  inbox. At a deadline a request escalates once (its open tasks are handed to the escalation people or role, with a
  new deadline and reminders) or times out (outcome `timed_out`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool

from .approval_links import Links
from .store.approvals import (
    CANCELLED,
    DECIDED,
    OPEN,
    TIMED_OUT,
    AlreadyClosed,
    ApprovalError,
    ApprovalStore,
    NotAllowed,
    Task,
    may_decide,
    person_key,
)

log = logging.getLogger(__name__)

RULES = ("any", "all", "n_of_m", "sequence")
Resume = Callable[[str, str, dict[str, Any]], Awaitable[Any]]


def verdict(rule: str, needed: int, approvers: int, answers: Sequence[str | None]) -> str | None:
    """The outcome of a request from its answers so far (None: not settled yet). `answers` holds one entry per task
    made so far, in order: its outcome, `timed_out`, or None while open."""
    given = [a for a in answers if a is not None]
    if "timed_out" in given:
        return "timed_out"
    if rule == "any":
        return given[0] if given else None
    if rule in ("all", "sequence"):
        for answer in given:
            if answer != "approve":
                return answer
        return "approve" if len(given) == approvers else None
    if rule == "n_of_m":
        approvals = given.count("approve")
        if approvals >= needed:
            return "approve"
        others = [a for a in given if a != "approve"]
        if approvers - len(others) < needed:  # too few left who could still approve
            return Counter(others).most_common(1)[0][0]
        return None
    raise ValueError(f"unknown rule {rule!r}; the rules are {', '.join(RULES)}")


class ApprovalService:
    """The approval tasks of running flows: asks, decisions, settling, deadlines. One per process (`Flowboard`)."""

    def __init__(self, store: ApprovalStore, resume: Resume | None = None, links: Links | None = None,
                 run_going: Callable[[str], bool] | None = None):
        self.store = store
        self.resume = resume  # set by the app: Flowboard.resume_waiting
        self.links = links  # signed one-click links to tasks (approval_links.py)
        self.run_going = run_going  # set by the app: is the run still going (not ended, cancelled, deleted)?
        #: set by the app: tell the approvers of tasks made after their node ran (a sequence's next, an escalation)
        #: (the second argument True: a reminder of open tasks)
        self.notifier: Callable[[list[Task], bool], Awaitable[None]] | None = None
        #: set by the app: why these people or roles cannot be handed a task (unknown names), or None
        self.unknown: Callable[[Sequence[str]], str | None] | None = None
        #: set by the app: the people one assignee stands for, each (their recipient name, their email or None): a
        #: user is themselves, `role:x` everyone holding it; None (no accounts): every assignee stands for itself
        self.people: Callable[[str], list[tuple[str, str | None]]] | None = None
        self._resuming: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    # -- asking (the Approval node, through ctx.approvals) ------------------------------------------------------------

    async def ask(self, *, flow_id: str, run_id: str, node_id: str, item_index: int, title: str, data: Any,
                  approvers: Sequence[str], rule: str = "any", needed: int = 1, outcomes: Sequence[str] = (
                      "approve", "reject"), requester: str | None = None, due: float | None = None,
                  escalate_to: Sequence[str] = (), escalate_after: float | None = None,
                  remind_before: float | None = None, remind_every: float | None = None) -> list[Task]:
        """Make the tasks of one request (one item); `sequence` makes only the first. Returns the tasks made.
        `remind_before` (seconds before the deadline) and `remind_every` (seconds, while open) remind the assignees
        of an open task (`reminder_due`)."""
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; the rules are {', '.join(RULES)}")
        approvers = [a for a in approvers if a]
        if not approvers:
            raise ValueError("nobody to ask: the approvers are empty")
        made = await run_in_threadpool(self.store.list_tasks, run_id=run_id, node_id=node_id, limit=10_000)
        made = [t for t in made if t.item_index == item_index]
        if made:  # asked before this crash or restart: the same tasks, nobody asked twice
            return sorted(made, key=lambda t: (t.created, t.id))
        delegated = await run_in_threadpool(lambda: [self.store.delegate_of(a) for a in approvers])
        unique: dict[str, str] = {}
        for name in delegated:  # someone away: their delegate gets the task, once (`ada` and `user:ada` are one)
            unique.setdefault(person_key(name), name)
        approvers = list(unique.values())
        if rule == "n_of_m":
            needed = min(needed, len(approvers))
        meta = {"rule": rule, "needed": needed, "approvers": list(approvers), "position": 0,
                "escalate_to": list(escalate_to), "escalate_after": escalate_after, "escalated": False,
                "remind_before": remind_before, "remind_every": remind_every}
        firsts = approvers[:1] if rule == "sequence" else approvers
        tasks = []
        now = time.time()
        for position, approver in enumerate(firsts):
            tasks.append(await run_in_threadpool(
                self.store.create, flow_id=flow_id, run_id=run_id, node_id=node_id, item_index=item_index,
                title=title, data={"show": data, "request": meta | {"position": position}}, assignees=[approver],
                outcomes=outcomes, requester=requester, due=due, remind_at=reminder_due(meta, due, now)))
        self._wake.set()
        return tasks

    def link(self, task_id: str, recipient: str, expires: float | None = None, outcome: str | None = None) -> str:
        """The recipient's own signed one-click link to a task (approval_links.py)."""
        if self.links is None:
            raise ValueError("this Flowboard makes no approval links")
        return self.links.url(task_id, recipient, expires, outcome)

    async def reach(self, assignees: Sequence[str]) -> dict[str, list[tuple[str, str | None]]]:
        """Who each assignee stands for, with their email addresses (see `people`)."""
        people = self.people
        if people is None:
            return {a: [(a, None)] for a in assignees}
        return await run_in_threadpool(lambda: {a: people(a) for a in dict.fromkeys(assignees)})

    def answers_for(self, task: Task, recipient: str) -> bool:
        """May a link sent to `recipient` answer `task`: the task is theirs, or it is a role's they hold now (a
        link mailed to each holder of the role; someone who lost the role, or whose task was handed on, may not)."""
        mine = person_key(recipient)
        for assignee in task.assignees:
            if person_key(assignee) == mine:
                return True
            if assignee.strip().lower().startswith("role:") and self.people is not None and any(
                    person_key(name) == mine for name, _email in self.people(assignee)):
                return True
        return False

    # -- deciding -------------------------------------------------------------------------------------------------

    async def decide(self, task_id: str, outcome: str, responder: str, *, comment: str = "",
                     fields: dict[str, Any] | None = None, channel: str = "inbox",
                     roles: Iterable[str] | None = None) -> Task:
        """Record a decision (the store's rules: first wins, not one's own request, before the deadline), then settle
        its request and resume the run when the whole node is settled. A task whose run has ended (cancelled,
        deleted) is closed instead, and the decision refused: it could change nothing."""
        if self.run_going is not None:
            current = await run_in_threadpool(self.store.get, task_id)
            if current.status == OPEN and not await run_in_threadpool(self.run_going, current.run_id):
                await run_in_threadpool(self.store.close, task_id, CANCELLED, "flowboard", "its run has ended")
                raise AlreadyClosed("this request's run has ended (it was cancelled, deleted or failed), so there is "
                                    "nothing left to decide")
        task = await run_in_threadpool(lambda: self.store.decide(task_id, outcome, responder, comment=comment,
                                                                 fields=fields, channel=channel, roles=roles))
        await self.settle(task.run_id, task.node_id)
        self._wake.set()
        return task

    async def hand_on(self, task_id: str, to: Sequence[str], by: str, reason: str = "", *,
                      roles: Iterable[str] | None = None) -> Task:
        """Delegation: `by`, who may decide the open task, hands it to other people or roles (`roles` None: a
        trusted caller, such as an admin). The new assignees are told the way the node says, with their own links;
        links sent before stop working for whoever no longer holds the task."""
        task = await run_in_threadpool(self.store.get, task_id)
        refusal = may_decide(task, by, roles) if roles is not None else None
        if refusal:
            raise NotAllowed(refusal.replace("decide this task", "hand this task on"))
        if any(person_key(name) == person_key(by) for name in to) and len(to) == 1:
            raise ApprovalError(f"{by} cannot hand the task to themselves; name someone else")
        problem = self.unknown(to) if self.unknown is not None else None
        if problem:
            raise ApprovalError(problem)
        handed = await run_in_threadpool(self.store.reassign, task_id, list(to), by, reason)
        self._wake.set()
        await self._notify([handed])
        return handed

    async def settle(self, run_id: str, node_id: str) -> dict[int, str | None]:
        """Work out each request of a node: make the next task of a sequence, cancel what a verdict made moot, and
        resume the run when every request has its verdict. Returns the verdicts by item index."""
        tasks = await run_in_threadpool(lambda: self.store.list_tasks(run_id=run_id, node_id=node_id, limit=10_000))
        by_item: dict[int, list[Task]] = {}
        for task in sorted(tasks, key=lambda t: (t.created, t.id)):
            by_item.setdefault(task.item_index, []).append(task)
        verdicts: dict[int, str | None] = {}
        for index, group in by_item.items():
            meta = _meta(group[0])
            answers = [_answer(t) for t in group if t.status != CANCELLED or t.decision is not None]
            outcome = verdict(meta["rule"], int(meta.get("needed") or 1), len(meta["approvers"]), answers)
            if outcome is None and meta["rule"] == "sequence" and group[-1].status == DECIDED:
                await self._next_in_sequence(group, meta)
            elif outcome is not None:
                for task in group:
                    if task.status == OPEN:
                        await run_in_threadpool(self.store.close, task.id, CANCELLED, "flowboard",
                                                f"settled by another answer: {outcome}")
            verdicts[index] = outcome
        if by_item and all(v is not None for v in verdicts.values()) and self.resume is not None:
            payload = {"decisions": {str(i): _decision(v, by_item[i]) for i, v in verdicts.items()}}
            try:
                await self.resume(run_id, node_id, payload)
            except Exception as exc:
                if "is not waiting at node" not in str(exc):  # resumed already, or the run is gone: the log stands
                    log.warning("run %s was not resumed after its approval at %s: %s", run_id, node_id, exc)
                else:  # decided before the node's wait was recorded (a fast API call): try again in the background
                    retry = asyncio.get_running_loop().create_task(self._resume_later(run_id, node_id, payload))
                    self._resuming.add(retry)
                    retry.add_done_callback(self._resuming.discard)
        return verdicts

    async def _resume_later(self, run_id: str, node_id: str, payload: dict[str, Any]) -> None:
        assert self.resume is not None
        for attempt in range(30):  # up to ~15 s: the node records its wait right after making the tasks
            await asyncio.sleep(0.05 * min(attempt + 1, 10))
            try:
                await self.resume(run_id, node_id, payload)
                return
            except Exception as exc:
                if "is not waiting at node" not in str(exc):
                    log.warning("run %s was not resumed after its approval at %s: %s", run_id, node_id, exc)
                    return
        log.error("run %s never parked at %s, so its approval could not resume it", run_id, node_id)

    async def _next_in_sequence(self, group: list[Task], meta: dict[str, Any]) -> None:
        position = len(group)
        if position >= len(meta["approvers"]):
            return
        first = group[0]
        due = first.due
        if due is not None:  # each approver in turn gets as long as the first one had
            due = time.time() + (first.due - first.created)  # type: ignore[operator]
        made = await run_in_threadpool(lambda: self.store.create(
            flow_id=first.flow_id, run_id=first.run_id, node_id=first.node_id, item_index=first.item_index,
            title=first.title, data={"show": (first.data or {}).get("show"), "request": meta | {"position": position}},
            assignees=[meta["approvers"][position]], outcomes=first.outcomes, requester=first.requester, due=due,
            remind_at=reminder_due(meta, due, time.time())))
        self._wake.set()
        await self._notify([made])

    async def _notify(self, tasks: list[Task], reminder: bool = False) -> None:
        """Tell approvers of new or handed-on tasks (or remind them of open ones); a failure is logged, never in the
        way of deciding."""
        if self.notifier is None or not tasks:
            return
        try:
            await self.notifier(tasks, reminder)
        except Exception as exc:
            log.warning("approvers of %s could not be %s: %s", ", ".join(t.id for t in tasks),
                        "reminded" if reminder else "told", exc)

    # -- deadlines ---------------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """A task was made or changed elsewhere (handed on through the API): look at the deadlines again."""
        self._wake.set()

    def start(self) -> None:
        """Start the deadline timer (the app calls it once the event loop runs)."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._deadlines(), name="approval deadlines")

    async def stop(self) -> None:
        for retry in list(self._resuming):
            retry.cancel()
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None

    async def _deadlines(self) -> None:
        while True:
            self._wake.clear()
            try:
                wait = await self.expire()
            except Exception:
                log.exception("approval deadlines could not be checked; trying again in a minute")
                wait = 60.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def expire(self, now: float | None = None) -> float | None:
        """Remind the assignees of open tasks whose reminder has come, then escalate or time out every open task past
        its deadline; returns seconds until the next reminder or deadline."""
        now = time.time() if now is None else now
        for task in await run_in_threadpool(self.store.reminders_due, now):
            await self._remind(task, now)
        late = await run_in_threadpool(lambda: self.store.list_tasks(status=OPEN, overdue=True, limit=1000))
        touched: set[tuple[str, str]] = set()
        for task in late:
            meta = _meta(task)
            if meta.get("escalate_to") and not meta.get("escalated"):
                after = float(meta.get("escalate_after") or 24 * 3600)
                handed = await run_in_threadpool(functools.partial(
                    self.store.reassign, task.id, meta["escalate_to"], "flowboard", "the deadline passed: escalated",
                    due=now + after, data={**(task.data or {}), "request": meta | {"escalated": True}},
                    remind_at=reminder_due(meta, now + after, now)))
                await self._notify([handed])
            else:
                await run_in_threadpool(self.store.close, task.id, TIMED_OUT, "flowboard", "the deadline passed")
                touched.add((task.run_id, task.node_id))
        for run_id, node_id in touched:
            await self.settle(run_id, node_id)
        upcoming = await run_in_threadpool(lambda: self.store.next_due())
        return None if upcoming is None else max(0.0, upcoming - time.time())


    async def _remind(self, task: Task, now: float) -> None:
        """Remind one open task's assignees through its node's channels (and in the inbox, which shows the count),
        and set its next reminder. Recorded before they are told, so a crash never reminds twice."""
        meta = _meta(task)
        reminded = [*(meta.get("reminded") or []), now]
        data = {**(task.data or {}), "request": meta | {"reminded": reminded}}
        done = await run_in_threadpool(self.store.reminded, task.id, reminder_due(meta, task.due, now), data, now)
        if done is not None:
            await self._notify([done], reminder=True)


def reminder_due(meta: dict[str, Any], due: float | None, after: float) -> float | None:
    """When the assignees of a task are reminded next, after `after` (when it was made or last reminded): `remind_every`
    seconds later, or `remind_before` seconds before the deadline, whichever comes first; never at or after the
    deadline. None: no reminder to come."""
    times = []
    every, before = meta.get("remind_every"), meta.get("remind_before")
    if every:
        times.append(after + float(every))
    if before and due is not None and due - float(before) > after:
        times.append(due - float(before))
    times = [t for t in times if due is None or t < due]
    return min(times) if times else None


def _meta(task: Task) -> dict[str, Any]:
    request = (task.data or {}).get("request") if isinstance(task.data, dict) else None
    return request if isinstance(request, dict) else {"rule": "any", "needed": 1, "approvers": task.assignees}


def _answer(task: Task) -> str | None:
    if task.status == DECIDED:
        return task.decision
    if task.status == TIMED_OUT:
        return "timed_out"
    return None


def _decision(outcome: str | None, group: list[Task]) -> dict[str, Any]:
    answered = [t for t in group if t.status == DECIDED]
    return {"outcome": outcome,
            "decided_by": [t.responder for t in answered],
            "responses": [{"by": t.responder, "outcome": t.decision, "comment": t.comment, "fields": t.fields,
                           "at": t.decided, "channel": t.channel, "task_id": t.id} for t in answered],
            "comment": answered[-1].comment if answered else "",
            "fields": {k: v for t in answered for k, v in (t.fields or {}).items()},
            "at": max((t.decided or 0 for t in group), default=None)}
