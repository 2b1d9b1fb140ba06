"""The REST API, `/api/v1`: flows, their versions, runs and the node catalog, for scripts and other tools.

```
 GET    /flows                     list                     POST /flows/{id}/activate | /deactivate
 POST   /flows                     create (a flow document) POST /flows/import          a flow file, as it is
 GET    /flows/{id}                document, version, active GET  /flows/{id}/export     the flow file's bytes
 PUT    /flows/{id}                save (If-Match: version)  GET  /flows/{id}/versions[/{v}]
 DELETE /flows/{id}
 POST   /flows/{id}/runs           start: {"items", "wait"}  GET  /runs?flow_id&status&source&since&limit&offset
 GET    /runs/{id}                 with steps and items      POST /runs/{id}/cancel | /retry     DELETE /runs/{id}
 GET    /nodes                     the node catalog
```
(`/tables` and `/connectors` have their own modules: api/tables.py, api/connectors.py.)

- Plain FastAPI routes on the outer app, included before NiceGUI is mounted: never behind its middleware.
- Every route needs an API key (`keys.py`) or a signed-in browser, whose user may work on flows (admins and
  editors, `access.py`); a key acts for the user who owns it. Every error is `{"error": "...", "problems":
  [{"loc", "message"}]}` (`ApiRoute` turns exceptions into that, for this router only).
- Store calls run in the thread pool (`db`): short on SQLite, but a network round trip on PostgreSQL, and the event
  loop also serves webhooks and runs flows. The key check costs no query for a key seen valid in the last 2 s
  (`keys.py`). What changes the live triggers (saving an active flow, activate, deactivate, delete) or touches
  running runs (start, cancel) runs on the event loop, which owns that state; those are rare calls, and their store
  work is one or two short statements.
- A run started with `wait` is recorded as it goes, like a webhook call answered when it finishes (no extra write
  per run); with `wait: false` it is written before the 202, so it can be followed, cancelled, and resumed.
- Retry runs the failed run again *in place*, with the engine's resume mechanism: the same run id, its succeeded and
  skipped steps reused (`done=`), its other steps deleted and run again, on the flow version it ran with. The run
  record then tells the whole story of that run; a fresh run of the newest version is `POST /flows/{id}/runs`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..auth import Permission
from ..engine import Plan, RunResult, RunStatus, Step, derive_inputs
from ..errors import FlowInvalid, Problem, format_loc
from ..jsonlimits import JsonRefused, read_json
from ..model import MAX_FLOW_BYTES, Flow, dump_flow
from ..services import RetryRefused
from ..store import AlreadyExists, NotFound, RunRecord, StoredFlow, VersionConflict
from ..triggers import ActivationConflict, new_run_id
from . import ApiError, approvals
from .access import require
from .downloads import download
from .keys import authenticate
from .schemas import (
    ConflictOut,
    ErrorOut,
    FlowBase,
    FlowList,
    FlowRead,
    FlowSaved,
    FlowSummaryOut,
    FlowUpdate,
    NodeList,
    RunAccepted,
    RunList,
    RunRead,
    RunResultOut,
    RunRetry,
    RunStart,
    RunSummaryOut,
    StepRead,
    VersionList,
    VersionOut,
    VersionRead,
)

if TYPE_CHECKING:
    from ..services import Flowboard

log = logging.getLogger("flowboard.api")

PREFIX = "/api/v1"
GOING = (RunStatus.queued.value, RunStatus.running.value, RunStatus.waiting.value)
JSON = "application/json"
MAX_INT = 2**31 - 1  # numbers in paths and queries: beyond this, SQLite's and PostgreSQL's integers overflow
db = run_in_threadpool  # a blocking Store call, off the event loop

DESCRIPTION = """Flows, runs and the node catalog of this Flowboard.

**Authentication.** Every call needs an API key, as `X-API-Key: <key>` or `Authorization: Bearer <key>`. Create one
with `flowboard api-key create NAME` (or in the editor's settings); it is shown once and stored only as a hash.

**Errors** are always JSON: `{"error": "...", "problems": [{"loc": "nodes[1].config.url", "message": "..."}]}`;
`problems` locates each thing wrong with a flow (422). A save with a stale version answers 409 with `current_version`.

**Times** are epoch seconds (UTC); durations are milliseconds."""

TAGS = [{"name": "flows", "description": "Flow documents, their versions, activation, import and export."},
        {"name": "runs", "description": "Start runs, follow them, cancel, retry and delete them."},
        {"name": "nodes", "description": "The node types this Flowboard has."}, approvals.TAG]


def register(app: FastAPI, fb: Flowboard) -> None:
    """Add the API to the outer app. Call it before NiceGUI is mounted (`ui.run_with`), so it is matched first."""
    approvals.register(app, fb, PREFIX, ApiRoute, RESPONSES)  # approvers use it too: its own permission checks
    app.include_router(router(fb))
    if not app.description:
        app.description = DESCRIPTION
    app.openapi_tags = [*(app.openapi_tags or []), *TAGS]


RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or not a valid one."},
    403: {"model": ErrorOut, "description": "The key's user (or the signed-in user) has no role that may use this "
                                            "part of the API."},
    422: {"model": ErrorOut, "description": "The request is not valid; `problems` says where."}}


def router(fb: Flowboard) -> APIRouter:
    r = APIRouter(prefix=PREFIX, route_class=ApiRoute, dependencies=[Depends(authenticate(fb)),
                                                                     require(Permission.flows)],
                  responses=RESPONSES)
    _flow_routes(r, fb)
    _run_routes(r, fb)
    _node_routes(r, fb)  # last: it ends with the catch-all that answers 404/405 in words
    return r


# -- answers and errors -------------------------------------------------------------------------------------------


class ApiRoute(APIRoute):
    """Routes of this API answer every failure as `{"error", "problems"}`: the API's own errors, the store's and the
    engine's typed errors, FastAPI's request validation, and anything unexpected (500, logged)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        json_body = not getattr(self.endpoint, "raw_body", False)  # a route that reads its own body (CSV) says so

        async def handle(request: Request) -> Response:
            try:
                if json_body and request.method in _WITH_BODY:
                    await _checked_body(request)
                return await handler(request)
            except Exception as exc:
                return error_response(exc, request)

        return handle


_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


async def _checked_body(request: Request) -> None:
    """Read the body once, within the size limit, and refuse JSON that is malformed, nested too deeply or holds NaN,
    before FastAPI parses it (Python's json would take NaN and overflow its stack on deep nesting). The body stays
    cached on the request for the handler."""
    raw = await _body(request)
    request._body = raw  # what Request.body() caches; the handler's body() and stream() read it from here
    if raw.strip():
        try:
            read_json(raw, max_bytes=MAX_FLOW_BYTES, what="the body")
        except JsonRefused as exc:
            raise ApiError(413 if exc.status == 413 else 422, f"the body cannot be read: {exc.message}",
                           problems=[{"loc": exc.loc, "message": exc.message}]) from None


def error_response(exc: Exception, request: Request | None = None) -> Response:
    if isinstance(exc, ApiError):
        return _error(exc.status, exc.error, exc.problems, exc.headers, **exc.extra)
    if isinstance(exc, ActivationConflict):
        return _error(409, f"the flow cannot be activated: {_count(exc.problems)}", _problems(exc.problems))
    if isinstance(exc, FlowInvalid):
        return _error(422, f"the flow is not valid: {_count(exc.problems)}", _problems(exc.problems))
    if isinstance(exc, VersionConflict):
        return _error(409, str(exc), current_version=exc.current_version)
    if isinstance(exc, AlreadyExists):
        return _error(409, str(exc))
    if isinstance(exc, NotFound):
        return _error(404, str(exc))
    if isinstance(exc, RequestValidationError):
        return _error(422, "the request is not valid", _request_problems(exc.errors()))
    if isinstance(exc, HTTPException):
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)
    where = f"{request.method} {request.url.path}" if request is not None else "the API"
    log.error("%s failed", where, exc_info=exc)
    return _error(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _error(status: int, error: str, problems: list[dict[str, Any]] | None = None,
           headers: Mapping[str, str] | None = None, **extra: Any) -> Response:
    return Response(orjson.dumps({"error": error, "problems": problems or [], **extra}), status, headers, JSON)


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(fallback=str), status, headers, JSON)


def _count(problems: list[Problem]) -> str:
    return f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" + (f" ({problems[0]})" if problems else "")


def _problems(problems: list[Problem]) -> list[dict[str, Any]]:
    return [p.as_dict() for p in problems]


def _request_problems(errors: Any) -> list[dict[str, Any]]:
    out = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        kind = err.get("type", "")
        if kind == "json_invalid":
            message, loc = f"the body is not JSON: {err.get('ctx', {}).get('error', err.get('msg'))}", []
        elif kind == "missing" and not loc:
            message = "a JSON body is required"
        else:
            msg = str(err.get("msg", kind))
            message = msg[:1].lower() + msg[1:]
        out.append({"loc": format_loc([p for p in loc if isinstance(p, str | int)]), "message": message})
    return out


def _invalid(loc: str, message: str) -> ApiError:
    return ApiError(422, f"the request is not valid ({loc}: {message})", problems=[{"loc": loc, "message": message}])


async def _body(request: Request) -> bytes:
    """The request body, refused with 413 beyond the size a flow file may have."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_FLOW_BYTES:
        raise ApiError(413, f"the body is {int(length):,} bytes; a flow file may be at most {MAX_FLOW_BYTES:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FLOW_BYTES:
            raise ApiError(413, f"the body is more than {MAX_FLOW_BYTES:,} bytes, the most a flow file may have")
        chunks.append(chunk)
    return b"".join(chunks)


# -- flows --------------------------------------------------------------------------------------------------------

FLOW_BODY = {"requestBody": {"required": True, "content": {JSON: {"schema": {"$ref": "#/components/schemas/Flow"}}}}}
_UPDATE = {k: v for k, v in FlowUpdate.model_json_schema(ref_template="#/components/schemas/{model}").items()
           if k != "$defs"}  # its definitions (Node, Edge, ...) are in the components already, from `Flow`
UPDATE_BODY = {"requestBody": {"required": True, "content": {JSON: {"schema": {"anyOf": [
    {"$ref": "#/components/schemas/Flow"}, _UPDATE]}}}}}
Responses = dict[int | str, dict[str, Any]]
CONFLICT: Responses = {409: {"model": ConflictOut, "description": "Someone saved the flow since you loaded it."}}
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such flow."}}


def _document(flow: Flow) -> dict[str, Any]:
    """The flow as its flow file says it (what export writes), as JSON data."""
    result: dict[str, Any] = json.loads(dump_flow(flow))
    return result


def _flow_read(stored: StoredFlow) -> FlowRead:
    return FlowRead(id=stored.flow.id, version=stored.version, active=stored.active, flow=_document(stored.flow),
                    created=stored.created, updated=stored.updated)


def _etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def _if_match(value: str | None) -> int | str | None:
    """`If-Match: 3`, `"3"` or `W/"3"` → 3; `*` → "*" (whatever version is stored)."""
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if text == "*":
        return "*"
    if not text.isdigit() or int(text) < 1:
        raise ApiError(400, f"If-Match must be the flow's version number, such as \"3\" (from its ETag), not {value!r}")
    return int(text)


def _slug(name: str, fallback: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:80] or fallback


def _flow_routes(r: APIRouter, fb: Flowboard) -> None:
    @r.get("/flows", response_model=FlowList, tags=["flows"], summary="List the flows")
    async def list_flows() -> Response:
        flows = await db(fb.store.list_flows)
        return _json(FlowList(flows=[FlowSummaryOut(id=f.id, version=f.version, active=f.active, name=f.name,
                                                    description=f.description, updated=f.updated,
                                                    last_run_status=f.last_run_status, last_run_at=f.last_run_at)
                                     for f in flows]))

    @r.post("/flows", status_code=201, response_model=FlowSaved, tags=["flows"], summary="Create a flow",
            openapi_extra=FLOW_BODY, responses={409: {"model": ErrorOut, "description": "The id is taken."}})
    async def create_flow(request: Request) -> Response:
        """Store a flow document as a new flow (version 1). It is checked fully first: every problem is answered at
        once with its location (422), and nothing is stored. Without an `id`, the flow gets a new one."""
        flow = await db(fb.parse, await _body(request))
        try:
            version = await db(fb.store.save_flow, flow, None, "created with the API")
        except AlreadyExists:
            raise ApiError(409, f"a flow with the id {flow.id!r} exists already; change it with PUT "
                                f"{PREFIX}/flows/{flow.id}, or leave `id` out to get a new one") from None
        return _json(FlowSaved(id=flow.id, version=version, active=False, name=flow.name), 201,
                     {"Location": f"{PREFIX}/flows/{flow.id}", **_etag(version)})

    @r.post("/flows/import", status_code=201, response_model=FlowSaved, tags=["flows"], summary="Import a flow file",
            openapi_extra=FLOW_BODY)
    async def import_flow(request: Request) -> Response:
        """Store a flow file sent as the raw body, as `flowboard import` does: nothing is stored unless the whole file
        is valid, and a flow whose id is taken gets a new id."""
        flow, version = await db(fb.import_flow, await _body(request))
        return _json(FlowSaved(id=flow.id, version=version, active=False, name=flow.name), 201,
                     {"Location": f"{PREFIX}/flows/{flow.id}", **_etag(version)})

    @r.get("/flows/{flow_id}", response_model=FlowRead, tags=["flows"], summary="Get a flow", responses=NOT_FOUND)
    async def get_flow(flow_id: str) -> Response:
        """The flow document with its current version (also the `ETag`) and whether it is active."""
        stored = await db(fb.store.get_flow, flow_id)
        return _json(_flow_read(stored), headers=_etag(stored.version))

    @r.put("/flows/{flow_id}", response_model=FlowSaved, tags=["flows"], summary="Save a new version of a flow",
           openapi_extra=UPDATE_BODY, responses={**NOT_FOUND, **CONFLICT,
                                                 400: {"model": ErrorOut, "description": "If-Match is not a version "
                                                       "number, or says another version than the body."},
                                                 428: {"model": ErrorOut, "description": "No version was given."}})
    async def update_flow(request: Request, flow_id: str,
                          if_match: Annotated[str | None, Header(description="The version you loaded (the ETag of "
                                                                             "GET), or `*` for any.")] = None
                          ) -> Response:
        """Save the flow as its next version. Say which version you loaded, with `If-Match: <version>` or a `version`
        field (in the body `{"flow": {...}, "version": N}`, or at the top of the flow document): if the flow was
        saved since, nothing changes and the answer is 409 with `current_version`. An active flow starts answering
        its triggers with the new version."""
        data = _json_object(await _body(request))
        if isinstance(data.get("flow"), dict):
            extra = sorted(set(data) - {"flow", "version"})
            if extra:
                raise _invalid(extra[0], "is not a known field; send {\"flow\": {...}, \"version\": N}")
            version, data = data.get("version"), data["flow"]
        else:
            version = data.pop("version", None)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise _invalid("version", "must be the version number you loaded (1 or more)")
        header = _if_match(if_match)
        if header is not None and version is not None and header != version:
            raise ApiError(400, f"If-Match says version {header} but the body says {version}; send one")
        expected = header if header is not None else version
        if expected is None:
            raise ApiError(428, "say which version of the flow you are changing, with `If-Match: <version>` (the "
                                "ETag of GET) or a `version` field, so that two editors never overwrite each other")
        if data.get("id", flow_id) != flow_id:
            raise ApiError(422, "the flow document is for another flow",
                           problems=[{"loc": "id", "message": f"is {data['id']!r}, but the URL is for {flow_id!r}"}])
        flow = await db(fb.parse, {**data, "id": flow_id})
        if expected == "*":
            expected = (await db(fb.store.get_flow, flow_id)).version
        saved = fb.save_flow(flow, int(expected), note="saved with the API")  # on the loop: it may re-activate
        return _json(FlowSaved(id=flow_id, version=saved, active=flow_id in fb.triggers.active, name=flow.name),
                     headers=_etag(saved))

    @r.delete("/flows/{flow_id}", status_code=204, tags=["flows"], summary="Delete a flow", responses={
        **NOT_FOUND, 409: {"model": ErrorOut, "description": "Runs of the flow are going."}})
    async def delete_flow(flow_id: str) -> Response:
        """Delete the flow with all its versions, runs and steps; its triggers stop. Refused while runs of the flow
        are going (cancel them first)."""
        going = await db(fb.store.list_runs, flow_id, GOING, None, None, 20)
        if going:
            ids = ", ".join(run.id for run in going)
            raise ApiError(409, f"runs of this flow are going ({ids}); cancel them first ({PREFIX}/runs/ID/cancel)")
        fb.delete_flow(flow_id)
        return Response(status_code=204)

    @r.post("/flows/{flow_id}/activate", response_model=FlowBase, tags=["flows"], summary="Switch triggers on",
            responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "Another active flow holds one of its "
                                                                           "triggers (e.g. a webhook path)."}})
    async def activate(flow_id: str) -> Response:
        """Serve the flow's production triggers (webhooks, schedules, ...) with its current version."""
        fb.activate(flow_id)
        return _json(FlowBase(id=flow_id, version=fb.triggers.active[flow_id].version, active=True))

    @r.post("/flows/{flow_id}/deactivate", response_model=FlowBase, tags=["flows"], summary="Switch triggers off",
            responses=NOT_FOUND)
    async def deactivate(flow_id: str) -> Response:
        """No new runs from the flow's production triggers; runs already going finish."""
        fb.deactivate(flow_id)
        stored = await db(fb.store.get_flow, flow_id)
        return _json(FlowBase(id=flow_id, version=stored.version, active=stored.active))

    @r.get("/flows/{flow_id}/export", tags=["flows"], summary="Export the flow file", responses={
        200: {"model": Flow, "description": "The flow file, byte for byte as `flowboard export` writes it."},
        **NOT_FOUND})
    async def export_flow(flow_id: str) -> Response:
        stored = await db(fb.store.get_flow, flow_id)
        filename = _slug(stored.flow.name, stored.flow.id) + ".json"
        text = await db(fb.export_text, stored.flow)  # with the OpenAPI connectors its nodes use
        return Response(text.encode(), media_type=JSON,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"', **_etag(stored.version)})

    @r.get("/flows/{flow_id}/versions", response_model=VersionList, tags=["flows"], summary="List a flow's versions",
           responses=NOT_FOUND)
    async def list_versions(flow_id: str) -> Response:
        versions = await db(fb.store.list_versions, flow_id)
        return _json(VersionList(flow_id=flow_id, versions=[VersionOut(version=v.version, created=v.created,
                                                                       note=v.note) for v in versions]))

    @r.get("/flows/{flow_id}/versions/{version}", response_model=VersionRead, tags=["flows"],
           summary="Get one version of a flow", responses=NOT_FOUND)
    async def get_version(flow_id: str, version: Annotated[int, Path(ge=1, le=MAX_INT)]) -> Response:
        flow = await db(fb.store.get_version, flow_id, version)
        info = next(v for v in await db(fb.store.list_versions, flow_id) if v.version == version)
        return _json(VersionRead(flow_id=flow_id, version=version, created=info.created, note=info.note,
                                 flow=_document(flow)))


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = read_json(raw, max_bytes=MAX_FLOW_BYTES, what="the body")
    except JsonRefused as exc:
        raise FlowInvalid([Problem(exc.loc, exc.message)]) from None
    if not isinstance(data, dict):
        raise FlowInvalid([Problem("", "a flow file is a JSON object with `name`, `nodes` and `edges`")])
    return data


# -- runs ---------------------------------------------------------------------------------------------------------

RUN_NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such run."}}
STARTED: Responses = {202: {"model": RunAccepted,
                             "description": "`wait: false`: the run was accepted and goes on in the background."}}


def _duration(started: float | None, finished: float | None) -> float | None:
    return round((finished - started) * 1000, 3) if started is not None and finished is not None else None


def _run_fields(run: RunRecord) -> dict[str, Any]:
    return {"id": run.id, "flow_id": run.flow_id, "flow_version": run.flow_version, "status": run.status,
            "trigger": run.trigger, "source": run.source, "created": run.created, "started": run.started,
            "finished": run.finished, "duration_ms": _duration(run.started, run.finished), "error": run.error}


def _step(step: Step, inputs: dict[str, list[dict[str, Any]]]) -> StepRead:
    return StepRead(node_id=step.node_id, status=step.status, attempt=step.attempt, started=step.started,
                    finished=step.finished, duration_ms=_duration(step.started, step.finished) or 0.0,
                    items=step.count, inputs=inputs, outputs=step.outputs, error=step.error)


def _load_run(fb: Flowboard, run_id: str) -> tuple[RunRecord, dict[str, Step], dict[str, dict[str, Any]]]:
    """A run, its steps, and each step's input items: the store keeps outputs only, and a node's inputs are its
    upstream steps' outputs along the edges of the flow version that ran."""
    run = fb.store.get_run(run_id)
    steps = fb.store.get_steps(run_id)
    flow: Flow | None
    try:
        flow = fb.plan(run.flow_id, run.flow_version).flow
    except (NotFound, FlowInvalid):  # the flow is gone, or that version no longer passes the checks
        try:
            flow = fb.store.get_version(run.flow_id, run.flow_version) if run.flow_version else None
        except NotFound:
            flow = None
    edges = [edge.key for edge in flow.edges] if flow is not None else []
    return run, steps, derive_inputs(edges, steps, run.input, {run.trigger} if run.trigger else set())


def _current_plan(fb: Flowboard, flow_id: str) -> tuple[int, Plan]:
    """The flow's current version and its plan (compiled once per version)."""
    version = fb.store.get_flow(flow_id).version
    return version, fb.plan(flow_id, version)


def _since(value: str | None) -> float | None:
    """Epoch seconds, or an ISO 8601 date and time (UTC when it names no zone)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _invalid("since", "must be epoch seconds or an ISO 8601 date and time, such as 2025-01-31T09:00:00Z"
                       ) from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


async def _answer(task: asyncio.Task[RunResult], run_id: str, wait: bool) -> Response:
    url = f"{PREFIX}/runs/{run_id}"
    if not wait:
        return _json(RunAccepted(run_id=run_id, status=RunStatus.running, url=url), 202, {"Location": url})
    result = await asyncio.shield(task)  # a caller that hangs up does not stop the run
    return _json(RunResultOut.model_validate(result.summary()), headers={"Location": url})


def _run_routes(r: APIRouter, fb: Flowboard) -> None:
    @r.post("/flows/{flow_id}/runs", response_model=RunResultOut, tags=["runs"], summary="Run a flow",
            responses={**STARTED, **NOT_FOUND})
    async def start_run(flow_id: str, body: Annotated[RunStart | None, Body()] = None) -> Response:
        """Run the flow's current version from its manual trigger (or `trigger`) with `items` as input.

        With `wait` (the default) the answer is the result, also when the run failed (`status: failed`, 200); the run
        is recorded as it goes, like a webhook call's (at its first side effect, at the latest when it ends). Without,
        the answer is 202 with the run id, at once, and the run is recorded before that answer: it can be followed,
        cancelled, and it is resumed if the server stops before it ends."""
        body = body or RunStart()
        version, plan = await db(_current_plan, fb, flow_id)
        trigger = body.trigger or plan.default_trigger()
        pn = plan.nodes.get(trigger)
        if pn is None or not pn.is_trigger:
            raise _invalid("trigger", f"{trigger!r} is not a trigger of this flow; its triggers are "
                                      f"{', '.join(plan.triggers)}")
        run_id = new_run_id()
        created = not body.wait and fb.recorder is not None
        if created:
            await db(fb.store.create_run, run_id, flow_id, version, trigger, body.items or [], "api",
                     RunStatus.running, fb.owner)
        task = fb.launcher.spawn(fb.launcher.run_plan(plan, version, trigger, body.items or [], source="api",
                                                      run_id=run_id, created=created))
        return await _answer(task, run_id, body.wait)

    @r.get("/runs", response_model=RunList, tags=["runs"], summary="List runs")
    async def list_runs(
        flow_id: Annotated[str | None, Query(description="Only this flow's runs.")] = None,
        status: Annotated[list[RunStatus] | None, Query(description="Only runs in these states (repeat it).")] = None,
        source: Annotated[str | None, Query(description="Only runs started so: api, manual, webhook, ...")] = None,
        since: Annotated[str | None, Query(description="Only runs created since: epoch seconds or ISO 8601.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    ) -> Response:
        """Newest first, without their items (`GET /runs/{id}` has them)."""
        runs = await db(fb.store.list_runs, flow_id, [s.value for s in status] if status else None, source,
                        _since(since), limit, offset)
        return _json(RunList(runs=[RunSummaryOut(**_run_fields(run)) for run in runs], limit=limit, offset=offset,
                             next_offset=offset + len(runs) if len(runs) == limit else None))

    @r.get("/runs/{run_id}", response_model=RunRead, tags=["runs"], summary="Get a run with its steps",
           responses=RUN_NOT_FOUND)
    async def get_run(run_id: str) -> Response:
        run, steps, inputs = await db(_load_run, fb, run_id)
        return _json(RunRead(**_run_fields(run), input=run.input, output=run.output,
                             steps=[_step(step, step.inputs or inputs.get(nid, {})) for nid, step in steps.items()]))

    @r.post("/runs/{run_id}/cancel", response_model=RunSummaryOut, tags=["runs"], summary="Cancel a run",
            responses={**RUN_NOT_FOUND, 202: {"model": RunSummaryOut, "description": "Cancelling; not ended yet."},
                       409: {"model": ErrorOut, "description": "The run has ended, or another process runs it."}})
    async def cancel_run(run_id: str) -> Response:
        """Stop a run that is going: its running nodes are stopped at once, and it ends as `cancelled`."""
        cancelled = fb.cancel(run_id)
        if not cancelled:
            run = await db(fb.store.get_run, run_id)
            if run.status.finished:
                raise ApiError(409, f"the run has ended already ({run.status.value})")
            if run.owner == fb.owner:  # accepted a moment ago: its task may not have started yet
                for _ in range(50):
                    await asyncio.sleep(0.02)
                    if cancelled := fb.cancel(run_id):
                        break
        if not cancelled and run.status is RunStatus.waiting and await db(fb.store.cancel_waiting, run_id):
            return _json(RunSummaryOut(**_run_fields(await db(fb.store.get_run, run_id))))
        if not cancelled:  # not going in this process: take it over if its process is gone, and end it
            if not await db(fb.store.claim_run, run_id, fb.owner):
                raise ApiError(409, f"the run is going in another process ({run.owner}); cancel it there")
            await db(fb.store.mark_run, run_id, RunStatus.cancelled, {"message": "the run was cancelled"},
                     owner=fb.owner)
        for _ in range(500):  # the engine stops it at once; wait until that is written down
            if run_id not in fb.engine.active_runs:
                run = await db(fb.store.get_run, run_id)
                if run.status.finished:
                    return _json(RunSummaryOut(**_run_fields(run)))
            await asyncio.sleep(0.02)
        return _json(RunSummaryOut(**_run_fields(await db(fb.store.get_run, run_id))), 202)

    @r.post("/runs/{run_id}/retry", response_model=RunResultOut, tags=["runs"], summary="Retry a failed run",
            responses={**STARTED, **RUN_NOT_FOUND, 409: {"model": ErrorOut, "description": "The run did not fail, "
                                                                                      "or is being retried."}})
    async def retry_run(run_id: str, body: Annotated[RunRetry | None, Body()] = None) -> Response:
        """Run a failed (or cancelled, or crashed) run again from where it failed, in place: the same run id, on the
        flow version it ran with, with its input. The steps that succeeded are kept and not run again; the step that
        failed and everything after it run now. Retry counts restart at 1."""
        body = body or RunRetry()
        try:
            task = await fb.retry_run(run_id)
        except RetryRefused as exc:
            raise ApiError(409, str(exc)) from None
        return await _answer(task, run_id, body.wait)

    @r.get("/runs/{run_id}/files/{file_id}", tags=["runs"], summary="Download a file of a run",
           responses={**RUN_NOT_FOUND, 200: {"description": "The file's bytes, as a download."}})
    async def run_file(run_id: str, file_id: str) -> Response:
        """A file the run's items carry (`{"$file": file_id, ...}` in its input, output or a step's items), as a
        download under its name. Only files of this run: whoever may see the run may download them."""
        ref, where = await db(fb.file_of_run, run_id, file_id)
        return download(ref, where)

    @r.delete("/runs/{run_id}", status_code=204, tags=["runs"], summary="Delete a run", responses={
        **RUN_NOT_FOUND, 409: {"model": ErrorOut, "description": "The run is going."}})
    async def delete_run(run_id: str) -> Response:
        """Delete a run that has ended, with its steps."""
        run = await db(fb.store.get_run, run_id)
        if not run.status.finished:
            raise ApiError(409, f"the run is {run.status.value}; cancel it first ({PREFIX}/runs/{run_id}/cancel)")
        await db(fb.store.delete_run, run_id)
        return Response(status_code=204)


# -- nodes and everything else ------------------------------------------------------------------------------------


def _node_routes(r: APIRouter, fb: Flowboard) -> None:
    catalog: list[tuple[int, bytes]] = []

    @r.get("/nodes", response_model=NodeList, tags=["nodes"], summary="The node catalog")
    async def nodes() -> Response:
        """Every installed node type (its newest version): ports, config JSON Schema and documentation."""
        if not catalog or catalog[0][0] != fb.registry.generation:  # rebuilt when a connector changed the types
            catalog[:] = [(fb.registry.generation,
                           NodeList.model_validate({"nodes": fb.registry.catalog()}).model_dump_json().encode())]
        return Response(catalog[0][1], media_type=JSON)

    @r.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                 include_in_schema=False)
    async def no_such_endpoint(request: Request, path: str) -> Response:
        allowed = sorted({method for route in r.routes if isinstance(route, APIRoute)
                          and route.matches(request.scope)[0] is Match.PARTIAL for method in route.methods or ()})
        if allowed:
            raise ApiError(405, f"{PREFIX}/{path} takes {', '.join(allowed)}, not {request.method}",
                           headers={"Allow": ", ".join(allowed)})
        raise ApiError(404, f"there is no API endpoint {request.method} {PREFIX}/{path}; the API is described at /docs")
