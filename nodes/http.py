"""HTTP request: call any HTTP API once per item, concurrently, on the engine's shared client."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.message
import email.utils
import errno
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flowboard.sdk import (
    Category,
    Context,
    Files,
    Inputs,
    Item,
    Items,
    NodeError,
    NodeType,
    Outputs,
    PastedConfig,
    PasteImport,
    Suspend,
    get_path,
    parse_curl,
    plain,
    secret_forms,
)

Scalar = str | int | float | bool | None
T = TypeVar("T")
#: The credential types that sign a request (see flowboard.credential_types).
HTTP_CREDENTIALS = ["api_key", "bearer", "basic", "oauth2_client", "oauth2_code", "header", "query", "cookie"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pair(_Strict):
    name: str = Field(min_length=1, description="The name, e.g. Accept or page.")
    value: Scalar = Field(None, description="The value, e.g. application/json or 2; an expression is allowed. "
                          "Left empty, the line is not sent.")


KeyValues = Annotated[
    list[Pair] | dict[str, Scalar],
    Field(description="The form's fields, one line each, e.g. email and ada@example.com; a name may appear twice."),
]


class NoBody(_Strict):
    type: Annotated[Literal["none"], Field(title="Nothing", description="Send no body.")] = "none"


class JsonBody(_Strict):
    type: Literal["json"] = Field(title="JSON", description="Send JSON data (as application/json).")
    data: Any = Field(None, description="The JSON to send, e.g. {\"name\": \"Ada\"}, or an expression such as "
                      "{{ item }} to send the whole item.",
                      json_schema_extra={"widget": "json"})


class FormBody(_Strict):
    type: Literal["form"] = Field(title="Form", description="Send the fields as a web form "
                                  "(as application/x-www-form-urlencoded).")
    fields: KeyValues = Field(default_factory=list, json_schema_extra={"widget": "key_value"})


class MultipartFile(_Strict):
    model_config = ConfigDict(extra="forbid", title="File")

    name: str = Field(min_length=1, description="The form field that carries the file, e.g. upload.")
    filename: str = Field("file", min_length=1, description="The file name the server sees, e.g. report.pdf.")
    content: str = Field("", description="The file's content: text typed here, or an expression reading an "
                         "item's field, e.g. {{ item.pdf }}.")
    encoding: Literal["text", "base64"] = Field(
        "text", description="How the content above is written: as plain text, or as base64 (a file from another node).",
        json_schema_extra={"enum_labels": ["plain text", "base64"]})
    content_type: str = Field("application/octet-stream", description="The file's media type, e.g. application/pdf.")


class MultipartBody(_Strict):
    type: Literal["multipart"] = Field(title="Form with files", description="Send fields and files as a form "
                                       "upload (as multipart/form-data).")
    fields: KeyValues = Field(default_factory=list, json_schema_extra={"widget": "key_value"})
    files: list[MultipartFile] = Field(default_factory=list, description="Files to upload.")


class RawBody(_Strict):
    type: Literal["raw"] = Field(title="Text", description="Send text as it is, with the content type you give.")
    text: str = Field("", description="The text to send, e.g. <order id=\"7\"/>.",
                      json_schema_extra={"widget": "textarea"})
    content_type: str = Field("text/plain", min_length=1, description="The text's media type, e.g. application/xml.")


Body = Annotated[NoBody | JsonBody | FormBody | MultipartBody | RawBody, Field(discriminator="type")]


class NoPages(_Strict):
    type: Annotated[Literal["none"], Field(title="Only one page", description="One request per item.")] = "none"


class _Pages(_Strict):
    records: str = Field("", description="Where the list of records is in each answer, e.g. data or results.items "
                         "(a dot goes one level down); empty: the answer itself is the list.")
    max_pages: int = Field(100, ge=1, le=10_000, description="Stop after this many pages at most.")
    max_records: int | None = Field(None, ge=1, description="Stop once this many records are read (empty: no limit); "
                                    "no further page is asked for.")
    each_page: str | None = Field(
        None, title="Hand each page on as it arrives: run this flow for each page",
        description="A flow that starts with 'When called by another flow', e.g. Save one page: it runs once for "
        "each page, with the page's records as its items, while the next page is being read, one page after the "
        "other. A page whose flow fails stops the reading. Empty: the records are passed on together once the last "
        "page is read.", json_schema_extra={"widget": "flow", "expressions": False})
    keep_records: bool = Field(
        False, title="Also pass every record on at the end",
        description="With a flow for each page: also keep every record and pass them all on once the last page is "
        "read (they are held in memory until then). Off: the pages are not kept, and one item per page is passed "
        "on, with its number and how many records it had.", json_schema_extra={"expressions": False})


class NextLink(_Pages):
    type: Literal["next_link"] = Field(
        title="A link to the next page",
        description="Each answer says where the next page is: a field in the answer (Next field below) or the Link "
        "header.")
    next_field: str = Field("", description="Where the next page's address is in each answer, e.g. next or "
                            "links.next; empty: the Link header.")


class PageNumber(_Pages):
    type: Literal["page"] = Field(
        title="Numbered pages", description="Pages are numbered: ?page=1, 2, 3 ... until a page has no records.")
    parameter: str = Field("page", min_length=1, description="The name of the page number in the address, e.g. page.")
    first: int = Field(1, ge=0, description="The number of the first page, e.g. 1 (some APIs start at 0).")


class Offset(_Pages):
    type: Literal["offset"] = Field(
        title="Counted records",
        description="Records are counted: ?offset=0&limit=100, then offset=100 ... until a page has no records.")
    parameter: str = Field("offset", min_length=1, description="The name of the offset in the address, e.g. offset.")
    limit_parameter: str = Field("limit", min_length=1,
                                 description="The name of the page size in the address, e.g. limit.")
    limit: int = Field(100, ge=1, le=10_000, description="How many records to ask for per page, e.g. 100.")


class Cursor(_Pages):
    type: Literal["cursor"] = Field(
        title="A cursor",
        description="Each answer gives a cursor for the next page (?cursor=...), until it gives none.")
    parameter: str = Field("cursor", min_length=1, description="The name of the cursor in the address, e.g. cursor.")
    cursor_field: str = Field(min_length=1, description="Where the next cursor is in each answer, e.g. "
                              "meta.next_cursor.")


Pagination = Annotated[NoPages | NextLink | PageNumber | Offset | Cursor, Field(discriminator="type")]


class HttpConfig(_Strict):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = Field(
        "GET", description="What the request does: GET reads, POST sends something new, PUT or PATCH change, DELETE "
        "removes. The API's documentation says which to use.", json_schema_extra={"widget": "select"})
    url: str = Field(description="The address to call, starting with http:// or https://, e.g. "
                                 "https://api.example.com/users/{{ item.id }}.", json_schema_extra={"widget": "url"})
    query: KeyValues = Field(default_factory=list, description="Values added to the address after ?, one line "
                             "each, e.g. page and 2.",
                             json_schema_extra={"widget": "key_value"})
    headers: KeyValues = Field(default_factory=list, description="Headers sent with the request, one line each, "
                               "e.g. Accept and application/json.",
                               json_schema_extra={"widget": "key_value"})
    body: Body = Field(default_factory=lambda: NoBody(), json_schema_extra={"widget": "union"},
                       description="What to send with the request: nothing, JSON data, a form, a form with files, "
                       "or text.")
    credential: str | None = Field(None, description="Credential to sign the requests with: an API key, a bearer "
                                   "token, basic auth (user, password), OAuth2 (Flowboard fetches and renews the "
                                   "token), or a header, query parameter or cookie. It is sent only to the URL's "
                                   "own site, never after a redirect to another one, and its secrets never reach "
                                   "the output.",
                                   json_schema_extra={"widget": "credential", "credential_types": HTTP_CREDENTIALS})
    timeout: float = Field(30, gt=0, le=3600, description="How many seconds to wait for the whole answer "
                           "before the node fails, e.g. 30.")
    response_format: Literal["auto", "json", "text", "file", "base64"] = Field(
        "auto", description="How to read the answer. Automatic: JSON when the server says it is JSON, a file for a "
        "PDF, an image or other bytes (base64 text in nodes made before files existed), else text.",
        json_schema_extra={"widget": "select", "enum_labels": ["automatic", "JSON", "text", "file", "base64 text"]})
    output: Literal["full", "body"] = Field(
        "full", description="What each output item holds: the status, headers and body of the answer, or only "
        "the body (its fields become the item's fields).",
        json_schema_extra={"widget": "select", "enum_labels": ["status, headers and body", "only the body"]})
    non_2xx: Literal["error", "data"] = Field(
        "error", title="When the server answers with an error",
        description="What to do with an error answer (status 400 or more, such as 404 not found): stop the node "
        "with an error, or pass the answer on as an item.",
        json_schema_extra={"widget": "select", "enum_labels": ["stop with an error", "pass it on as an item"]})
    follow_redirects: bool = Field(True, description="When the server says the address has moved, go to "
                                  "the new one (at most 20 times). Off: that answer is the result.")
    concurrency: int = Field(10, ge=1, le=100, description="How many requests to send at the same time, e.g. "
                             "10 (one request per item; the output keeps the items' order).")
    pagination: Pagination = Field(default_factory=lambda: NoPages(), json_schema_extra={"widget": "union"},
                                   description="Fetch every page of a list: each record becomes an item, or each page "
                                   "goes through a flow as it arrives.")
    retries: int = Field(
        0, ge=0, le=10, title="Tries again when busy",
        description="Tries again this many times when the server is busy: an answer 429 (too many requests) or 503 "
        "(unavailable), and for GET, HEAD, OPTIONS, PUT and DELETE also 500, 502 and 504. It waits as the server's "
        "Retry-After header says, else 1, 2, 4 ... seconds. 0: never.")
    retry_max_wait: float = Field(
        60, ge=0, le=3600, title="Longest wait between tries (seconds)",
        description="Longest wait before trying again, in seconds. A server asking to wait longer gets its answer "
        "passed on (or the node fails).")
    idempotency_key: bool = Field(
        True, title="Send a repeat-safe key",
        description="With POST, PUT, PATCH and DELETE, send a key that stays the same for each item of this step, "
        "however often it is sent, so a service that knows the key does the request once: when Flowboard or a "
        "worker stops while the request is on its way, the run sends it again on resuming and the service "
        "recognises it. Off: a request interrupted by such a stop is not sent again; the step fails and asks you "
        "to check the service. Not sent when pages are fetched.")
    idempotency_header: str = Field(
        "Idempotency-Key", min_length=1, title="Header of the repeat-safe key",
        description="The header that carries the key, e.g. Idempotency-Key (as Stripe and Adyen name it) or "
        "PayPal-Request-Id (PayPal); the service's documentation says which. A header of that name set above is "
        "sent instead.")
    proxy: str | None = Field(None, description="Send the requests through this proxy, e.g. "
                              "http://proxy.example.com:3128 (empty: no proxy).")
    ca_certificate: str | None = Field(
        None, title="Trusted certificate authority (PEM)", json_schema_extra={"widget": "textarea"},
        description="A certificate authority to trust (PEM text, starting with -----BEGIN CERTIFICATE-----), for a "
        "server whose certificate your organisation signed itself.")
    verify_tls: bool = Field(
        True, title="Check the server's certificate",
        description="Check the server's certificate (https). Switch off only to try out a test server: without the "
        "check, anyone on the way can read and change the requests and answers, credentials included.")

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is None or "{{" in value or "{%" in value:
            return value
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https", "socks5") or not parts.hostname:
            raise ValueError(f"must be a proxy address such as http://proxy.example.com:3128 (got "
                             f"{_shorten(value, 60)!r})")
        return value

    @field_validator("ca_certificate")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        value = (value or "").strip() or None
        if value is not None and "{{" not in value and "-----BEGIN CERTIFICATE-----" not in value:
            raise ValueError("must be a certificate in PEM form: text starting with -----BEGIN CERTIFICATE-----")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        if "{{" in value or "{%" in value:
            return value  # checked again once the expression is evaluated
        parts = urlsplit(value)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"must start with http:// or https:// (got {_shorten(value, 60)!r})")
        if not parts.hostname:
            raise ValueError(f"has no host name (got {_shorten(value, 60)!r})")
        return value


class HttpRequest(NodeType):
    """Calls an HTTP API once for every input item, several at a time, and returns one item per answer.

    Every field may hold expressions, evaluated for each item: `https://api.example.com/users/{{ item.id }}`. All
    expressions are evaluated before the first request is sent, so a bad one stops the node before any side effect.

    Output per item (`output: full`): `{"status": 200, "headers": {...}, "body": ...}`, the body parsed as JSON when
    the answer's content type says so, text otherwise (base64 text for bytes that are not text: version 2 keeps
    those as files; `response_format: file` does so here too). With
    `output: body` the answer's JSON object is the item. A status of 400 or more fails the node with the status,
    method, URL and the start of the answer, unless `non_2xx` is `data`. Secrets of the credential are blanked out
    (`***`) wherever they would appear in the output or in an error, even when the server echoes them back.

    Lists that come in pages are fetched page after page (`pagination`) until the last or a limit, the count so far
    showing on the canvas as they come; the records are passed on together when the last page is read. To hand each
    page on as it arrives, name a flow in `each_page`: it runs once per page with the page's records (a recorded
    child run, as Loop over items does) while the next page is read, and the pages are not kept (`keep_records`
    keeps them)."""

    type = "http.request"
    common = True
    title = "HTTP request"
    category = Category.integration
    icon = "http"
    description = "Call a web address (an API) once for every item and pass on its answer, e.g. to look up a customer."
    Config = HttpConfig
    side_effects = True
    paste_import = PasteImport("Import from cURL", "Paste a curl command, e.g. curl -X POST https://api.example.com/"
                               "users -H 'Content-Type: application/json' -d '{\"name\": \"Ada\"}'",
                               lambda text: from_curl(text))

    @classmethod
    def retry_safe_with(cls, config: Mapping[str, Any]) -> bool:
        """Reads, PUT and DELETE (the same request twice does what it does once), and calls that send a repeat-safe
        key are safe to send again."""
        method = config.get("method", "GET")
        pages = config.get("pagination")
        if isinstance(pages, Mapping) and pages.get("each_page"):
            return False  # the flow run for each page may change the world: its pages must not run twice
        if method in ("GET", "HEAD", "OPTIONS", "PUT", "DELETE"):
            return True
        return config.get("idempotency_key", True) is True and method in _KEYED \
            and (not isinstance(pages, Mapping) or pages.get("type", "none") == "none")

    @classmethod
    def target(cls, config: Mapping[str, Any]) -> str:
        pages = config.get("pagination")
        if isinstance(pages, Mapping) and pages.get("each_page"):
            return f"which pages the flow {pages['each_page']!r} was run for (its runs are on the Runs page)"
        url = str(config.get("url") or "")
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        if host and "{" not in host:
            return f"the server {host}"
        return f"the address {_shorten(url, 80)}" if url else "the server it calls"

    @classmethod
    def name_for(cls, config: Mapping[str, Any]) -> str | None:
        url = plain(config.get("url"))
        host = urlsplit(url).hostname if url and "://" in url else None
        if not host:
            return None
        verb = {"GET": "Get from", "POST": "Send to", "PUT": "Update at", "PATCH": "Update at",
                "DELETE": "Delete at"}.get(str(config.get("method") or "GET"), "Call")
        return f"{verb} {host}"

    #: What `automatic` makes of an answer that is not text: version 1 kept it as base64 text in the item; from
    #: version 2 it is a file (old flows keep running on version 1 as they were written).
    binary_answers = "base64"

    async def run(self, ctx: Context, config: HttpConfig, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        configs: list[HttpConfig] = [cfg for _, _, cfg in ctx.each(items)] if items else [config]
        if self.binary_answers == "base64":
            configs = [cfg.model_copy(update={"response_format": _AUTO_BASE64}) if cfg.response_format == "auto"
                       else cfg for cfg in configs]
        auths: dict[str, _Auth] = {}
        for index, cfg in enumerate(configs):
            if cfg.credential and cfg.credential not in auths:
                auths[cfg.credential] = await _Auth.load(ctx, cfg.credential, index)
        if config.proxy or config.ca_certificate or not config.verify_tls:
            async with _own_client(ctx, config) as client:
                return await self._requests(ctx, config, configs, auths, client)
        return await self._requests(ctx, config, configs, auths, ctx.http)

    async def _requests(self, ctx: Context, config: HttpConfig, configs: list[HttpConfig], auths: dict[str, _Auth],
                        client: httpx.AsyncClient) -> Outputs:
        files = ctx.files
        if not isinstance(config.pagination, NoPages):
            if config.pagination.each_page:
                return await _each_page(ctx, config.pagination.each_page, config.pagination.keep_records, client,
                                        configs, auths)
            so_far: list[Item] = []  # every record read, as the pages come (what the views show while it runs)
            read = [0]

            async def pages(index: int) -> list[Item]:
                cfg = configs[index]
                records: list[Item] = []
                async for page in _pages(client, cfg, auths[cfg.credential] if cfg.credential else None, index,
                                         files):
                    records += page
                    so_far.extend(page)
                    read[0] += 1
                    ctx.progress(len(so_far), f"{_count(read[0], 'page')} read, {_count(len(so_far), 'record')} so "
                                 "far", so_far)
                return records

            return [record for records in await run_bounded(len(configs), pages, config.concurrency)
                    for record in records]

        async def one(index: int) -> Item:
            cfg = configs[index]
            key = (cfg.idempotency_header, ctx.idempotency_key(index)) \
                if cfg.idempotency_key and cfg.method in _KEYED else None
            return await _request(client, cfg, auths[cfg.credential] if cfg.credential else None, index, files, key)

        return await run_bounded(len(configs), one, config.concurrency)


@contextlib.asynccontextmanager
async def _own_client(ctx: Context, config: HttpConfig) -> AsyncIterator[httpx.AsyncClient]:
    """A client of this node's own for a proxy or TLS settings (the shared one has neither), closed after the node."""
    verify: bool | ssl.SSLContext = True
    if not config.verify_tls:
        verify = False
        ctx.log.warning("HTTP request %r does not check the server's certificate (verify_tls is off): anyone on the "
                        "way can read and change its requests and answers", ctx.node_name)
    elif config.ca_certificate:
        try:
            verify = ssl.create_default_context(cadata=config.ca_certificate)
        except (ssl.SSLError, ValueError):
            raise NodeError("ca_certificate is not a certificate that can be read (PEM text from -----BEGIN "
                            "CERTIFICATE----- to -----END CERTIFICATE-----)", field="ca_certificate") from None
    try:
        client = httpx.AsyncClient(proxy=config.proxy or None, verify=verify, follow_redirects=False,
                                   timeout=config.timeout, trust_env=False)
    except (ValueError, httpx.InvalidURL) as exc:
        raise NodeError(f"proxy: {exc}", field="proxy") from None
    try:
        yield client
    finally:
        await client.aclose()


def from_curl(text: str) -> PastedConfig:
    """The node's config from a curl command (`flowboard.curl`); a login in it becomes a credential to save, never a
    value in the flow. Raises ValueError (CurlError) in plain words."""
    req = parse_curl(text)
    notes = [f"skipped {what}: it has no place in this node" for what in req.skipped]
    config: dict[str, Any] = {"method": req.method, "url": req.url}
    body_has_type = req.body in ("json", "raw", "form")
    headers = [{"name": k, "value": v} for k, v in req.headers
               if not (body_has_type and k.lower() == "content-type")]
    if headers:
        config["headers"] = headers
    if req.body == "json":
        try:
            config["body"] = {"type": "json", "data": json.loads(req.data)}
        except ValueError:
            config["body"] = {"type": "raw", "text": req.data, "content_type": req.content_type or "application/json"}
            notes.append("the JSON body is not valid JSON: it is sent as it is (raw)")
    elif req.body == "form":
        config["body"] = {"type": "form", "fields": [{"name": k, "value": v} for k, v in req.fields]}
    elif req.body == "raw":
        config["body"] = {"type": "raw", "text": req.data, "content_type": req.content_type}
    elif req.body == "multipart":
        files = [{"name": name, "filename": path.rsplit("/", 1)[-1] or "file", "content": ""}
                 for name, path in req.files]
        config["body"] = {"type": "multipart", "fields": [{"name": k, "value": v} for k, v in req.fields],
                          "files": files}
        notes += [f"the file {path} is not here: put its content under Body, files" for _, path in req.files]
    if req.insecure:
        config["verify_tls"] = False
    if req.proxy:
        config["proxy"] = req.proxy if "://" in req.proxy else f"http://{req.proxy}"
    if req.timeout:
        config["timeout"] = req.timeout
    host = urlsplit(req.url).hostname or "API"
    credential: tuple[str, str, dict[str, Any]] | None = None
    if req.bearer is not None:
        credential = (f"{host} token", "bearer", {"token": req.bearer})
    elif req.user is not None:
        credential = (f"{host} login", "basic", {"user": req.user, "password": req.password or ""})
        if req.password is None:
            notes.append("the command has a user but no password: add it to the credential")
    try:
        HttpConfig.model_validate(config)  # anything the node would refuse shows now
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"the command's {where} does not fit this node: {first['msg']}") from None
    return PastedConfig(config=config, credential=credential, notes=notes)


class HttpRequestFiles(HttpRequest):
    """Calls an HTTP API once for every input item, as version 1 does, and keeps an answer that is not text (a PDF,
    an image) as a file: the body is a file reference with its name, type and size, for Write file, File to items
    or the data view, instead of base64 text in the item.

    Everything else is as in version 1: every field may hold expressions, evaluated for each item; output per item
    (`output: full`) is `{"status": 200, "headers": {...}, "body": ...}`; a status of 400 or more fails the node
    unless `non_2xx` is `data`; secrets of the credential are blanked out (`***`) wherever they would appear; lists
    that come in pages are fetched page after page (`pagination`) until the last or a limit, the count so far showing
    on the canvas; with a flow named in `each_page`, each page runs through that flow as it arrives, while the next
    is read, and the pages are not kept."""

    type = "http.request"
    version = 2
    binary_answers = "file"


async def run_bounded(count: int, fn: Callable[[int], Awaitable[T]], concurrency: int) -> list[T]:
    """`fn(0) … fn(count-1)` with at most `concurrency` at once, results in index order. The first failure cancels
    the rest and is raised (the lowest index if several failed together). No task at all for a single call."""
    results: list[Any] = [None] * count
    if count <= 1 or concurrency <= 1:
        for index in range(count):
            results[index] = await fn(index)
        return results
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:  # one shared iterator: each worker takes the next index when it is free
            results[index] = await fn(index)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, count))]
    try:
        done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    errors = [exc for task in done if (exc := task.exception()) is not None]
    if errors:
        raise min(errors, key=lambda e: getattr(e, "item_index", None) or 0)
    return results


# -- pages --------------------------------------------------------------------------------------------------------


async def _pages(client: httpx.AsyncClient, cfg: HttpConfig, auth: _Auth | None, index: int,
                 files: Files) -> AsyncIterator[list[Item]]:
    """Every page of a list, following the pagination style, each as its records (one item per record; an empty
    page is not handed out), one page at a time: the next is asked for only when the caller wants it. The one place
    that knows how pages follow each other."""
    pages = cfg.pagination
    assert not isinstance(pages, NoPages)
    count = 0
    url, query = cfg.url, list(_pairs(cfg.query))
    number = pages.first if isinstance(pages, PageNumber) else 0
    seen: set[str] = set()
    for _ in range(pages.max_pages):
        page_query = list(query)
        if isinstance(pages, PageNumber):
            page_query = _set(page_query, pages.parameter, str(number))
        elif isinstance(pages, Offset):
            page_query = _set(_set(page_query, pages.parameter, str(number)), pages.limit_parameter, str(pages.limit))
        page_cfg = cfg.model_copy(update={"url": url, "query": [Pair(name=k, value=v) for k, v in page_query],
                                          "output": "full", "response_format": "json"})
        answer = await _request(client, page_cfg, auth, index, files)
        body = answer["body"]
        found = get_path(body, pages.records, None) if pages.records else body
        if not isinstance(found, list):
            where = f"at {pages.records!r}" if pages.records else "(the answer itself)"
            raise _error(auth, f"page {len(seen) + 1} of {_display_url(cfg.url)} has no list of records {where}; set "
                         "where the records are in the pagination settings", index)
        records = [r if isinstance(r, dict) else {"value": r} for r in found]
        seen.add(f"{url}?{page_query}")
        following: Any = None  # where the next page is, or None: this was the last
        if pages.max_records is not None and count + len(records) >= pages.max_records:
            del records[pages.max_records - count:]
        elif isinstance(pages, (PageNumber, Offset)):
            if records:
                following = number + (1 if isinstance(pages, PageNumber) else pages.limit)
        elif isinstance(pages, Cursor):
            cursor = get_path(body, pages.cursor_field, None)
            if cursor not in (None, ""):
                following = _set(query, pages.parameter, str(cursor))
        else:
            link = get_path(body, pages.next_field, None) if pages.next_field else _link_next(answer["headers"])
            if link:
                following = str(httpx.URL(url).join(str(link)))
                if f"{following}?{[]}" in seen:
                    following = None  # a server that points back to a page already read
        del answer, body, found  # only this page's records stay while the caller works on them
        count += len(records)
        if records:
            yield records
        if following is None:
            return
        if isinstance(pages, (PageNumber, Offset)):
            number = following
        elif isinstance(pages, Cursor):
            query = following
        else:
            url, query = following, []


async def _each_page(ctx: Context, flow: str, keep: bool, client: httpx.AsyncClient, configs: list[HttpConfig],
                     auths: dict[str, _Auth]) -> Items:
    """Pagination handing each page on as it arrives: the flow `flow` runs once per page with its records, as a
    recorded child run (Call flow's machinery), one page after the other, in order, while the next page is read.
    At most three pages are in memory (one in the flow, one read, one arriving) unless `keep`. A page that cannot
    be read, or whose flow fails, stops the reading: the pages read before it still go through the flow, then the
    node fails with that page's number. Cancelling the node cancels the flow running and the reading."""
    kept: list[Item] = []
    out: list[Item] = []
    number = handed = 0
    for index, cfg in enumerate(configs):  # input items one after the other: their pages stay in order
        pages = _pages(client, cfg, auths[cfg.credential] if cfg.credential else None, index, ctx.files)
        async with contextlib.aclosing(_read_ahead(pages)) as ahead:
            while True:
                try:
                    page = await anext(ahead)
                except StopAsyncIteration:
                    break
                except NodeError as exc:
                    raise NodeError(f"page {number + 1} could not be read, so no further page was: {exc}",
                                    item_index=exc.item_index, data=exc.data) from None
                number += 1
                where = f"page {number} (records {handed + 1:,} to {handed + len(page):,})"
                if keep:
                    kept += page  # (passed on only if every page's flow succeeds)
                ctx.progress(handed + len(page), f"{where}: running {flow!r}", kept if keep else page)
                try:
                    await ctx.flows.call(flow, page)
                except Suspend:
                    raise NodeError(f"{where}: the flow {flow!r} waits (for an approval or a long wait), and a flow "
                                    "run for each page must finish by itself. Put the waiting in a flow after this "
                                    "node.") from None
                except NodeError as exc:
                    raise NodeError(f"{where}: {exc}; no further page was handed on", item_index=index,
                                    data=exc.data) from None
                handed += len(page)
                if not keep:
                    out.append(ctx.paired({"page": number, "records": len(page)}, index))
                ctx.progress(handed, f"{_count(number, 'page')} handed on, {_count(handed, 'record')} so far",
                             kept if keep else page)
                del page
    return kept if keep else out


async def _read_ahead(pages: AsyncIterator[T]) -> AsyncIterator[T]:
    """The pages of `pages`, asking for the next one as soon as one is handed out, so that it is read while the
    caller works on this one (one page ahead, no more). Closing this closes `pages`, cancelling a read under way."""

    async def following() -> tuple[bool, T | None]:
        try:
            return True, await anext(pages)
        except StopAsyncIteration:
            return False, None

    reading = asyncio.ensure_future(following())
    try:
        while True:
            more, page = await reading
            if not more:
                return
            reading = asyncio.ensure_future(following())
            yield page  # type: ignore[misc]
    finally:
        if not reading.done():
            reading.cancel()
        with contextlib.suppress(BaseException):
            await reading
        await pages.aclose()  # type: ignore[attr-defined]


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}" + ("" if n == 1 else "s")


def _set(query: list[tuple[str, str]], name: str, value: str) -> list[tuple[str, str]]:
    return [(k, v) for k, v in query if k != name] + [(name, value)]


def _link_next(headers: dict[str, str]) -> str | None:
    """The rel="next" address of a Link header: `<https://api/x?page=2>; rel="next", <...>; rel="last"`."""
    link = next((v for k, v in headers.items() if k.lower() == "link"), "")
    for part in link.split(","):
        target, _, params = part.partition(";")
        if "next" in [p.split("=", 1)[1].strip().strip('"') for p in params.split(";") if "=" in p
                      and p.split("=", 1)[0].strip().lower() == "rel"]:
            return target.strip().strip("<>")
    return None


# -- one request --------------------------------------------------------------------------------------------------


async def _request(client: httpx.AsyncClient, cfg: HttpConfig, auth: _Auth | None, index: int,
                   files: Files, key: tuple[str, str] | None = None) -> Item:
    """One request (with its tries when the server is busy); `key`: the repeat-safe key's header and value, sent
    unless the configured headers name that header already."""
    headers = _pairs(cfg.headers)
    if key is not None:
        _default_header(headers, *key)
    kwargs: dict[str, Any] = {}
    body = cfg.body
    if body.type == "json":
        kwargs["content"] = _dump_json(body.data)
        _default_header(headers, "Content-Type", "application/json")
    elif body.type == "form":
        kwargs["content"] = urlencode(_pairs(body.fields)).encode()
        _default_header(headers, "Content-Type", "application/x-www-form-urlencoded")
    elif body.type == "multipart":
        files: list[tuple[str, Any]] = [(name, (None, value.encode())) for name, value in _pairs(body.fields)]
        for f in body.files:
            content = _b64decode(f.content, index) if f.encoding == "base64" else f.content.encode()
            files.append((f.name, (f.filename, content, f.content_type)))
        if files:
            kwargs["files"] = files
    elif body.type == "raw":
        kwargs["content"] = body.text.encode()
        _default_header(headers, "Content-Type", body.content_type)
    query = _pairs(cfg.query)
    method = cfg.method
    try:
        url = _parse_url(cfg.url)
        if query:  # added to the URL's own query (httpx's `params=` would replace it)
            url = url.copy_merge_params(tuple(query))
    except httpx.InvalidURL as exc:
        raise _error(auth, f"url: {exc} ({_display_url(cfg.url)})", index) from None
    if url.userinfo:  # user:password@ in the URL: sent as basic auth (the aiohttp transport refuses it in the URL)
        if auth is None:
            auth = _Auth.basic(url.username, url.password)
        url = url.copy_with(username=None, password=None)
    for attempt in range(cfg.retries + 1):
        try:
            async with asyncio.timeout(cfg.timeout):
                response = await _send(client, method, url, headers, kwargs, cfg, auth)
        except TimeoutError:
            raise _error(auth, f"{method} {_display_url(cfg.url)}: no answer within {cfg.timeout:g} s", index) \
                from None
        except httpx.TooManyRedirects:
            raise _error(auth, f"{method} {_display_url(cfg.url)}: more than {MAX_REDIRECTS} redirects", index) \
                from None
        except (httpx.HTTPError, OSError) as exc:
            raise _error(auth, _transport_message(exc, method, _display_url(cfg.url), cfg.timeout), index) from None
        wait = _retry_wait(response, method, attempt, cfg)
        if wait is None:
            break
        await asyncio.sleep(wait)
    status = response.status_code
    if not (200 <= status < 300 or (300 <= status < 400 and not cfg.follow_redirects)) and cfg.non_2xx == "error":
        params = response.headers.get("content-type", "").partition(";")[2]
        excerpt = " ".join(_decode(response.content[:400], params).split())
        reason = f" {response.reason_phrase}" if response.reason_phrase else ""
        message = f"{method} {_display_url(cfg.url)} answered {status}{reason}"
        raise _error(auth, message + (f": {_shorten(excerpt, 200)}" if excerpt else ""), index, data={"status": status})
    payload = _read_body(response, cfg.response_format, method, cfg.url, index)
    is_file = isinstance(payload, _Binary)
    if isinstance(payload, _Binary):
        payload = await files.put(payload.content, _file_name(response), payload.media or None)
    if cfg.output == "body":
        item: Item = payload if isinstance(payload, dict) and not is_file else {"body": payload}
    else:
        item = {"status": status, "headers": dict(response.headers), "body": payload}
    return auth.redact(item) if auth is not None else item


def _parse_url(text: str) -> httpx.URL:
    """httpx.URL(text), remembered: an httpx URL is immutable, and a node calls the same URL for many items (parsing
    was a tenth of a fan-out call's time)."""
    url = _URLS.get(text)
    if url is None:
        url = httpx.URL(text)
        if len(_URLS) >= 512:
            _URLS.clear()
        _URLS[text] = url
    return url


_URLS: dict[str, httpx.URL] = {}
MAX_REDIRECTS = 20
_BUSY = frozenset({429, 503})  # the server did not handle the request: safe to send again, whatever the method
_FAILED = frozenset({500, 502, 504})  # it may have: only for methods that may be repeated (RFC 9110 9.2.2)
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def _retry_wait(response: httpx.Response, method: str, attempt: int, cfg: HttpConfig) -> float | None:
    """Seconds to wait before trying again, or None to take this answer: the server's Retry-After (seconds or an
    HTTP date), else 1, 2, 4 ... seconds; None past `retries` tries or when it asks for more than `retry_max_wait`."""
    status = response.status_code
    if attempt >= cfg.retries or not (status in _BUSY or (status in _FAILED and method in _IDEMPOTENT)):
        return None
    wait = retry_after(response.headers.get("retry-after"))
    if wait is None:
        wait = float(2 ** attempt)
    return None if wait > cfg.retry_max_wait else wait


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """A Retry-After header in seconds from now: `120` or `Fri, 31 Dec 2027 23:59:59 GMT` (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-encoding", "transfer-encoding"})
_ORIGIN_BOUND = frozenset({"authorization", "cookie", "proxy-authorization"})


async def _send(client: httpx.AsyncClient, method: str, url: httpx.URL, headers: list[tuple[str, str]],
                kwargs: dict[str, Any], cfg: HttpConfig, auth: _Auth | None) -> httpx.Response:
    """Send the request, following redirects here rather than in httpx, because credentials belong to an origin:
    the credential (its header, query parameter or cookie) goes only to the origin of the configured URL, and once a
    redirect leaves that origin it is dropped for good, with any Authorization and Cookie header. (httpx itself
    forwards every custom header, such as X-Api-Key, to wherever a server redirects it.)"""
    origin = _origin(url)
    for hop in range(MAX_REDIRECTS + 1):
        sent_url, sent_headers = auth.apply(url, headers) if auth is not None else (url, headers)
        response = await client.request(method, sent_url, headers=sent_headers or None, timeout=cfg.timeout,
                                        follow_redirects=False, **kwargs)
        location = response.headers.get("location")
        if not cfg.follow_redirects or location is None or response.status_code not in _REDIRECTS:
            return response
        if hop == MAX_REDIRECTS:
            raise httpx.TooManyRedirects("too many redirects", request=response.request)
        try:
            url = url.join(location)
        except httpx.InvalidURL:
            return response  # a Location that is no URL: the 3xx is the answer
        if url.scheme not in ("http", "https"):
            return response
        status = response.status_code
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"  # as browsers do: the body is not sent again
            kwargs = {}
            headers = [(k, v) for k, v in headers if k.lower() not in _BODY_HEADERS]
        if _origin(url) != origin:
            auth = None
            headers = [(k, v) for k, v in headers if k.lower() not in _ORIGIN_BOUND]
    raise AssertionError("unreachable")


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Methods that send the repeat-safe key (`idempotency_key`)
_KEYED = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


class _Binary:
    """An answer's bytes that become a file (the node keeps them with ctx.files)."""

    def __init__(self, content: bytes, media: str):
        self.content = content
        self.media = media


def _file_name(response: httpx.Response) -> str:
    """The file's name: the Content-Disposition's filename, else the URL's last path segment, else 'download'."""
    disposition = response.headers.get("content-disposition", "")
    if disposition:
        message = email.message.Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
        if name:
            return name.replace("/", "_").replace("\\", "_").strip() or "download"
    return response.url.path.rstrip("/").rpartition("/")[2] or "download"


_AUTO_BASE64 = "auto, base64 for bytes"  # version 1's automatic: what is not text becomes base64 text


def _read_body(response: httpx.Response, fmt: str, method: str, url: str, index: int) -> Any:
    content = response.content
    if fmt == "base64":
        return base64.b64encode(content).decode("ascii")
    content_type = response.headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if fmt == "file":
        return _Binary(content, media)
    if fmt == "text":
        return _decode(content, params)
    if fmt == "json" or media == "application/json" or media.endswith("+json"):
        if not content.strip():
            return None
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            if fmt == "json":
                start = _shorten(" ".join(_decode(content[:400], params).split()), 80)
                raise NodeError(f"{method} {_display_url(url)}: the answer is not JSON ({start!r})",
                                item_index=index) from None
            return _decode(content, params)
    if not content:
        return ""
    if media.startswith("text/") or any(word in media for word in _TEXT_WORDS):
        return _decode(content, params)
    if not media.startswith(_BINARY_PREFIXES) and media not in _BINARY_TYPES:
        try:  # no or an unknown content type: text if it decodes
            return content.decode(_charset(params))
        except (UnicodeDecodeError, LookupError):
            pass
    if fmt == _AUTO_BASE64:
        return base64.b64encode(content).decode("ascii")
    return _Binary(content, media)


def _decode(content: bytes, params: str) -> str:
    """Bytes to text by the content type's charset (UTF-8 by default), bad bytes replaced. (httpx's `.text` costs
    more than the rest of reading an answer.)"""
    try:
        return content.decode(_charset(params), errors="replace")
    except LookupError:
        return content.decode("utf-8", errors="replace")


def _charset(params: str) -> str:
    if "charset" in params.lower():
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip(" \t\"'"):
                return value.strip(" \t\"'")
    return "utf-8"


_TEXT_WORDS = ("xml", "javascript", "json", "yaml", "csv", "html", "x-www-form-urlencoded", "graphql", "ecmascript")
_BINARY_PREFIXES = ("image/", "audio/", "video/", "font/")
_BINARY_TYPES = frozenset({"application/octet-stream", "application/pdf", "application/zip", "application/gzip",
                           "application/x-gzip", "application/x-tar", "application/wasm", "application/protobuf",
                           "application/x-protobuf", "application/msgpack", "application/vnd.ms-excel"})


def _transport_message(exc: BaseException, method: str, shown: str, timeout: float) -> str:
    """Plain words for what went wrong below HTTP. The aiohttp transport reports a refused connection as
    httpx.ConnectTimeout, so the cause chain decides, not the httpx class."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    for err in chain:
        if isinstance(err, TimeoutError | httpx.TimeoutException):  # (ctx.http's own connections raise httpx's)
            return f"{method} {shown}: no answer within {timeout:g} s"
    for err in chain:
        if isinstance(err, ConnectionRefusedError) or (isinstance(err, OSError) and err.errno == errno.ECONNREFUSED):
            return f"could not connect to {shown}: connection refused"
        if isinstance(err, socket.gaierror):
            return f"could not connect to {shown}: the host name {urlsplit(shown).hostname!r} was not found"
    for err in reversed(chain):
        if isinstance(err, OSError) and err.strerror:
            return f"could not connect to {shown}: {err.strerror.lower()}"
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return f"could not connect to {shown}: {exc or type(exc).__name__}"
    return f"{method} {shown}: the connection failed ({_shorten(str(exc) or type(exc).__name__, 200)})"


# -- credentials --------------------------------------------------------------------------------------------------


_SECRET_FIELDS = ("token", "password", "value", "access_token", "refresh_token", "client_secret")


class _Auth:
    """One credential: where it goes (a header, a query parameter or a cookie), plus the secret strings to blank out
    of outputs and errors, with the encodings they travel in (URL-encoded, base64)."""

    __slots__ = ("name", "place", "secrets", "value")

    def __init__(self, place: str, name: str, value: str, secrets: list[str]):
        self.place = place  # header | query | cookie
        self.name = name
        self.value = value
        self.secrets = sorted({v for s in secrets for v in secret_forms(s) if len(v) >= 4}, key=len, reverse=True)

    @classmethod
    async def load(cls, ctx: Context, name: str, index: int) -> _Auth:
        try:
            fields = await ctx.credential(name)
        except NodeError as exc:
            exc.field = exc.field or "credential"
            if exc.item_index is None:
                exc.item_index = index
            raise
        kind = str(fields.get("type") or "").lower()
        if not kind:
            kind = "bearer" if "token" in fields else "basic" if "password" in fields else "header"
        secrets = [str(fields[k]) for k in _SECRET_FIELDS if fields.get(k)]
        if kind in ("oauth2_client", "oauth2_code") and fields.get("access_token"):
            token = str(fields["access_token"])
            return cls("header", "Authorization", f"Bearer {token}", secrets)
        if kind == "bearer" and fields.get("token"):
            token = str(fields["token"])
            return cls("header", "Authorization", f"Bearer {token}", secrets)
        if kind == "basic" and (fields.get("user") or fields.get("username")):
            return cls.basic(str(fields.get("user") or fields.get("username")), str(fields.get("password") or ""))
        if kind == "api_key":
            kind = "query" if fields.get("where") == "query" else "header"
        if kind in ("header", "query", "cookie") and fields.get("name") and fields.get("value") is not None:
            return cls(kind, str(fields["name"]), str(fields["value"]), secrets)
        raise NodeError(f"credential {name!r} does not fit an HTTP request: it needs an API key, a bearer token, "
                        "basic auth (user, password), OAuth2, or a header, query parameter or cookie (name, value)",
                        item_index=index, field="credential")

    @classmethod
    def basic(cls, user: str, password: str) -> _Auth:
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return cls("header", "Authorization", f"Basic {encoded}", [password, encoded])

    def apply(self, url: httpx.URL, headers: list[tuple[str, str]]) -> tuple[httpx.URL, list[tuple[str, str]]]:
        """The URL and headers with the credential in its place (replacing a configured one of the same name)."""
        if self.place == "query":
            params = [(k, v) for k, v in url.params.multi_items() if k != self.name] + [(self.name, self.value)]
            return url.copy_with(params=params), headers
        if self.place == "cookie":
            cookies = [c for k, v in headers if k.lower() == "cookie" for c in v.split(";")
                       if c.strip() and c.strip().partition("=")[0] != self.name]
            out = [(k, v) for k, v in headers if k.lower() != "cookie"]
            out.append(("Cookie", "; ".join([*(c.strip() for c in cookies), f"{self.name}={self.value}"])))
            return url, out
        lower = self.name.lower()
        return url, [*((k, v) for k, v in headers if k.lower() != lower), (self.name, self.value)]

    def redact(self, value: Any) -> Any:
        if not self.secrets:
            return value
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, "***")
            return value
        if isinstance(value, dict):
            return {self.redact(k): self.redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.redact(v) for v in value]
        return value


def _error(auth: _Auth | None, message: str, index: int, data: Any = None) -> NodeError:
    if auth is not None:
        message = auth.redact(message)
    return NodeError(message, item_index=index, data=data)


# -- small helpers ------------------------------------------------------------------------------------------------


def _pairs(values: list[Pair] | dict[str, Scalar]) -> list[tuple[str, str]]:
    pairs = values.items() if isinstance(values, dict) else ((p.name, p.value) for p in values)
    return [(name, _text(value)) for name, value in pairs if value is not None]


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _default_header(headers: list[tuple[str, str]], name: str, value: str) -> None:
    lower = name.lower()
    if not any(k.lower() == lower for k, _ in headers):
        headers.append((name, value))


def _dump_json(data: Any) -> bytes:
    try:
        return orjson.dumps(data)
    except TypeError:  # ints beyond 64 bits and the like: the standard library copes
        return json.dumps(data).encode()


def _b64decode(text: str, index: int) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise NodeError("body.files: content is not valid base64", item_index=index, field="body") from None


def _display_url(url: str) -> str:
    """The URL for messages: without a password, at most 200 characters."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    return _shorten(url, 200)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
