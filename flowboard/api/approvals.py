"""Approval tasks in the REST API, `/api/v1/approvals`: list and filter them, export them as CSV, decide or hand one
on, and check the decision log.

```
 GET  /approvals                 ?status&flow_id&run_id&node_id&assignee&responder&overdue&since&until&limit&offset
                                 &format=csv (the same list as a CSV file, up to 100,000 rows)
 GET  /approvals/audit           the decision log's check: {ok, entries, head, problems}
 GET  /approvals/out-of-office   who is away, and who receives their new tasks
 PUT  /approvals/out-of-office/{user}   {delegate, until}     DELETE: back at work
 GET  /approvals/{id}            the task with its log entries
 POST /approvals/{id}/decision   {outcome, comment, fields}: first decision wins, a later one gets 409
 POST /approvals/{id}/reassign   {to: [...], reason}
```

Who may do what (the caller is the signed-in user, or the user the API key acts for):
- A decision is always recorded as the caller's: `responder` is the key's user, never a name the caller passes
  (sending another name is refused). An approver decides only the tasks given to them (by name or role); an admin
  may decide any task; nobody decides their own request; editors and requesters decide nothing.
- Editors and admins see every task, the log's check and who is away, and may hand any task on. An approver sees
  the tasks given to them, decided by them or asked by them, hands on only their own, and sets only their own
  out-of-office delegate.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..auth import Permission, Principal
from ..store.approvals import STATUSES, AlreadyClosed, ApprovalError, DeadlinePassed, NotAllowed, Task, TaskNotFound
from . import ApiError
from .access import principal_of
from .keys import authenticate
from .schemas import ErrorOut

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..services import Flowboard

db = run_in_threadpool
TAG = {"name": "approvals", "description": "Approval tasks: list, export as CSV, decide, hand on; the decision log."}
MAX_CSV = 100_000


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str = Field(min_length=1, max_length=64, description="One of the task's outcomes, e.g. approve.")
    responder: str | None = Field(None, max_length=200, description="Leave it out: the decision is recorded as the "
                                  "caller's (the API key's user). If given, it must be that user's name.")
    comment: str = Field("", max_length=10_000)
    fields: dict[str, Any] = Field(default_factory=dict, description="The task's form fields, filled in.")


class Away(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delegate: str = Field(min_length=1, max_length=200, description="Who receives the new tasks meanwhile.")
    until: float | None = Field(None, description="Back at (epoch seconds); empty: until switched off.")


class Reassign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] = Field(min_length=1, description="People (`user:ada` or `ada`) or roles (`role:approver`).")
    by: str | None = Field(None, max_length=200, description="Leave it out: the caller hands the task on. If given, "
                           "it must be the caller's user name.")
    reason: str = Field("", max_length=2000)


NOT_FOUND: dict[str, Any] = {"model": ErrorOut, "description": "No such task."}
REFUSALS: dict[int | str, dict[str, Any]] = {
    404: NOT_FOUND, 403: {"model": ErrorOut, "description": "This person may not decide or hand on the task."},
    409: {"model": ErrorOut, "description": "The task is decided already, or its deadline has passed."}}


def register(app: FastAPI, fb: Flowboard, prefix: str, route_class: type[APIRoute],
             responses: dict[int | str, dict[str, Any]]) -> None:
    """Add the approvals API to the outer app (rest.py calls it), ahead of the REST API's router, whose catch-all
    answers unknown paths. Its routes check permissions themselves: approvers use some of them too."""
    r = APIRouter(prefix=prefix, route_class=route_class, dependencies=[Depends(authenticate(fb))],
                  responses=responses)
    routes(r, fb)
    app.include_router(r)


def names_of(principal: Principal) -> list[str]:
    """The assignee entries that mean this person: their name, `user:name`, and `role:<each role>`."""
    return [principal.name, f"user:{principal.name}", *(f"role:{r.value}" for r in principal.roles)]


def _staff(principal: Principal) -> bool:
    return principal.can(Permission.flows)


def _may_see(principal: Principal, task: Task) -> bool:
    if _staff(principal):
        return True
    me = principal.name.lower()
    return (task.responder or "").lower() == me or (task.requester or "").lower() == me or any(
        a.lower() in {n.lower() for n in names_of(principal)} for a in task.assignees)


def _as_caller(principal: Principal, given: str | None, what: str) -> str:
    if given is not None and given.strip().lower() != principal.name.lower():
        raise ApiError(403, f"{what} through the API is recorded as the caller's, {principal.name} (the API key's "
                            f"user), so it cannot be made for {given.strip()!r}: leave the name out, or use "
                            f"{given.strip()!r}'s own key")
    return principal.name


def _refuse(principal: Principal, doing: str, who: str) -> ApiError:
    return ApiError(403, f"{principal.label} ({principal.roles_text or 'no role'}) may not {doing}: it is for "
                         f"{who}")


async def viewer(request: Request) -> Principal:
    """Approvers, editors and admins (an approver then sees only their own tasks)."""
    principal = principal_of(request)
    if not (_staff(principal) or principal.can(Permission.inbox)):
        raise _refuse(principal, "see approval tasks", "approvers, editors or admins")
    return principal


async def staff(request: Request) -> Principal:
    principal = principal_of(request)
    if not _staff(principal):
        raise _refuse(principal, "use this part of the API", "editors or admins")
    return principal


async def decider(request: Request) -> Principal:
    principal = principal_of(request)
    if not principal.can(Permission.inbox):
        raise _refuse(principal, "decide approval tasks", "approvers or admins")
    return principal


async def own_or_admin(request: Request, user: str) -> Principal:
    """Out of office: an admin sets anyone's delegate, an approver only their own."""
    principal = principal_of(request)
    if principal.can(Permission.users) or (principal.can(Permission.inbox) and
                                           user.strip().lower().removeprefix("user:") == principal.name.lower()):
        return principal
    raise ApiError(403, f"{principal.label} may set only their own out-of-office delegate; an admin sets anyone's")


Viewer = Annotated[Principal, Depends(viewer)]  # checked before the body is read: a refusal is never a 422
Decider = Annotated[Principal, Depends(decider)]


def routes(r: APIRouter, fb: Flowboard) -> None:
    service = fb.approvals
    approvals = service.store

    @r.get("/approvals", tags=["approvals"], summary="List approval tasks (or export them as CSV)",
           responses={200: {"description": "The tasks, as JSON or (`format=csv`) as a CSV file.",
                            "content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}}})
    async def list_tasks(
        principal: Viewer,
        status: Annotated[list[str] | None, Query(description=f"Only tasks in these states: {', '.join(STATUSES)} "
                                                              "(repeat it).")] = None,
        flow_id: str | None = None, run_id: str | None = None, node_id: str | None = None,
        assignee: Annotated[str | None, Query(description="Only tasks listing this person or role, written as in "
                                                          "the task (`user:ada`, `role:approver`).")] = None,
        responder: Annotated[str | None, Query(description="Only tasks decided by this person.")] = None,
        overdue: Annotated[bool | None, Query(description="true: open tasks past their deadline.")] = None,
        since: Annotated[float | None, Query(description="Created at or after (epoch seconds).")] = None,
        until: Annotated[float | None, Query(description="Created before (epoch seconds).")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
        format: Annotated[Literal["json", "csv"], Query(description="csv: a CSV file of every matching task "
                                                                    "(limit and offset do not apply).")] = "json",
    ) -> Response:
        """Newest first. An approver gets the tasks given to them, decided by them or asked by them."""
        for value in status or []:
            if value not in STATUSES:
                raise ApiError(422, f"the request is not valid (status: {value!r} is not one of "
                                    f"{', '.join(STATUSES)})", problems=[{"loc": "status", "message":
                                                                          f"must be one of {', '.join(STATUSES)}"}])
        filters: dict[str, Any] = {"status": status or None, "flow_id": flow_id, "run_id": run_id, "node_id": node_id,
                   "assignee": assignee, "responder": responder, "overdue": overdue, "since": since, "until": until,
                   "involving": None if _staff(principal) else (names_of(principal), principal.name)}
        if format == "csv":
            tasks = await db(lambda: approvals.list_tasks(**filters, limit=MAX_CSV))
            return Response(approvals.to_csv(tasks).encode("utf-8-sig"), 200, media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="approvals.csv"'})
        tasks = await db(lambda: approvals.list_tasks(**filters, limit=limit, offset=offset))
        return _json({"tasks": [_out(t) for t in tasks], "limit": limit, "offset": offset,
                      "next_offset": offset + len(tasks) if len(tasks) == limit else None})

    @r.get("/approvals/audit", tags=["approvals"], summary="Check the decision log",
           dependencies=[Depends(staff)])
    async def audit() -> Response:
        """Recompute the log's hash chain and compare every task with what the log says happened to it. `ok` false
        lists the problems, the first broken entry first."""
        result = await db(approvals.verify)
        return _json({"ok": result.ok, "entries": result.entries, "head": result.head, "problems": result.problems})

    @r.get("/approvals/out-of-office", tags=["approvals"], summary="Who is away", dependencies=[Depends(viewer)])
    async def away_list() -> Response:
        return _json(await db(approvals.out_of_office))

    @r.put("/approvals/out-of-office/{user}", tags=["approvals"], summary="Set someone away, with a delegate",
           responses={422: {"model": ErrorOut, "description": "The delegate is the person themselves."}},
           dependencies=[Depends(own_or_admin)])
    async def away(user: str, body: Away) -> Response:
        """New tasks for `user` go to `delegate` until `until` (tasks already made stay: hand them on with
        `/approvals/{id}/reassign`). An approver sets only their own; admins anyone's."""
        problem = await db(fb.unknown_people, [user, body.delegate])
        if problem:
            raise ApiError(422, problem)
        try:
            await db(approvals.set_out_of_office, user, body.delegate, body.until)
        except ApprovalError as exc:
            raise ApiError(422, str(exc)) from None
        return _json(await db(approvals.out_of_office))

    @r.delete("/approvals/out-of-office/{user}", tags=["approvals"], summary="Someone is back",
              dependencies=[Depends(own_or_admin)])
    async def back(user: str) -> Response:
        await db(approvals.set_out_of_office, user, None)
        return _json(await db(approvals.out_of_office))

    @r.get("/approvals/{task_id}", tags=["approvals"], summary="Get an approval task with its log",
           responses={404: NOT_FOUND})
    async def get_task(principal: Viewer, task_id: str) -> Response:
        try:
            task, entries = await db(lambda: (approvals.get(task_id), approvals.log(task_id)))
        except TaskNotFound as exc:
            raise ApiError(404, str(exc)) from None
        if not _may_see(principal, task):
            raise ApiError(403, f"{principal.label} may not see this task: it is not given to them, and they did not "
                                "decide or ask for it")
        return _json(_out(task) | {"log": [{"seq": e.seq, "event": e.event, "actor": e.actor, "at": e.at,
                                             "data": e.content(), "hash": e.hash} for e in entries]})

    @r.post("/approvals/{task_id}/decision", tags=["approvals"], summary="Decide an approval task",
            responses=REFUSALS)
    async def decide(principal: Decider, task_id: str, body: Decision) -> Response:
        """Recorded as the caller's decision. An approver decides only tasks given to them; an admin any task."""
        responder = _as_caller(principal, body.responder, "a decision")
        roles = None if principal.can(Permission.users) else [r.value for r in principal.roles]
        task = await _call(service.decide(task_id, body.outcome, responder, comment=body.comment,
                                          fields=body.fields, channel="api", roles=roles))
        return _json(_out(task))

    @r.post("/approvals/{task_id}/reassign", tags=["approvals"], summary="Hand an approval task to others",
            responses=REFUSALS)
    async def reassign(principal: Viewer, task_id: str, body: Reassign) -> Response:
        """Hand the task on (the new people are told, with their own links). An approver hands on only tasks given
        to them; editors and admins any task."""
        by = _as_caller(principal, body.by, "handing a task on")
        roles = None if _staff(principal) else [r.value for r in principal.roles]
        task = await _call(service.hand_on(task_id, body.to, by, body.reason, roles=roles))
        return _json(_out(task))


async def _call(pending: Awaitable[Task]) -> Task:
    try:
        task = await pending
    except TaskNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except (AlreadyClosed, DeadlinePassed) as exc:
        raise ApiError(409, str(exc)) from None
    except NotAllowed as exc:
        raise ApiError(403, str(exc)) from None
    except ApprovalError as exc:
        raise ApiError(422, str(exc)) from None
    return task


def _out(task: Task) -> dict[str, Any]:
    return task.as_dict() | {"summary": task.describe()}


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status, media_type="application/json")
