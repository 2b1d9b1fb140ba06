"""The credentials' REST API, `/api/v1/credentials`, and the OAuth2 sign-in's way back, `/oauth/callback`.

```
 GET    /credentials                     names, types, problems, the flows using each (never a value)
 PUT    /credentials/{name}              create or change {type, fields}; a field left out keeps its value
 DELETE /credentials/{name}              refused (409, `flows`) while flows use it
 POST   /credentials/{name}/test         "Test connection": {ok, message}
 POST   /credentials/{name}/connect      an OAuth2 sign-in's address at the provider: {url}
 GET    /oauth/callback                  where the provider sends the browser back (no API key: the state checks it)
```
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Path, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from .. import credential_types
from ..auth import Permission
from ..oauth import CALLBACK_PATH, OAuth2Failed
from ..store import CredentialInUse, NotFound, SecretKeyError
from . import ApiError
from .access import require
from .keys import authenticate
from .rest import PREFIX, ApiRoute
from .schemas import ErrorOut

if TYPE_CHECKING:
    from ..services import Flowboard

TAG = {"name": "credentials", "description": "Credentials flows use by name: made, changed, tested and deleted "
                                             "here; their values are never sent back."}
Name = Annotated[str, Path(min_length=1, max_length=200, description="The credential's name.")]


class CredentialOut(BaseModel):
    name: str
    type: str
    label: str = Field(description="The type in words.")
    problem: str | None = Field(description="What is wrong with it (an OAuth2 sign-in whose renewal failed).")
    created: float
    updated: float
    used_by: list[str] = Field(description="Names of the flows that use it.")


class CredentialList(BaseModel):
    credentials: list[CredentialOut]


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str = Field(description="The credential type, e.g. bearer, api_key, oauth2_client, db, smtp.")
    fields: dict[str, str] = Field(default_factory=dict, description="Its fields; one left out or empty keeps its "
                                   "stored value when the type is unchanged.")


class TestOut(BaseModel):
    ok: bool
    message: str


class ConnectOut(BaseModel):
    url: str = Field(description="Open it in the browser to sign in at the provider; it comes back to "
                     "/oauth/callback.")


def register(app: FastAPI, fb: Flowboard) -> None:
    """Add the credentials API (before the REST API's catch-all) and the OAuth2 callback to the outer app."""
    app.include_router(router(fb))
    app.openapi_tags = [*(app.openapi_tags or []), TAG]

    @app.get(CALLBACK_PATH, include_in_schema=False)
    async def oauth_callback(request: Request) -> Response:
        query = request.query_params
        try:
            name = await fb.oauth.finish(query.get("state", ""), query.get("code"), query.get("error"),
                                         query.get("error_description"))
        except OAuth2Failed as exc:
            return _page("The sign-in did not work", f"{str(exc)[:1].upper()}{str(exc)[1:]}.", 400)
        return RedirectResponse(f"/credentials?connected={html.escape(name)}", 303)


def _page(title: str, text: str, status: int) -> HTMLResponse:
    body = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:40em;margin:4em auto'><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p><p><a href='/credentials'>Back to Credentials</a></p></body></html>")
    return HTMLResponse(body, status)


def router(fb: Flowboard) -> APIRouter:
    r = APIRouter(prefix=f"{PREFIX}/credentials", tags=["credentials"], route_class=ApiRoute,
                  dependencies=[Depends(authenticate(fb)), require(Permission.credentials)],
                  responses={401: {"model": ErrorOut, "description": "No API key, or not a valid one."},
                             404: {"model": ErrorOut, "description": "No such credential."},
                             422: {"model": ErrorOut, "description": "Refused; `error` says why."}})
    store = fb.store

    @r.get("", response_model=CredentialList, summary="List the credentials (never their values)")
    async def list_credentials() -> CredentialList:
        out = []
        for info in store.list_credentials():
            declaration = credential_types.get(info.type)
            out.append(CredentialOut(name=info.name, type=info.type, label=declaration.label if declaration else
                                     info.type, problem=info.problem, created=info.created, updated=info.updated,
                                     used_by=store.credential_users(info.name)))
        return CredentialList(credentials=out)

    @r.put("/{name}", response_model=CredentialOut, summary="Create or change a credential")
    async def put_credential(name: Name, body: Annotated[CredentialIn, Body()]) -> CredentialOut:
        found = _read(store, name, missing_ok=True)
        stored = found[1] if found is not None and found[0] == body.type else None
        try:
            data = credential_types.credential_data(body.type, body.fields, stored)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None
        store.set_credential(name, body.type, data)
        info = next(i for i in store.list_credentials() if i.name == name)
        declaration = credential_types.get(body.type)
        return CredentialOut(name=name, type=body.type, label=declaration.label if declaration else body.type,
                             problem=info.problem, created=info.created, updated=info.updated,
                             used_by=store.credential_users(name))

    @r.delete("/{name}", status_code=204, summary="Delete a credential no flow uses",
              responses={409: {"model": ErrorOut, "description": "Flows use it: `flows` names them."}})
    async def delete_credential(name: Name) -> Response:
        try:
            store.delete_credential(name)
        except CredentialInUse as exc:
            raise ApiError(409, str(exc), flows=exc.flows) from None
        return Response(status_code=204)

    @r.post("/{name}/test", response_model=TestOut, summary="Test connection")
    async def test_credential(name: Name) -> TestOut:
        _read(store, name)
        try:
            return TestOut(ok=True, message=await fb.test_credential(name))
        except ValueError as exc:
            return TestOut(ok=False, message=str(exc))

    @r.post("/{name}/connect", response_model=ConnectOut, summary="Start an OAuth2 sign-in")
    async def connect(name: Name) -> ConnectOut:
        _read(store, name)
        try:
            return ConnectOut(url=fb.oauth.start(name))
        except OAuth2Failed as exc:
            raise ApiError(422, str(exc)) from None

    return r


def _read(store: Any, name: str, missing_ok: bool = False) -> tuple[str, dict[str, Any]] | None:
    try:
        found: tuple[str, dict[str, Any]] | None = store.credential(name)
    except SecretKeyError as exc:
        raise ApiError(422, str(exc)) from None
    if found is None and not missing_ok:
        raise NotFound(f"there is no credential {name!r}")
    return found
