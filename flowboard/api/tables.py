"""The data tables' REST API, `/api/v1/tables`: what the Tables page can do, for scripts and other tools.

```
 GET    /tables                          list            POST   /tables                     create {name, columns, key}
 GET    /tables/{t}                      schema, rows    PATCH  /tables/{t}                 rename {name}
 DELETE /tables/{t}                                      POST   /tables/{t}/columns         add a column
 PUT    /tables/{t}/columns/{c}          change (type, name, rules: every row is checked first)
 DELETE /tables/{t}/columns/{c}
 GET    /tables/{t}/rows?col=value&sort=-col&limit&offset        POST /tables/{t}/rows/find {conditions, match, sort}
 POST   /tables/{t}/rows                 add {rows}      POST   /tables/{t}/rows/upsert     {rows} by the key column
 GET    /tables/{t}/rows/{id}            PATCH /tables/{t}/rows/{id} {values}    DELETE /tables/{t}/rows/{id}
 POST   /tables/{t}/rows/update          {conditions, values}     POST /tables/{t}/rows/delete {conditions}
 POST   /tables/{t}/rows/change          {conditions, changes}: atomic ("decrease days_left by 3 where ...")
 POST   /tables/{t}/import?mode=insert|upsert&dry_run=true   CSV body    GET /tables/{t}/export?...   CSV
```

Same rules as the rest of `/api/v1`: an API key on every call, errors as `{"error", "problems"}`, store work off the
event loop. Every change goes through the TableService, so table-change triggers see it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..auth import Permission
from ..datatables import Change, Column, Condition, Sort, TableSchema, plain_errors
from ..store.datatables import MAX_PAGE, ChangeSource, TableError, TableInfo, TableNotFound
from . import ApiError
from .access import require
from .keys import authenticate
from .rest import PREFIX, ApiRoute
from .schemas import ErrorOut

if TYPE_CHECKING:
    from ..services import Flowboard

TAG = {"name": "tables", "description": "Data tables: their columns and rows, CSV import and export."}
MAX_CSV_BYTES = 50 * 1024 * 1024


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableOut(BaseModel):
    id: str
    name: str
    key: str | None
    columns: list[dict[str, Any]]
    rows: int | None = None
    version: int


class TableList(BaseModel):
    tables: list[TableOut]


class Rename(_In):
    name: str


class Rows(_In):
    rows: list[dict[str, Any]] = Field(description="Each row's column values")


class RowList(BaseModel):
    rows: list[dict[str, Any]]
    total: int | None = Field(None, description="Rows matching, all pages together (finds only)")


class Find(_In):
    conditions: list[Condition] = Field(default_factory=list)
    match: Literal["all", "any"] = "all"
    sort: list[Sort] = Field(default_factory=list)
    limit: int = Field(100, ge=0, le=MAX_PAGE)
    offset: int = Field(0, ge=0)


class UpdateRows(_In):
    conditions: list[Condition] = Field(default_factory=list)
    match: Literal["all", "any"] = "all"
    values: dict[str, Any]


class DeleteRows(_In):
    conditions: list[Condition] = Field(min_length=1)
    match: Literal["all", "any"] = "all"


class ChangeRows(_In):
    conditions: list[Condition] = Field(default_factory=list)
    match: Literal["all", "any"] = "all"
    changes: list[Change] = Field(min_length=1)


class ChangeResult(BaseModel):
    applied: bool = Field(description="False when no row met the conditions: nothing changed")
    rows: list[dict[str, Any]]


class ImportOut(BaseModel):
    rows: int
    inserted: int
    updated: int
    committed: bool
    problems: list[str]


def register(app: FastAPI, fb: Flowboard) -> None:
    """Add the tables API to the outer app, before NiceGUI is mounted."""
    app.include_router(router(fb))
    app.openapi_tags = [*(app.openapi_tags or []), TAG]


def router(fb: Flowboard) -> APIRouter:
    r = APIRouter(prefix=f"{PREFIX}/tables", tags=["tables"], route_class=ApiRoute,
                  dependencies=[Depends(authenticate(fb)), require(Permission.tables)],
                  responses={401: {"model": ErrorOut, "description": "No API key, or not a valid one."},
                             404: {"model": ErrorOut, "description": "No such table or row."},
                             409: {"model": ErrorOut, "description": "The name is taken, or the table changed "
                                                                     "meanwhile."},
                             413: {"model": ErrorOut, "description": "The body is too large."},
                             422: {"model": ErrorOut, "description": "Refused; `error` says why."}})
    service = fb.tables
    api = ChangeSource(via="api")

    async def call(method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await service.call(method, *args, **kwargs)
        except TableNotFound as exc:
            raise ApiError(404, str(exc)) from None
        except (TableError, ValueError) as exc:
            raise ApiError(409 if "changed meanwhile" in str(exc) or "exists already" in str(exc) else 422,
                           str(exc)) from None

    async def table_out(info: TableInfo, rows: bool = False) -> TableOut:
        return TableOut(id=info.id, name=info.name, key=info.schema.key, version=info.version,
                        columns=[c.model_dump(mode="json", exclude={"storage"}) for c in info.schema.columns],
                        rows=await call("count", info.id) if rows else None)

    @r.get("", summary="List the data tables")
    async def list_tables() -> TableList:
        return TableList(tables=[await table_out(t) for t in await call("list_tables")])

    @r.post("", status_code=201, summary="Create a data table")
    async def create(schema: Annotated[dict[str, Any], Body(examples=[{
            "name": "Employees", "key": "employee", "columns": [
                {"name": "employee"}, {"name": "days_left", "type": "number", "default": 0}]}])]) -> TableOut:
        return await table_out(await call("create", _schema(schema)))

    @r.get("/{table}", summary="A table's columns and row count")
    async def get(table: str) -> TableOut:
        return await table_out(await call("get", table), rows=True)

    @r.patch("/{table}", summary="Rename a table")
    async def rename(table: str, body: Rename) -> TableOut:
        return await table_out(await call("rename", table, body.name))

    @r.delete("/{table}", status_code=204, summary="Delete a table and all its rows")
    async def drop(table: str) -> Response:
        await call("drop", table)
        return Response(status_code=204)

    @r.post("/{table}/columns", status_code=201, summary="Add a column")
    async def add_column(table: str, column: dict[str, Any]) -> TableOut:
        return await table_out(await call("add_column", table, _column(column)))

    @r.put("/{table}/columns/{column}", summary="Change a column: its type, name or rules (every row is checked "
                                               "first; nothing changes if one does not fit)")
    async def change_column(table: str, column: str, new: dict[str, Any]) -> TableOut:
        return await table_out(await call("change_column", table, column, _column(new)))

    @r.delete("/{table}/columns/{column}", summary="Remove a column and its values")
    async def drop_column(table: str, column: str) -> TableOut:
        return await table_out(await call("drop_column", table, column))

    @r.get("/{table}/rows", summary="Rows, one page: `?employee=ada&sort=-days_left&limit=50&offset=0` (any other "
                                    "parameter is a column that must equal its value)")
    async def rows(request: Request, table: str, sort: str = "", limit: Annotated[int, Query(ge=0, le=MAX_PAGE)] = 100,
                   offset: Annotated[int, Query(ge=0)] = 0) -> RowList:
        conditions, order = _query(request, sort)
        found = await call("find", table, conditions, order, limit=limit, offset=offset)
        return RowList(rows=found, total=await call("count", table, conditions))

    @r.post("/{table}/rows/find", summary="Rows meeting conditions, sorted, one page")
    async def find(table: str, body: Find) -> RowList:
        found = await call("find", table, body.conditions, body.sort, limit=body.limit, offset=body.offset,
                           match=body.match)
        return RowList(rows=found, total=await call("count", table, body.conditions, match=body.match))

    @r.post("/{table}/rows", status_code=201, summary="Add rows (all or none)")
    async def insert(table: str, body: Rows) -> RowList:
        return RowList(rows=await call("insert", table, body.rows, api))

    @r.post("/{table}/rows/upsert", summary="Add rows, or change the rows with the same key value")
    async def upsert(table: str, body: Rows) -> RowList:
        return RowList(rows=await call("upsert", table, body.rows, api))

    @r.post("/{table}/rows/update", summary="Change every row meeting the conditions")
    async def update(table: str, body: UpdateRows) -> RowList:
        return RowList(rows=await call("update", table, body.conditions, body.values, api, match=body.match))

    @r.post("/{table}/rows/delete", summary="Remove every row meeting the conditions")
    async def delete(table: str, body: DeleteRows) -> RowList:
        return RowList(rows=await call("delete", table, body.conditions, api, match=body.match))

    @r.post("/{table}/rows/change", summary="Change numbers safely: applied completely, or not at all when no row "
                                            "meets the conditions (e.g. decrease days_left by 3 where days_left is "
                                            "greater than or equal to 3)")
    async def change(table: str, body: ChangeRows) -> ChangeResult:
        done = await call("conditional_update", table, body.conditions, body.changes, api, match=body.match)
        return ChangeResult(applied=bool(done), rows=done)

    @r.get("/{table}/rows/{row_id}", summary="One row")
    async def get_row(table: str, row_id: int) -> dict[str, Any]:
        return dict(await call("get_row", table, row_id))

    @r.patch("/{table}/rows/{row_id}", summary="Change one row")
    async def update_row(table: str, row_id: int, values: dict[str, Any]) -> dict[str, Any]:
        return dict(await call("update_row", table, row_id, values, api))

    @r.delete("/{table}/rows/{row_id}", status_code=204, summary="Remove one row")
    async def delete_row(table: str, row_id: int) -> Response:
        gone = await call("delete_rows", table, [row_id], api)
        if not gone:
            raise ApiError(404, f"there is no row {row_id} in {table}")
        return Response(status_code=204)

    @r.post("/{table}/import", summary="Import CSV (the first line names the columns). With dry_run (the default) "
                                       "nothing is written: the answer lists every line that would fail and why",
            openapi_extra={"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}}}}})
    async def import_csv(request: Request, table: str, mode: Literal["insert", "upsert"] = "insert",
                         dry_run: bool = True) -> ImportOut:
        chunks, size = [], 0
        async for chunk in request.stream():  # stop reading at the limit, not after the whole upload
            size += len(chunk)
            if size > MAX_CSV_BYTES:
                raise ApiError(413, f"the CSV is larger than {MAX_CSV_BYTES // 1024 // 1024} MB; split it")
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(422, "the CSV is not UTF-8 text; save it as UTF-8 and send it again") from None
        report = await call("import_csv", table, text, dry_run=dry_run, mode=mode,
                            source=ChangeSource(via="import"))
        return ImportOut(rows=report.rows, inserted=report.inserted, updated=report.updated,
                         committed=report.committed, problems=report.problems)

    import_csv.raw_body = True  # type: ignore[attr-defined]  # its body is CSV: ApiRoute must not read it as JSON

    @r.get("/{table}/export", summary="The rows as CSV, with the same filters as listing rows",
           response_class=Response, responses={200: {"content": {"text/csv": {}}}})
    async def export_csv(request: Request, table: str, sort: str = "") -> Response:
        conditions, order = _query(request, sort)
        text = await call("export_csv", table, conditions, order)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{_filename(table)}.csv"'})

    return r


_PAGING = frozenset({"sort", "limit", "offset", "mode", "dry_run"})


def _query(request: Request, sort: str) -> tuple[list[Condition], list[Sort]]:
    conditions = [Condition(column=k, value=v) for k, v in request.query_params.items() if k not in _PAGING]
    order = [Sort(column=part.strip().lstrip("-"), descending=part.strip().startswith("-"))
             for part in sort.split(",") if part.strip()]
    return conditions, order


def _schema(data: dict[str, Any]) -> TableSchema:
    try:
        return TableSchema.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, f"the table is not valid: {plain_errors(exc)}") from None


def _column(data: dict[str, Any]) -> Column:
    try:
        return Column.model_validate(data)
    except ValidationError as exc:
        raise ApiError(422, f"the column is not valid: {plain_errors(exc)}") from None


def _filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_ " else "_" for c in name).strip() or "table"
