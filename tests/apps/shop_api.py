"""A small real FastAPI app whose own /openapi.json the connector tests import: path and query parameters, a JSON body
with $ref'd models, an enum, defaults and a discriminated oneOf, a paginated list, an API key for reading and a bearer
token for writing. Every request it answers is recorded in `app.state.seen`.

`make_app(2)` is the next version of the API: one operation removed, two added, one changed (createItem needs a
`sku`).
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations, which name local dependencies.
import socket
import threading
from enum import StrEnum
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
    OAuth2,
)
from pydantic import BaseModel, Field

API_KEY = "read-key-4711-secret"
TOKEN = "write-token-0815-secret"
CLIENT_ID, CLIENT_SECRET = "report-app", "client-secret-9931-secret"  # OAuth2 client credentials for the reports
ACCESS_TOKEN = "oauth-access-7777-secret"


class Category(StrEnum):
    books = "books"
    games = "games"
    tools = "tools"


class Price(BaseModel):
    amount: float = Field(ge=0, description="The price, in the currency below.")
    currency: Literal["EUR", "USD"] = "EUR"


class Pickup(BaseModel):
    kind: Literal["pickup"]
    store: str = Field(description="Which store the item is picked up at.")


class Shipping(BaseModel):
    kind: Literal["shipping"]
    address: str
    express: bool = False


class NewItem(BaseModel):
    name: str = Field(min_length=1, description="What the item is called.")
    category: Category = Category.books
    price: Price
    quantity: int = 1
    delivery: Annotated[Pickup | Shipping, Field(discriminator="kind")] | None = None
    tags: list[str] = []


class Item(NewItem):
    id: int


class NewItemV2(NewItem):
    sku: str = Field(description="The stock-keeping number.")


class ItemPage(BaseModel):
    items: list[Item]
    page: int
    total: int


def make_app(version: int = 1) -> FastAPI:
    app = FastAPI(title="Shop API", version=f"{version}.0")
    app.state.seen = []
    app.state.tokens = 0  # access tokens handed out
    app.state.items = {i: Item(id=i, name=f"item {i}", price=Price(amount=i), category=Category.tools)
                       for i in range(1, 6)}

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        body = await request.body()
        app.state.seen.append({"method": request.method, "path": request.url.path, "query": str(request.url.query),
                               "headers": dict(request.headers), "body": body.decode()})
        return await call_next(request)

    reader = APIKeyHeader(name="X-API-Key")
    bearer = HTTPBearer()
    oauth = OAuth2(flows=OAuthFlows(clientCredentials=OAuthFlowClientCredentials(
        tokenUrl="/token", scopes={"reports": "read the reports"})), scheme_name="ShopOAuth")
    client = HTTPBasic(auto_error=False)

    @app.post("/token", include_in_schema=False)
    async def token(request: Request, auth: Annotated[HTTPBasicCredentials | None, Depends(client)]) -> Any:
        form = await request.form()
        if form.get("grant_type") != "client_credentials" or auth is None or \
                (auth.username, auth.password) != (CLIENT_ID, CLIENT_SECRET):
            raise HTTPException(401, "wrong client")
        app.state.tokens += 1
        return {"access_token": ACCESS_TOKEN, "token_type": "bearer", "expires_in": 3600}

    def can_report(authorization: Annotated[str, Depends(oauth)]) -> None:
        if authorization != f"Bearer {ACCESS_TOKEN}":
            raise HTTPException(401, "wrong access token")

    @app.get("/reports/sales", operation_id="salesReport", summary="Sales report",
             dependencies=[Depends(can_report)])
    def sales_report() -> dict[str, Any]:
        return {"items": len(app.state.items), "total": sum(i.price.amount for i in app.state.items.values())}

    def can_read(key: Annotated[str, Depends(reader)]) -> None:
        if key != API_KEY:
            raise HTTPException(401, "wrong API key")

    def can_write(auth: Annotated[HTTPAuthorizationCredentials, Depends(bearer)]) -> None:
        if auth.credentials != TOKEN:
            raise HTTPException(401, "wrong token")

    @app.get("/items", operation_id="listItems", summary="List items", dependencies=[Depends(can_read)])
    def list_items(page: Annotated[int, Query(ge=1)] = 1, per_page: Annotated[int, Query(ge=1, le=50)] = 2,
                   category: Category | None = None) -> ItemPage:
        found = [i for i in app.state.items.values() if category is None or i.category == category]
        start = (page - 1) * per_page
        return ItemPage(items=found[start:start + per_page], page=page, total=len(found))

    @app.get("/items/{item_id}", operation_id="getItem", summary="Get an item", dependencies=[Depends(can_read)])
    def get_item(item_id: int, x_request_id: Annotated[str | None, Header()] = None) -> Item:
        if item_id not in app.state.items:
            raise HTTPException(404, f"no item {item_id}")
        return app.state.items[item_id]

    if version == 1:
        @app.post("/items", operation_id="createItem", summary="Create an item", status_code=201,
                  dependencies=[Depends(can_write)])
        def create_item(item: NewItem) -> Item:
            new = Item(id=max(app.state.items, default=0) + 1, **item.model_dump())
            app.state.items[new.id] = new
            return new
    else:  # version 2 changes the operation: every new item needs a stock-keeping number
        @app.post("/items", operation_id="createItem", summary="Create an item", status_code=201,
                  dependencies=[Depends(can_write)])
        def create_item_v2(item: NewItemV2) -> Item:
            new = Item(id=max(app.state.items, default=0) + 1, **item.model_dump(exclude={"sku"}))
            app.state.items[new.id] = new
            return new

    if version == 1:
        @app.delete("/items/{item_id}", operation_id="deleteItem", summary="Delete an item", status_code=204,
                    dependencies=[Depends(can_write)])
        def delete_item(item_id: int) -> Response:
            app.state.items.pop(item_id, None)
            return Response(status_code=204)
    else:
        @app.get("/items/{item_id}/stock", operation_id="getStock", summary="Stock of an item",
                 dependencies=[Depends(can_read)])
        def get_stock(item_id: int) -> dict[str, int]:
            return {"item_id": item_id, "stock": 3}

        @app.post("/items/{item_id}/rename", operation_id="renameItem", summary="Rename an item",
                  dependencies=[Depends(can_write)])
        def rename_item(item_id: int, name: Annotated[str, Query(min_length=1)]) -> Item:
            item = app.state.items[item_id]
            item.name = name
            return item

    return app


class Served:
    """The app on uvicorn in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app: FastAPI):
        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.app.state.seen  # type: ignore[no-any-return]

    def __enter__(self) -> "Served":
        self.thread.start()
        import time

        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the shop API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
