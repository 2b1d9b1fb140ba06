"""The inbox (`/inbox`): the approval tasks the signed-in person may decide, with the data to decide on, the answer
buttons, the comment and the approver's questions; and the history of what they decided. Works on a phone-sized
screen (one column of cards).

A task is theirs when it names them (`ada`, `user:ada`) or one of their roles (`role:approver`). Deciding goes
through the ApprovalService, like the one-click links and the API, so its rules hold here too: the first answer
wins (a second gets "already approved by Ada at 10:42"), nobody decides their own request, and a passed deadline
refuses.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from ..auth import Principal
from ..services import Flowboard
from ..store.approvals import DECIDED, OPEN, ApprovalError, Task
from .access import page_principal
from .layout import ago, frame

FILTERS = {"open": "To decide", "overdue": "Overdue", "decided": "Decided by me"}
WORDS = {"approve": "Approve", "reject": "Reject"}


def names_of(principal: Principal) -> list[str]:
    """The assignee entries that mean this person: their name, `user:name`, and `role:<each role>`."""
    return [principal.name, f"user:{principal.name}", *(f"role:{r.value}" for r in principal.roles)]


def tasks_for(fb: Flowboard, principal: Principal, which: str = "open", limit: int = 200) -> list[Task]:
    store = fb.approvals.store
    if which == "decided":
        return store.list_tasks(responder=principal.name, status=DECIDED, limit=limit)
    found: dict[str, Task] = {}
    for name in names_of(principal):
        for task in store.list_tasks(status=OPEN, assignee=name, overdue=True if which == "overdue" else None,
                                     limit=limit):
            found[task.id] = task
    return sorted(found.values(), key=lambda t: (t.due is None, t.due or 0, t.created))


def open_count(fb: Flowboard, principal: Principal) -> int:
    return len(tasks_for(fb, principal, "open"))


class InboxPage:
    def __init__(self, fb: Flowboard, which: str = "open"):
        self.fb = fb
        self.principal = page_principal()
        self.which = which if which in FILTERS else "open"
        frame("inbox")
        with ui.column().classes("fb-page gap-3").style("max-width: 760px"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label("Inbox").classes("fb-h1")
                ui.space()
                ui.toggle(FILTERS, value=self.which, on_change=lambda e: self.show(e.value)).props(
                    "no-caps dense").mark("inbox-filter")
            self.list = ui.column().classes("w-full gap-3")
        self.show(self.which)

    def show(self, which: str) -> None:
        self.which = which
        self.list.clear()
        if self.principal is None:
            return
        tasks = tasks_for(self.fb, self.principal, which)
        with self.list:
            if not tasks:
                empty = {"open": "Nothing to decide right now.", "overdue": "Nothing is overdue.",
                         "decided": "You have not decided anything yet."}[which]
                ui.label(empty).classes("fb-muted").mark("inbox-empty")
            for task in tasks:
                self.card(task)

    def card(self, task: Task) -> None:
        data: dict[str, Any] = task.data.get("show") if isinstance(task.data, dict) else {}  # type: ignore[assignment]
        data = data if isinstance(data, dict) else {}
        with ui.card().classes("w-full gap-2").mark(f"task:{task.id}"):
            with ui.row().classes("w-full items-center gap-2"):
                ui.label(task.title).classes("text-base font-semibold")
                ui.space()
                if task.overdue:
                    ui.label("Overdue").classes("fb-chip fb-chip-failed")
                elif task.due and task.status == OPEN:
                    ui.label(f"Answer by {_when(task.due)}").classes("fb-small")
            if data.get("message"):
                ui.label(str(data["message"])).classes("text-sm").style("white-space: pre-line")
            fields = data.get("fields") if isinstance(data.get("fields"), dict) else {}
            if fields:
                with ui.element("dl").classes("grid gap-x-4 gap-y-1 text-sm").style(
                        "grid-template-columns: max-content 1fr"):
                    for key, value in fields.items():
                        ui.label(str(key)).classes("font-medium text-grey-8")
                        ui.label("" if value is None else str(value)).style("word-break: break-word")
            meta = f"Asked {ago(task.created)}" + (f" by {task.requester}" if task.requester else "")
            reminded = _reminded(task)
            if reminded and task.status == OPEN:
                meta += (f" · reminded {len(reminded)} time{'s' if len(reminded) > 1 else ''}, last "
                         f"{ago(reminded[-1])}")
            ui.label(meta).classes("fb-small").mark(f"meta:{task.id}")
            if task.status != OPEN:
                ui.label(f"This request was {task.describe()}." + (f" Comment: {task.comment}" if task.comment
                                                                     else "")).classes("text-sm text-grey-8")
                return
            answers: dict[str, Any] = {}
            for question in data.get("form") or []:
                label = question.get("label") or question.get("name")
                kind, default = question.get("type"), question.get("default")
                if kind == "yes_no":
                    answers[question["name"]] = ui.checkbox(label, value=bool(default))
                elif kind == "number":
                    answers[question["name"]] = ui.number(label, value=default).classes("w-full")
                elif kind == "textarea":
                    answers[question["name"]] = ui.textarea(label, value=default or "").classes("w-full")
                else:
                    answers[question["name"]] = ui.input(label, value=default or "").classes("w-full")
            comment = ui.textarea("Comment (optional)").props("rows=2 autogrow").classes("w-full") \
                .mark(f"comment:{task.id}")
            with ui.row().classes("w-full gap-2"):
                for outcome in task.outcomes:
                    color = {"approve": "positive", "reject": "negative"}.get(outcome, "primary")
                    ui.button(WORDS.get(outcome, outcome.replace("_", " ").capitalize()),
                              on_click=lambda o=outcome: self.decide(task, o, comment.value, answers)) \
                        .props(f"unelevated no-caps color={color}").mark(f"decide:{task.id}:{outcome}")
            with ui.expansion("Hand it to someone else").classes("w-full text-sm").props("dense") \
                    .mark(f"hand-on:{task.id}"):
                to = ui.input("Who decides instead").props(
                    'hint="A user name, e.g. linus, or a role, e.g. role:manager. They are told the way you were."'
                ).classes("w-full").mark(f"hand-to:{task.id}")
                reason = ui.input("Why (optional)").classes("w-full")
                ui.button("Hand on", on_click=lambda: self.hand_on(task, to.value, reason.value)) \
                    .props("outline no-caps").mark(f"hand:{task.id}")

    async def decide(self, task: Task, outcome: str, comment: str, answers: dict[str, Any]) -> None:
        assert self.principal is not None
        fields = {name: element.value for name, element in answers.items()}
        await self._answer(self.fb.approvals.decide(task.id, outcome, self.principal.name, comment=comment or "",
                                                    fields=fields, channel="inbox",
                                                    roles=[r.value for r in self.principal.roles]),
                           lambda done: f"Recorded: {done.describe()}")

    async def hand_on(self, task: Task, to: str, reason: str) -> None:
        assert self.principal is not None
        names = [n.strip() for n in (to or "").split(",") if n.strip()]
        if not names:
            ui.notify("Write who decides instead: a user name such as grace, or a role such as role:manager.",
                      type="warning")
            return
        await self._answer(self.fb.approvals.hand_on(task.id, names, self.principal.name, (reason or "").strip(),
                                                     roles=[r.value for r in self.principal.roles]),
                           lambda handed: f"Handed to {', '.join(handed.assignees)}: it is theirs to decide now.")

    async def _answer(self, action: Awaitable[Any], said: Callable[[Any], str]) -> None:
        """Await a decision or a hand-on and say how it went: what was recorded, or the approvals' refusal in words
        (decided already, not yours to decide...); then show the inbox as it is now either way."""
        try:
            result = await action
        except ApprovalError as exc:
            text = str(exc)
            ui.notify(text[:1].upper() + text[1:], type="warning", multi_line=True)
        else:
            ui.notify(said(result), type="positive")
        self.show(self.which)


def _reminded(task: Task) -> list[float]:
    request = task.data.get("request") if isinstance(task.data, dict) else None
    times = request.get("reminded") if isinstance(request, dict) else None
    return [float(t) for t in times if isinstance(t, int | float)] if isinstance(times, list) else []


def _when(ts: float) -> str:
    days = (ts - time.time()) / 86400
    from datetime import datetime

    moment = datetime.fromtimestamp(ts)
    return moment.strftime("%H:%M today" if 0 <= days < 1 and moment.date() == datetime.now().date()
                           else "%d %b %H:%M")
