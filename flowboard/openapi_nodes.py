"""Node types made from an OpenAPI connector's operations: one ordinary node type per operation (`api.<api>.<op>`),
whose pydantic Config is built with `create_model` from the operation's parameters and request body, so the form,
validation, JSON Schema and docs come from it like any other node's.

The node sends its request through the HTTP request node type (handed over by the registry, never imported), so
credentials, redirects, timeouts, pagination, error messages and the blanking of secrets are the HTTP node's. What
is the connector's own: where each field goes (path, query, header, cookie, body), which credential fields fit the
API's security scheme (an API key named by the scheme, a bearer token, basic auth, OAuth2 client credentials), and
turning the answer into items (a list, or the records of a paginated list, one item per record).
"""

from __future__ import annotations

import hashlib
import keyword
import re
import time
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Optional, Union
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import problems_from_validation
from .openapi import Api, Operation, Scheme
from .sdk import Category, Context, Inputs, Item, NodeError, NodeType, Outputs

#: Credential types (flowboard.credential_types) that fit each kind of security scheme.
SCHEME_CREDENTIALS: dict[str, list[str]] = {
    "api_key": ["api_key", "secret", "header", "query", "cookie"],
    "bearer": ["bearer", "secret", "oauth2_client", "oauth2_code"],
    "basic": ["basic"],
    "oauth2": ["oauth2_client", "oauth2_code", "bearer"],
}
_RESERVED = {"server", "credential", "all_pages", "max_pages", "each_page", "keep_records", "timeout"} \
    | set(dir(BaseModel))
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


def type_id(api: str, op: str) -> str:
    return f"api.{api}.{op}"


class OperationNode(NodeType):
    """Base of the generated node types; the class attributes below are set per operation."""

    api: ClassVar[Api]
    op: ClassVar[Operation]
    http: ClassVar[type[NodeType]]
    #: config field -> (where it goes: path, query, header, cookie, body, body_whole; the API's name for it)
    places: ClassVar[dict[str, tuple[str, str]]]
    group: ClassVar[str] = ""

    @classmethod
    def retry_safe_with(cls, config: Mapping[str, Any]) -> bool:
        """As the HTTP request node: a flow run for each page must not run twice."""
        if config.get("each_page") and config.get("all_pages", True):
            return False
        return cls.retry_safe

    @classmethod
    def target(cls, config: Mapping[str, Any]) -> str:
        if config.get("each_page") and config.get("all_pages", True):
            return f"which pages the flow {config['each_page']!r} was run for (its runs are on the Runs page)"
        return f"{cls.api.title} at {config.get('server') or cls.api.server or 'its server'}"

    async def run(self, ctx: Context, config: Any, inputs: Inputs) -> Outputs:
        items = inputs.get("main") or []
        http_cls = self.http
        impl = http_cls()
        server = str(config.server or "")
        sub = ctx.delegate(self._http_config,
                           credential=lambda name, fields: self._credential(ctx, name, fields, server))
        records = self.op.records
        out: list[Item] = []
        if self.op.pagination and config.all_pages:
            for index, item in enumerate(items or [None]):
                page_items = await impl.run(sub, self._http_config(config),
                                            {"main": [item] if item is not None else []})
                out += [ctx.paired(r, index) for r in _as_list(page_items)]
            return out
        answers = _as_list(await impl.run(sub, self._http_config(config), {"main": items}))
        for index, answer in enumerate(answers):
            body = answer.get("body")
            found = _at(body, records) if records and isinstance(body, dict) else body
            if isinstance(found, list):
                out += [ctx.paired(r if isinstance(r, dict) else {"value": r}, index) for r in found]
            elif isinstance(body, dict):
                out.append(ctx.paired(body, index))
            elif body in (None, ""):
                out.append(ctx.paired({"status": answer.get("status")}, index))
            else:
                out.append(ctx.paired({"body": body}, index))
        return out

    def _http_config(self, config: Any) -> Any:
        """The HTTP request node's config for one call of this operation."""
        op = self.op
        server = str(config.server or "").strip().rstrip("/")
        if not server:
            raise NodeError(f"no server address: set `server` to where {self.api.title} answers, e.g. "
                            "https://api.example.com (the API's document names none)", field="server",
                            retryable=False)
        path = op.path
        query: list[dict[str, Any]] = []
        headers: list[dict[str, Any]] = []
        cookies: list[str] = []
        body: dict[str, Any] = {}
        whole_body: Any = None
        has_whole = False
        data = config.model_dump(mode="json", by_alias=True, exclude_none=True)
        for key, (place, name) in self.places.items():
            if key not in data:
                if place == "path":
                    raise NodeError(f"{key}: the path parameter {name!r} needs a value", field=key, retryable=False)
                continue
            value = data[key]
            if place == "path":
                path = path.replace("{" + name + "}", quote(_text(value), safe=""))
            elif place == "query":
                values = value if isinstance(value, list) else [value]
                query += [{"name": name, "value": _text(v)} for v in values]
            elif place == "header":
                headers.append({"name": name, "value": _text(value)})
            elif place == "cookie":
                cookies.append(f"{name}={quote(_text(value), safe='')}")
            elif place == "body":
                body[name] = value
            else:
                whole_body, has_whole = value, True
        if cookies:
            headers.append({"name": "Cookie", "value": "; ".join(cookies)})
        raw: dict[str, Any] = {"method": op.method, "url": server + path, "query": query, "headers": headers,
                               "credential": config.credential, "timeout": config.timeout, "output": "full"}
        if op.body is not None and (body or has_whole or op.body.required):
            payload = whole_body if has_whole else body
            if op.body.media_type == "application/json":
                raw["body"] = {"type": "json", "data": payload}
            else:
                fields = payload if isinstance(payload, dict) else {}
                raw["body"] = {"type": "form", "fields": {k: _text(v) for k, v in fields.items()}}
        if op.pagination and getattr(config, "all_pages", False):
            raw["pagination"] = {**op.pagination, "max_pages": config.max_pages, "each_page": config.each_page,
                                 "keep_records": config.keep_records}
        try:
            return self.http.Config.model_validate(raw)
        except ValidationError as exc:
            first = problems_from_validation(exc)[0]
            field = "server" if first.loc.startswith("url") else None
            raise NodeError(f"{'server' if field else first.loc}: {first.message}", field=field,
                            retryable=False) from None

    async def _credential(self, ctx: Context, name: str, fields: dict[str, Any], server: str) -> dict[str, Any]:
        """The credential's fields as the HTTP node reads them, placed the way the API's security scheme says."""
        schemes = [self.api.schemes[s] for s in self.op.schemes if s in self.api.schemes]
        if not schemes:
            return fields
        for scheme in schemes:
            mapped = await _fit(ctx, scheme, fields, server)
            if mapped is not None:
                return mapped
        wanted = " or ".join(_scheme_words(s) for s in schemes)
        raise NodeError(f"credential {name!r} does not fit {self.api.title}: it needs {wanted}", field="credential",
                        retryable=False)


async def _fit(ctx: Context, scheme: Scheme, fields: dict[str, Any], server: str) -> dict[str, Any] | None:
    """The credential's fields placed as `scheme` says, or None when they do not fit it. An OAuth2 credential's
    current access token (`access_token`, kept fresh by the credentials service where it does that) is used as it
    is; with only a client id and secret, the token is fetched here (client credentials)."""
    secret = next((fields[k] for k in ("value", "token", "key", "api_key", "access_token") if fields.get(k)), None)
    if scheme.kind == "api_key" and secret:
        return {"type": scheme.location, "name": scheme.param, "value": str(secret)}
    if scheme.kind in ("bearer", "oauth2") and secret:
        return {"type": "bearer", "token": str(secret)}
    if scheme.kind == "basic" and (fields.get("user") or fields.get("username")):
        return {"type": "basic", "user": fields.get("user") or fields.get("username"),
                "password": fields.get("password") or ""}
    if scheme.kind == "oauth2" and fields.get("client_id") and fields.get("client_secret"):
        return {"type": "bearer", "token": await _client_token(ctx, scheme, fields, server)}
    return None


def _scheme_words(scheme: Scheme) -> str:
    if scheme.kind == "api_key":
        return f"an API key (a Secret value credential; it is sent as the {scheme.location} {scheme.param!r})"
    if scheme.kind == "bearer":
        return "a Bearer token credential"
    if scheme.kind == "basic":
        return "a Basic auth credential (user, password)"
    return "an OAuth2 client credentials credential (client id, client secret)"


#: OAuth2 access tokens fetched here, by (token address, client id, hash of the secret): (token, good until).
_TOKENS: dict[tuple[str, str, str], tuple[str, float]] = {}


async def _client_token(ctx: Context, scheme: Scheme, fields: dict[str, Any], server: str) -> str:
    """An access token by OAuth2 client credentials (the secret in basic auth, RFC 6749 2.3.1), kept until shortly
    before it expires. A relative token address is read against the server address."""
    from urllib.parse import urljoin

    url = urljoin(server.rstrip("/") + "/", str(fields.get("token_url") or scheme.token_url))
    client_id, secret = str(fields["client_id"]), str(fields["client_secret"])
    key = (url, client_id, hashlib.sha256(secret.encode()).hexdigest())
    cached = _TOKENS.get(key)
    if cached and cached[1] > time.time():
        return cached[0]
    if not url.lower().startswith(("http://", "https://")):
        raise NodeError("the API names no token address for its OAuth2 sign-in; give the credential a token_url",
                        field="credential", retryable=False)
    scope = str(fields.get("scope") or " ".join(scheme.scopes))
    data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    try:
        response = await ctx.http.post(url, data=data, auth=(client_id, secret), timeout=30)
        answer = response.json() if response.status_code == 200 else {}
    except Exception as exc:
        raise NodeError(f"could not get an access token from {url}: {type(exc).__name__}", field="credential"
                        ) from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not token:
        raise NodeError(f"the token address {url} gave no access token (status {response.status_code}); check the "
                        "client id and secret", field="credential", retryable=False)
    expires = float(answer.get("expires_in") or 300)
    _TOKENS[key] = (str(token), time.time() + max(expires - 30, 5))
    return str(token)


def _as_list(outputs: Any) -> list[Item]:
    if isinstance(outputs, dict):
        return list(outputs.get("main") or [])
    return list(outputs or [])


def _at(data: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        import json

        return json.dumps(value, separators=(",", ":"))
    return str(value)


# -- config models ------------------------------------------------------------------------------------------------


def node_types(api: Api, http: type[NodeType], credential_types: set[str] | None = None
               ) -> list[type[NodeType]]:
    """One node type per operation of `api`. `http`: the HTTP request node type the calls go through;
    `credential_types`: the credential types this Flowboard has (the picker offers those that fit)."""
    models = _Models(_camel(api.name))  # one per API: a schema used by many operations is one model
    return [make_type(api, op, http, credential_types, models) for op in api.operations.values()]


def make_type(api: Api, op: Operation, http: type[NodeType], credential_types: set[str] | None = None,
              models: _Models | None = None) -> type[NodeType]:
    builder = models or _Models(_camel(api.name))
    fields: dict[str, Any] = {}
    places: dict[str, tuple[str, str]] = {}
    taken = set(_RESERVED)

    def add(name: str, place: str, schema: dict[str, Any], required: bool, description: str) -> None:
        key = _field_name(name, place, taken)
        taken.add(key)
        annotation, default = builder.field(schema, required, key)
        title = name if place == "header" else _label(name)
        where = {"path": "in the address", "query": "as a query parameter", "header": "as a header",
                 "cookie": "as a cookie"}.get(place, "")
        text = description.strip() or (f"Sent {where} ({name})." if where else "")
        fields[key] = (annotation, Field(default, title=title, description=text[:600] or None))
        places[key] = (place, name)

    for p in op.params:
        add(p.name, p.location, p.schema, p.required, p.description)
    if op.body is not None:
        schema = op.body.schema
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
        if props and not (schema.get("oneOf") or schema.get("anyOf")):
            required = set(schema.get("required") or []) if op.body.required else set()
            for name, prop in props.items():
                if not prop.get("readOnly"):  # set by the API (an id, a creation time): never sent
                    add(name, "body", prop, name in required, str(prop.get("description") or ""))
        else:
            key = _field_name("body", "body_whole", taken)
            taken.add(key)
            annotation, default = builder.field(schema, op.body.required, key)
            fields[key] = (annotation, Field(default, title="Request body", description=(
                op.body.description or "What to send, as JSON."), json_schema_extra=None if schema.get(
                    "properties") or schema.get("oneOf") or schema.get("anyOf") else {"widget": "json"}))
            places[key] = ("body_whole", "body")
    fitting = [t for s in op.schemes if s in api.schemes for t in SCHEME_CREDENTIALS[api.schemes[s].kind]]
    if credential_types is not None:
        fitting = [t for t in fitting if t in credential_types]
    fitting = list(dict.fromkeys(fitting)) or ["bearer", "basic", "header", "query", "cookie", "secret"]
    needs = " or ".join(_scheme_words(api.schemes[s]) for s in op.schemes if s in api.schemes)
    fields["server"] = (str, Field(api.server, title="Server address", description=(
        f"Where {api.title} answers, e.g. https://api.example.com; every call goes to this address."),
        json_schema_extra={"widget": "url"}))
    fields["credential"] = (Optional[str], Field(None, title="Credential", description=(  # noqa: UP045
        f"How to sign in to {api.title}: {needs}. Add one under Credentials." if needs else
        "A credential, if the API needs one (add it under Credentials)."),
        json_schema_extra={"widget": "credential", "credential_types": list[Any](fitting)}))
    if op.pagination:
        fields["all_pages"] = (bool, Field(True, title="Fetch every page", description=(
            "Read the whole list, page after page; each record becomes an item. Off: only the first page.")))
        fields["max_pages"] = (int, Field(100, ge=1, le=10_000, title="At most this many pages"))
        fields["each_page"] = (Optional[str], Field(  # noqa: UP045
            None, title="Hand each page on as it arrives: run this flow for each page", description=(
                "A flow that starts with 'When called by another flow': it runs once for each page, with the page's "
                "records as its items, while the next page is being read, one page after the other. A page whose "
                "flow fails stops the reading. Empty: the records are passed on together once the last page is "
                "read."), json_schema_extra={"widget": "flow", "expressions": False}))
        fields["keep_records"] = (bool, Field(False, title="Also pass every record on at the end", description=(
            "With a flow for each page: also keep every record and pass them all on once the last page is read. "
            "Off: the pages are not kept, and one item per page is passed on, with its number and how many records "
            "it had."), json_schema_extra={"expressions": False}))
    fields["timeout"] = (float, Field(30, gt=0, le=3600, title="Timeout (seconds)",
                                      description="Seconds to wait for each answer before failing."))
    config = create_model(f"{_camel(api.name)}{_camel(op.key)}Config", __module__=__name__,
                          __config__=ConfigDict(extra="forbid", protected_namespaces=()), **fields)
    note = " The API marks this operation as deprecated: it may go away." if op.deprecated else ""
    doc = (op.description or op.title) + note
    attrs = {
        "type": type_id(api.name, op.key),
        "version": 1,
        "title": op.title + (" (deprecated)" if op.deprecated else ""),
        "category": Category.integration,
        "icon": "api",
        "description": f"{api.title}: {op.method} {op.path}"[:200],
        "Config": config,
        "side_effects": True,
        "retry_safe": op.method in _IDEMPOTENT,
        "api": api,
        "op": op,
        "http": http,
        "places": places,
        "group": api.title,
        "__doc__": f"{doc}\n\n{op.method} {op.path} of {api.title} (an OpenAPI connector).",
        "__module__": __name__,
    }
    return type(f"{_camel(api.name)}{_camel(op.key)}", (OperationNode,), attrs)


class _Models:
    """Pydantic types for JSON schemas (already resolved: no `$ref`, `allOf` merged)."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.made: dict[int, tuple[dict[str, Any], type[BaseModel]]] = {}  # id(schema) -> (schema, its model)
        self.names: set[str] = set()

    def field(self, schema: dict[str, Any], required: bool, hint: str) -> tuple[Any, Any]:
        annotation = self.annotation(schema, hint)
        if "default" in schema and _fits(annotation, schema["default"]):
            return annotation, schema["default"]
        if required:
            return annotation, ...
        return Optional[annotation], None  # noqa: UP045

    def annotation(self, schema: Any, hint: str) -> Any:
        if not isinstance(schema, dict) or not schema:
            return Any
        kind = schema.get("type")
        nullable = False
        if isinstance(kind, list):
            nullable = "null" in kind
            rest = [k for k in kind if k != "null"]
            kind = rest[0] if len(rest) == 1 else None
        result: Any
        if "const" in schema and _scalar(schema["const"]):
            result = Literal[schema["const"]]
        elif isinstance(schema.get("enum"), list) and schema["enum"]:
            values = [v for v in schema["enum"] if v is not None]
            nullable = nullable or len(values) < len(schema["enum"])
            result = Literal[tuple(values)] if values and all(_scalar(v) for v in values) else Any
        elif isinstance(schema.get("oneOf") or schema.get("anyOf"), list):
            options: list[Any] = schema.get("oneOf") or schema.get("anyOf") or []
            real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            nullable = nullable or len(real) < len(options)
            types = [self.annotation(o, f"{hint}_{o.get('title') or i + 1}") for i, o in enumerate(real)]
            if not types:
                result = Any
            elif len(types) == 1:
                result = types[0]
            else:
                result = Union[tuple(types)]  # noqa: UP007
                tag = (schema.get("discriminator") or {}).get("propertyName")
                if tag and all(isinstance(t, type) and issubclass(t, BaseModel) and _tagged(t, tag) for t in types):
                    result = Annotated[result, Field(discriminator=tag)]
        elif kind == "object" or isinstance(schema.get("properties"), dict):
            result = self.model(schema, hint) if schema.get("properties") else dict[str, Any]
        elif kind == "array":
            result = list[self.annotation(schema.get("items"), f"{hint}_item")]  # type: ignore[misc]
        else:
            result = {"string": str, "integer": int, "number": float, "boolean": bool}.get(str(kind), Any)
        return Optional[result] if nullable and result is not Any else result  # noqa: UP045

    def model(self, schema: dict[str, Any], hint: str) -> type[BaseModel]:
        known = self.made.get(id(schema))
        if known is not None and known[0] is schema:
            return known[1]
        base = _camel(str(schema.get("title") or hint)) or "Part"
        name, n = base, 2
        while name in self.names:
            name, n = f"{base}{n}", n + 1
        self.names.add(name)
        required = set(schema.get("required") or [])
        fields: dict[str, Any] = {}
        taken: set[str] = set(dir(BaseModel))
        for prop, sub in schema["properties"].items():
            if isinstance(sub, dict) and sub.get("readOnly"):
                continue
            key = _field_name(prop, "", taken)
            taken.add(key)
            annotation, default = self.field(sub if isinstance(sub, dict) else {}, prop in required, key)
            extra: dict[str, Any] = {"alias": prop} if key != prop else {}
            description = str(sub.get("description") or "")[:600] if isinstance(sub, dict) else ""
            fields[key] = (annotation, Field(default, title=_label(prop), description=description or None, **extra))
        extra_mode: Literal["allow", "forbid"] = "allow" if schema.get("additionalProperties") not in (None, False) \
            else "forbid"
        model: type[BaseModel] = create_model(
            f"{self.prefix}{name}", __module__=__name__, **fields,
            __config__=ConfigDict(extra=extra_mode, populate_by_name=True, protected_namespaces=(),
                                  title=str(schema.get("title") or _label(hint))))
        self.made[id(schema)] = (schema, model)
        return model


def _tagged(model: type[BaseModel], tag: str) -> bool:
    for name, info in model.model_fields.items():
        if (info.alias or name) == tag:
            return getattr(info.annotation, "__origin__", None) is Literal
    return False


def _fits(annotation: Any, value: Any) -> bool:
    from pydantic import TypeAdapter

    try:
        TypeAdapter(annotation).validate_python(value)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _field_name(name: str, place: str, taken: set[str]) -> str:
    base = re.sub(r"[^0-9a-zA-Z_]+", "_", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)).strip("_").lower() or "value"
    if base[0].isdigit() or keyword.iskeyword(base) or base.startswith("model_"):
        base = f"{place or 'field'}_{base}"
    key = base
    if key in taken and place:
        key = f"{place}_{base}"
    n = 2
    while key in taken:
        key = f"{base}_{n}"
        n += 1
    return key


def _label(name: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").split()
    text = " ".join(words).lower()
    for short, long in (("id", "ID"), ("url", "URL"), ("api", "API")):
        text = re.sub(rf"\b{short}\b", long, text)
    return (text[:1].upper() + text[1:]) if text else name


def _camel(text: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^0-9a-zA-Z]+", text) if w)
