"""The connectors' REST API, `/api/v1/connectors`: what the Connectors page and `flowboard connector` do, for scripts.

```
 GET    /connectors                           each connector with its operations (and flows that lost one)
 POST   /connectors?name&server&check=true    the OpenAPI document (JSON or YAML) as the body: what importing
                                              changes; stored unless `check` (a re-import when the name exists)
 DELETE /connectors/{name}                    refused (409) while flows use it, naming them
```

The document comes as the body, never as an address to fetch: the API does not make this server call other hosts.
Same rules as the rest of `/api/v1`: an API key (or a signed-in editor) on every call, errors as `{"error",
"problems"}`, store work off the event loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, Field

from ..auth import Permission
from ..connectors import ConnectorInUse, Preview
from ..openapi import MAX_DOCUMENT_BYTES, ApiInvalid
from ..openapi_nodes import type_id
from ..store import NotFound
from . import ApiError
from .access import require
from .keys import authenticate
from .rest import PREFIX, ApiRoute, db
from .schemas import ErrorOut

if TYPE_CHECKING:
    from ..services import Flowboard


class OperationOut(BaseModel):
    key: str
    type: str = Field(description="The node type flows use for it")
    method: str
    path: str
    title: str


class ConnectorOut(BaseModel):
    name: str
    title: str
    version: str
    source: str = Field(description="Where it was imported from (a web address or a file name)")
    server: str = Field(description="Where its calls go")
    operations: list[OperationOut]
    lost: dict[str, list[str]] = Field(description="Flows that use operations it no longer has: flow -> operations")


class ConnectorList(BaseModel):
    connectors: list[ConnectorOut]


class ImportOut(BaseModel):
    name: str
    title: str
    stored: bool
    existing: bool = Field(description="A connector of this name was there: this is a re-import")
    changes: dict[str, list[str]] | None = Field(None, description="For a re-import: added, removed, changed")
    removed_in_use: dict[str, list[str]] = Field(description="Flows that use an operation the API no longer has")
    broken: dict[str, list[str]] = Field(description="Flows whose nodes no longer fit a changed operation")
    lines: list[str] = Field(description="What importing does, in words")


def register(app: FastAPI, fb: Flowboard) -> None:
    """Add the connectors API to the outer app, before NiceGUI is mounted and before the API's catch-all."""
    app.include_router(router(fb))


def router(fb: Flowboard) -> APIRouter:
    r = APIRouter(prefix=f"{PREFIX}/connectors", tags=["connectors"], route_class=ApiRoute,
                  dependencies=[Depends(authenticate(fb)), require(Permission.flows)],
                  responses={401: {"model": ErrorOut, "description": "No API key, or not a valid one."},
                             404: {"model": ErrorOut, "description": "No such connector."},
                             409: {"model": ErrorOut, "description": "Flows use it."},
                             413: {"model": ErrorOut, "description": "The document is too large."},
                             422: {"model": ErrorOut, "description": "The document cannot become a connector; "
                                                                     "`problems` says where."}})

    def listing() -> ConnectorList:
        out = []
        for record in fb.connectors.all():
            api = fb.connectors.apis.get(record.name)
            ops = [OperationOut(key=op.key, type=type_id(record.name, op.key), method=op.method, path=op.path,
                                title=op.title) for op in (api.operations.values() if api else [])]
            out.append(ConnectorOut(name=record.name, title=record.title, version=api.version if api else "",
                                    source=record.source, server=api.server if api else record.server,
                                    operations=ops, lost=fb.connectors.orphans(record.name)))
        return ConnectorList(connectors=out)

    @r.get("", response_model=ConnectorList, summary="List the connectors")
    async def list_connectors() -> Response:
        return Response((await db(listing)).model_dump_json(), media_type="application/json")

    @r.post("", status_code=201, response_model=ImportOut, summary="Import (or re-import) an OpenAPI document",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/yaml": {"schema": {"type": "string"}}}}})
    async def import_connector(request: Request, name: str = Query("", max_length=48, description=(
                                   "The connector's name (default: from the API's title); the same name again is a "
                                   "re-import")),
                               server: str = Query("", max_length=2000, description="Where its calls go, when the "
                                                   "document names no server or to use another one"),
                               check: bool = Query(False, description="Only say what would change; store nothing")
                               ) -> Response:
        body = await _document(request)

        def work() -> tuple[Preview, bool]:
            preview = fb.connectors.read(body, source="api", server=server, name=name)
            if not check:
                fb.connectors.save(preview)
            return preview, not check

        try:
            preview, stored = await db(work)
        except ApiInvalid as exc:
            raise ApiError(422, "the document cannot become a connector",
                           problems=[{"loc": p.loc, "message": p.message} for p in exc.problems]) from None
        out = ImportOut(name=preview.api.name, title=preview.api.title, stored=stored, existing=preview.existing,
                        changes=preview.changes.as_dict() if preview.changes is not None else None,
                        removed_in_use=preview.removed_in_use, broken=preview.broken, lines=preview.lines())
        return Response(out.model_dump_json(), status_code=201 if stored else 200, media_type="application/json")

    import_connector.raw_body = True  # type: ignore[attr-defined]  # JSON or YAML: ApiRoute must not read it as JSON

    @r.delete("/{name}", status_code=204, summary="Remove a connector no flow uses")
    async def remove_connector(name: str) -> Response:
        try:
            await db(fb.connectors.remove, name)
        except ConnectorInUse as exc:
            raise ApiError(409, str(exc), flows=exc.flows) from None
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        return Response(status_code=204)

    return r


async def _document(request: Request) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_DOCUMENT_BYTES:
        raise ApiError(413, f"the document is {int(length):,} bytes; it may be at most {MAX_DOCUMENT_BYTES:,}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_DOCUMENT_BYTES:
            raise ApiError(413, f"the document is more than {MAX_DOCUMENT_BYTES:,} bytes, the most it may have")
        chunks.append(chunk)
    return b"".join(chunks)

