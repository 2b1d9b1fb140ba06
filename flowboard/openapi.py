"""Reading an OpenAPI 3.0 / 3.1 document into an `Api`: its operations with their parameters, request body and
response schemas (every `$ref` resolved), its security schemes, its server, and the pagination style its list
operations show. Pure data, no Flowboard state: `openapi_nodes` makes node types of it, `connectors` stores it.

The document is checked by `openapi-spec-validator` (the OpenAPI 3.0 and 3.1 meta-schemas) and walked with
`jsonschema-path`, which resolves `$ref`s through `referencing` (the resolver of the `jsonschema` project): nothing
here resolves a reference by hand. Every problem is reported at once, located (`paths./pets.get.parameters[0]`),
in plain words.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import FlowboardError, Problem, format_loc

MAX_DOCUMENT_BYTES = 10_000_000
MAX_DEPTH = 8  # nested schema levels kept for forms; deeper (or recursive) parts take any JSON
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
RECORD_KEYS = ("items", "data", "results", "records", "entries", "values", "rows", "list")


class ApiInvalid(FlowboardError):
    """The document cannot become a connector: every problem, located."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems[:10]) + (" …" if len(problems) > 10 else ""))


@dataclass(slots=True)
class Param:
    name: str  # as the API spells it
    location: str  # path, query, header, cookie
    required: bool
    schema: dict[str, Any]
    description: str = ""


@dataclass(slots=True)
class Body:
    media_type: str  # application/json or application/x-www-form-urlencoded
    required: bool
    schema: dict[str, Any]
    description: str = ""


@dataclass(slots=True)
class Scheme:
    """A security scheme as Flowboard uses it: `kind` is api_key (with `location` and `param`), bearer, basic or
    oauth2 (client credentials, with `token_url`)."""

    name: str
    kind: str
    location: str = ""
    param: str = ""
    token_url: str = ""
    scopes: tuple[str, ...] = ()


@dataclass(slots=True)
class Operation:
    key: str  # stable snake_case id within the API: the operationId, else method and path
    method: str  # upper case
    path: str
    title: str
    description: str
    params: list[Param]
    body: Body | None
    response: dict[str, Any] | None  # the JSON schema of the first 2xx JSON answer
    schemes: list[str]  # names of the security schemes that may authenticate it (any one of them)
    pagination: dict[str, Any] | None = None  # an HTTP request node's pagination setting (without max_pages)
    tag: str = ""
    deprecated: bool = False
    records: str = ""  # for a list answer wrapped in an object (GET): the field holding the list, e.g. items
    link_header: bool = False  # the answer declares a `Link` header (the next page's address, RFC 8288)

    def fingerprint(self) -> str:
        """Changes when anything a flow depends on changes (what is sent, where, what comes back)."""
        data = [self.method, self.path, [(p.name, p.location, p.required, p.schema) for p in self.params],
                self.body and (self.body.media_type, self.body.required, self.body.schema), self.response,
                self.schemes, self.pagination, self.records]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(slots=True)
class Api:
    name: str  # slug: node types are api.<name>.<operation key>
    title: str
    version: str
    description: str
    server: str  # the base URL ("" when the document names none that is absolute)
    operations: dict[str, Operation]
    schemes: dict[str, Scheme]
    warnings: list[str] = field(default_factory=list)  # what was left out, and why


@dataclass(slots=True)
class Changes:
    added: list[str]
    removed: list[str]
    changed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def as_dict(self) -> dict[str, list[str]]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


# -- reading ------------------------------------------------------------------------------------------------------


def read_document(text: str | bytes) -> dict[str, Any]:
    """The document as JSON data, from JSON or YAML text. Raises ApiInvalid with the line of a syntax error."""
    if isinstance(text, bytes):
        if len(text) > MAX_DOCUMENT_BYTES:
            raise ApiInvalid([Problem("", f"the document is larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB")])
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiInvalid([Problem("", "the document is not text (UTF-8); give an OpenAPI file in JSON or "
                                          "YAML")]) from None
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ApiInvalid([Problem("", f"the document is larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB")])
    if not text.strip():
        raise ApiInvalid([Problem("", "the document is empty; paste or choose an OpenAPI file (JSON or YAML)")])
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ApiInvalid([Problem(f"line {exc.lineno}, column {exc.colno}",
                                      f"the JSON is broken here: {exc.msg.lower()}")]) from None
        except RecursionError:
            raise ApiInvalid([Problem("", "the JSON is nested too deeply")]) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ApiInvalid([Problem(where, f"the YAML is broken here: {exc.problem or exc}")]) from None
        except yaml.YAMLError as exc:
            raise ApiInvalid([Problem("", f"the YAML cannot be read: {exc}")]) from None
    if not isinstance(data, dict):
        raise ApiInvalid([Problem("", "an OpenAPI document is an object with `openapi`, `info` and `paths`; this "
                                      "is not one")])
    try:
        too_big = _expanded_size(data, {}) > MAX_VALUES
    except RecursionError:
        too_big = True
    if too_big:
        raise ApiInvalid([Problem("", f"the document holds more than {MAX_VALUES:,} values once its repeated parts "
                                      "(YAML aliases) are written out, or nests too deeply")])
    try:  # YAML may hold dates and other non-JSON values: the document is kept and exported as JSON
        result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    except (ValueError, RecursionError):
        raise ApiInvalid([Problem("", "the document holds values JSON cannot carry")]) from None
    return result


MAX_VALUES = 2_000_000  # values in a document once YAML's repeated parts (aliases) are written out


def _expanded_size(data: Any, sizes: dict[int, int]) -> int:
    """How many values `data` holds with every shared part counted each time it is used (YAML aliases make a few
    lines stand for billions of values: "billion laughs"); each shared part is counted once, so this is quick."""
    known = sizes.get(id(data))
    if known is not None:
        return known
    if isinstance(data, dict):
        size = 1 + sum(_expanded_size(v, sizes) for v in data.values())
    elif isinstance(data, list):
        size = 1 + sum(_expanded_size(v, sizes) for v in data)
    else:
        return 1
    sizes[id(data)] = size
    return size


def load(document: dict[str, Any], source: str = "", server: str = "", name: str = "", *,
         validate: bool = True) -> Api:
    """The Api of a document (from `read_document`). `source`: the URL it came from (a relative server address is
    read against it); `server`: a base URL that overrides the document's; `name`: the connector's name (default: from
    the title); `validate=False` skips the meta-schema check (a document checked when it was imported). Raises
    ApiInvalid listing every problem."""
    version = str(document.get("openapi") or "")
    if not version:
        if "swagger" in document:
            raise ApiInvalid([Problem("swagger", "this is a Swagger 2.0 document; Flowboard reads OpenAPI 3.0 and "
                                                 "3.1 (convert it, e.g. with the Swagger editor's 'Convert to "
                                                 "OpenAPI 3')")])
        raise ApiInvalid([Problem("openapi", "the document has no `openapi` version field; an OpenAPI document "
                                             "starts with `openapi: 3.1.0` (or 3.0.x)")])
    if not re.match(r"^3\.[01]\.\d+", version):
        raise ApiInvalid([Problem("openapi", f"OpenAPI version {version!r} is not supported; Flowboard reads 3.0.x "
                                             "and 3.1.x")])
    if validate:
        _validate(document, version)
    from referencing.exceptions import Unresolvable

    root = schema_path(document)
    info = document.get("info") or {}
    title = str(info.get("title") or "API").strip() or "API"
    api = Api(name=slug(name or title), title=title, version=str(info.get("version") or ""),
              description=str(info.get("description") or ""), server=_server(document, source, server),
              operations={}, schemes={})
    if not api.name:
        raise ApiInvalid([Problem("info.title", "the API's title gives no name; give the connector a name")])
    problems: list[Problem] = []
    resolver = Resolver()
    _schemes(root, api)
    default_security = document.get("security")
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        item_path = root / "paths" / path
        with item_path.open() as resolved:  # a path item may itself be a $ref
            item_keys = list(resolved.keys())
        shared = _params(item_path / "parameters", resolver) if "parameters" in item_keys else []
        for method in METHODS:
            if method not in item_keys:
                continue
            where = ["paths", path, method]
            try:
                op = _operation(api, item_path / method, method, path, shared, default_security, resolver)
            except ApiInvalid as exc:
                problems += [Problem(format_loc([*where, p.loc] if p.loc else where), p.message) for p in exc.problems]
                continue
            except (Unresolvable, LookupError) as exc:  # a $ref the validator did not reach
                problems.append(Problem(format_loc(where), _ref_message(exc)))
                continue
            if op.key in api.operations:  # e.g. GET /items and GET /items/ without operationIds: told apart
                n = 2
                while f"{op.key}_{n}" in api.operations:
                    n += 1
                api.warnings.append(f"{op.method} {op.path} is called {op.key}_{n}: {op.key} was taken by "
                                    f"{api.operations[op.key].method} {api.operations[op.key].path}")
                op.key = f"{op.key}_{n}"
            api.operations[op.key] = op
    if problems:
        raise ApiInvalid(problems)
    if not api.operations:
        raise ApiInvalid([Problem("paths", "the document has no operations (no paths with get, post, …); there is "
                                           "nothing to call")])
    return api


def diff(old: Api, new: Api) -> Changes:
    """Operations added, removed and changed (by key) from `old` to `new`, each as its key."""
    return Changes(added=sorted(set(new.operations) - set(old.operations)),
                   removed=sorted(set(old.operations) - set(new.operations)),
                   changed=sorted(k for k in set(old.operations) & set(new.operations)
                                  if old.operations[k].fingerprint() != new.operations[k].fingerprint()))


def slug(text: str) -> str:
    """snake_case words of `text`: `listPets` -> list_pets, `Shop API` -> shop_api."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(text))
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    out = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if out and out[0].isdigit():
        out = "n" + out
    return out[:48].strip("_")


def schema_path(document: dict[str, Any]) -> Any:
    """The document to walk, resolving only references inside it: a `$ref` to a file or a web address is never
    followed (a document must not make the server read its files or call other hosts), it points to nothing."""
    from jsonschema_path import SchemaAccessor, SchemaPath
    from referencing import Registry
    from referencing.exceptions import NoSuchResource
    from referencing.jsonschema import DRAFT202012

    def refuse(uri: str) -> Any:  # jsonschema-path's own retriever falls back to urllib for any other scheme
        raise NoSuchResource(ref=uri)  # type: ignore[call-arg]

    empty: Any = Registry(retrieve=refuse)  # type: ignore[call-arg]
    registry = empty.with_resource("", DRAFT202012.create_resource(document))
    return SchemaPath(SchemaAccessor(document, registry.resolver(base_uri="")), separator="#")


# -- validation ---------------------------------------------------------------------------------------------------


def _validate(document: dict[str, Any], version: str) -> None:
    from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

    cls = OpenAPIV31SpecValidator if version.startswith("3.1") else OpenAPIV30SpecValidator
    problems = []
    try:
        for error in cls(schema_path(document)).iter_errors():
            problems.append(_located(error))
            if len(problems) >= 50:
                break
    except RecursionError:
        problems.append(Problem("", "the document's references go round in a circle without end"))
    except Exception as exc:  # an unresolvable $ref and the like surface as the validator's own errors
        if str(exc).strip() or not problems:
            problems.append(Problem("", _ref_message(exc)))
    if problems:
        raise ApiInvalid(problems)


def _located(error: Any) -> Problem:
    """The validator's checks beyond the meta-schema name their place in the message: put it in the location."""
    message = str(error.message).split("\n", 1)[0]
    if m := re.match(r"^Path parameter '(.+)' for '(\w+)' operation in '(.+)' was not resolved$", message):
        name, method, path = m.groups()
        return Problem(format_loc(["paths", path, method, "parameters"]),
                       f"the path {path} and its path parameters do not match: {{{name}}} must appear in the path "
                       f"and be described by a parameter with `name: {name}` and `in: path`")
    if m := re.match(r"^Operation ID '(.+)' for '(\w+)' in '(.+)' is not unique$", message):
        op_id, method, path = m.groups()
        return Problem(format_loc(["paths", path, method]), f"two operations are called {op_id!r}; give each its "
                                                            "own operationId")
    return Problem(format_loc(list(error.absolute_path)), _plain(error))


def _plain(error: Any) -> str:
    """A validation error in words: what is missing, wrong or not allowed. (openapi-spec-validator hands over only
    jsonschema's message, so the message is read.)"""
    message = str(error.message).split("\n", 1)[0]
    where = list(error.absolute_path)
    if m := re.match(r"""^['"](.+)['"] is a required property$""", message):
        return f"the field `{m.group(1)}` is missing here"
    if m := re.match(r"""^(.*) is not of type ['"](\w+)['"]$""", message):
        words = {"object": "an object", "array": "a list", "string": "text", "integer": "a whole number",
                 "number": "a number", "boolean": "true or false"}
        return f"must be {words.get(m.group(2), m.group(2))}, not {_clip(m.group(1))}"
    if m := re.match(r"^(.*) is not one of \[(.*)\]$", message):
        return f"must be one of {m.group(2)}, not {_clip(m.group(1))}"
    if m := re.search(r"\('(.+?)' (was|were) unexpected\)", message):
        return f"`{m.group(1)}` is not allowed here (check its spelling and where it stands)"
    if "is not valid under any of the schemas" in message or "is valid under each of" in message:
        if not where:
            return "the document needs `paths` (its operations), `components` or `webhooks`"
        last = where[-1] if not isinstance(where[-1], int) else (where[-2] if len(where) > 1 else "")
        what = {"parameters": "parameter", "responses": "response", "requestBody": "request body",
                "schema": "schema", "securitySchemes": "security scheme"}.get(str(last), "entry")
        if isinstance(where[-1], int) and str(last) == "parameters":
            return ("is not a valid parameter: it needs `name`, `in` (path, query, header or cookie) and a `schema`"
                    " or `content`; a path parameter also needs `required: true`")
        return f"is not a valid {what} here"
    if "does not match" in message:
        return f"{_clip(message.split(' does not match')[0])} does not have the expected form"
    if "is a dependency of" in message or "Unresolvable" in message or "PointerToNowhere" in message:
        return message[:300]
    return message[:300]


def _clip(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "…"


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def _ref_message(exc: BaseException) -> str:
    """An unresolvable `$ref` in words: which one, and why it is not followed."""
    ref = None
    cause: BaseException | None = exc
    for _ in range(10):  # the reference is on the error or on one it was raised from
        if cause is None:
            break
        ref = ref or getattr(cause, "ref", None)
        cause = cause.__cause__ or cause.__context__
    if isinstance(ref, str):
        if ref.startswith("#") or ref.startswith("/"):
            return f"`$ref: {ref}` points to nothing in the document"
        return (f"`$ref: {ref}` is outside the document; Flowboard follows only references inside it "
                "(`#/components/...`): put the referenced part into the document")
    text = str(exc).split("\n", 1)[0]
    return f"the document cannot be read: {text[:200]}"


# -- walking ------------------------------------------------------------------------------------------------------


def _server(document: dict[str, Any], source: str, override: str) -> str:
    if override.strip():
        return override.strip().rstrip("/")
    servers = document.get("servers") or []
    url = ""
    if servers and isinstance(servers[0], dict):
        url = str(servers[0].get("url") or "")
        for name, var in (servers[0].get("variables") or {}).items():
            if isinstance(var, dict) and "default" in var:
                url = url.replace("{" + name + "}", str(var["default"]))
    if re.match(r"^https?://", url, re.IGNORECASE):
        return url.rstrip("/")
    if re.match(r"^https?://", source or "", re.IGNORECASE):
        from urllib.parse import urljoin

        return urljoin(source, url or "/").rstrip("/")
    return ""


def _schemes(root: Any, api: Api) -> None:
    schemes = root / "components" / "securitySchemes"
    if not schemes.exists():
        return
    for name in schemes.keys():  # noqa: SIM118 (a SchemaPath iterates paths)
        with (schemes / name).open() as raw:
            s = dict(raw)
        kind = str(s.get("type") or "")
        if kind == "apiKey" and s.get("in") in ("header", "query", "cookie"):
            api.schemes[name] = Scheme(name, "api_key", location=str(s["in"]), param=str(s.get("name") or ""))
        elif kind == "http" and str(s.get("scheme") or "").lower() == "bearer":
            api.schemes[name] = Scheme(name, "bearer")
        elif kind == "http" and str(s.get("scheme") or "").lower() == "basic":
            api.schemes[name] = Scheme(name, "basic")
        elif kind == "oauth2" and isinstance(s.get("flows"), dict) and s["flows"]:
            # client credentials: Flowboard can fetch the token itself; other flows need a credential that holds a
            # current access token (an OAuth2 credential that signs in to an account)
            flow = s["flows"].get("clientCredentials") or {}
            api.schemes[name] = Scheme(name, "oauth2", token_url=str(flow.get("tokenUrl") or ""),
                                       scopes=tuple(flow.get("scopes") or ()))
        else:
            how = f"{kind} {s.get('scheme') or s.get('in') or ''}".strip()
            api.warnings.append(f"security scheme {name!r} ({how}) is not supported; operations that need only it "
                                "are called without a credential")


def _params(path: Any, resolver: Resolver) -> list[Param]:
    out = []
    for index in range(len(path.read_value())):
        with (path / index).open() as raw:
            p = dict(raw)
        name, location = str(p.get("name") or ""), str(p.get("in") or "")
        schema: dict[str, Any] = {}
        if "schema" in p:
            schema = resolver.schema(path / index / "schema")
        elif isinstance(p.get("content"), dict) and p["content"]:
            media = next(iter(p["content"]))
            if "schema" in p["content"][media]:
                schema = resolver.schema(path / index / "content" / media / "schema")
        out.append(Param(name=name, location=location, required=bool(p.get("required")) or location == "path",
                         schema=schema, description=str(p.get("description") or schema.get("description") or "")))
    return out


def _operation(api: Api, path: Any, method: str, route: str, shared: list[Param], default_security: Any,
               resolver: Resolver) -> Operation:
    with path.open() as raw:
        op = dict(raw)
    key = slug(op.get("operationId") or f"{method} {route}")
    own = _params(path / "parameters", resolver) if "parameters" in op else []
    names = {(p.name, p.location) for p in own}
    params = [p for p in shared if (p.name, p.location) not in names] + own
    problems = []
    for p in params:
        if p.location == "path" and "{" + p.name + "}" not in route:
            problems.append(Problem("parameters", f"path parameter {p.name!r} does not appear in the path {route}"))
    for placeholder in re.findall(r"{([^}]+)}", route):
        if not any(p.name == placeholder and p.location == "path" for p in params):
            problems.append(Problem("parameters", f"the path has {{{placeholder}}} but no path parameter "
                                                  f"{placeholder!r} describes it"))
    if problems:
        raise ApiInvalid(problems)
    body = None
    if "requestBody" in op:
        with (path / "requestBody").open() as raw_body:
            rb = dict(raw_body)
        content = rb.get("content") or {}
        media = next((m for m in content if m.split(";")[0].strip() == "application/json" or
                      m.split(";")[0].strip().endswith("+json")), None)
        media = media or next((m for m in content if m.startswith("application/x-www-form-urlencoded")), None)
        if media is not None:
            schema = resolver.schema(path / "requestBody" / "content" / media / "schema") \
                if "schema" in content[media] else {}
            body = Body(media_type="application/json" if "json" in media else "application/x-www-form-urlencoded",
                        required=bool(rb.get("required")), schema=schema, description=str(rb.get("description") or ""))
        elif content:
            api.warnings.append(f"{method.upper()} {route}: its body ({', '.join(content)}) is not JSON or a form; "
                                "the node sends none")
    response = None
    link_header = False
    responses = path / "responses"
    for status in sorted(op.get("responses") or {}, key=str):
        if not str(status).startswith("2"):
            continue
        with (responses / status).open() as raw_resp:
            resp = dict(raw_resp)
        content = resp.get("content") or {}
        media = next((m for m in content if "json" in m), None)
        if media is not None and "schema" in content[media]:
            response = resolver.schema(responses / status / "content" / media / "schema")
        link_header = any(str(h).lower() == "link" for h in resp.get("headers") or {})
        break
    security = op.get("security", default_security)
    schemes = []
    for requirement in security or []:
        for name in requirement or {}:
            if name in api.schemes and name not in schemes:
                schemes.append(name)
    summary = str(op.get("summary") or "").strip()
    title = summary or _words(op.get("operationId") or "") or f"{method.upper()} {route}"
    tags = op.get("tags") or []
    result = Operation(key=key, method=method.upper(), path=route, title=title[:120],
                       description=str(op.get("description") or "").strip(), params=params, body=body,
                       response=response, schemes=schemes, tag=str(tags[0]) if tags else "",
                       deprecated=op.get("deprecated") is True, link_header=link_header)
    result.pagination = pagination(result)
    if result.pagination:
        result.records = result.pagination["records"]
    elif result.method == "GET" and result.response is not None:
        found = _records(result.response)
        result.records = found if found and found.lower() in RECORD_KEYS else ""
    return result


def _words(operation_id: str) -> str:
    words = slug(operation_id).replace("_", " ").strip()
    return words[:1].upper() + words[1:]


class Resolver:
    """Schemas with every `$ref` resolved (by jsonschema-path), `allOf` merged into one object schema, and OpenAPI
    3.0's `nullable` written the 3.1 way (`"null"` among the types). Each referenced schema is resolved once per
    document and shared (a large API refers to the same few schemas from hundreds of operations). A reference back
    into a schema being resolved (a recursive schema), or nesting deeper than MAX_DEPTH, becomes `{}`: any JSON."""

    def __init__(self) -> None:
        self.done: dict[str, dict[str, Any]] = {}
        self.active: set[str] = set()

    def schema(self, path: Any, depth: int = 0) -> dict[str, Any]:
        raw = _raw(path)  # the mapping as written, with "$ref" still in it
        if not isinstance(raw, dict) or depth > MAX_DEPTH:
            return {}
        ref = raw.get("$ref")
        if not isinstance(ref, str):
            return self._expand(path, depth)
        siblings = {k: v for k, v in raw.items() if k not in _NESTED}  # beside a $ref (3.1): this use's default
        if ref in self.active:
            return {k: v for k, v in siblings.items() if k == "description"}
        if ref not in self.done:
            self.active.add(ref)
            try:
                self.done[ref] = self._expand(path, depth)
            finally:
                self.active.discard(ref)
        return {**self.done[ref], **siblings} if siblings else self.done[ref]

    def _expand(self, path: Any, depth: int) -> dict[str, Any]:
        with path.open() as resolved:
            keys = list(resolved.keys())
            schema: dict[str, Any] = {k: resolved[k] for k in keys if k not in _NESTED}
        if "properties" in keys:
            schema["properties"] = {name: self.schema(path / "properties" / name, depth + 1)
                                    for name in (path / "properties").keys()}  # noqa: SIM118
        for key in ("items", "additionalProperties", "not"):
            if key in keys:
                value = (path / key).read_value()
                schema[key] = self.schema(path / key, depth + 1) if isinstance(value, dict) else value
        for key in ("oneOf", "anyOf", "allOf", "prefixItems"):
            if key in keys:
                schema[key] = [self.schema(path / key / i, depth + 1) for i in range(len((path / key).read_value()))]
        if schema.pop("nullable", False) is True:
            kind = schema.get("type")
            if isinstance(kind, str):
                schema["type"] = [kind, "null"]
            elif "enum" in schema and None not in schema["enum"]:
                schema["enum"] = [*schema["enum"], None]
        if "allOf" in schema:
            schema = _merge_all_of(schema)
        return schema


def _raw(path: Any) -> Any:
    """The value at `path` as written (a `$ref` not yet followed): read from its parent, which jsonschema-path hands
    over resolved one level deep."""
    if not path.parts:
        return path.read_value()
    container = path.parent.read_value()
    key = path.parts[-1]
    if isinstance(container, list):
        index = int(key)
        return container[index] if 0 <= index < len(container) else None
    return container.get(key) if isinstance(container, dict) else None


_NESTED = frozenset({"properties", "patternProperties", "items", "additionalProperties", "not", "oneOf", "anyOf",
                     "allOf", "prefixItems", "$ref", "$defs", "definitions"})


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """allOf's parts as one schema: their properties and required fields together (later parts win a clash)."""
    parts = schema.pop("allOf")
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for part in [*parts, schema]:
        properties.update(part.get("properties") or {})
        required += [r for r in part.get("required") or [] if r not in required]
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
    if properties:
        merged["properties"] = properties
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


# -- pagination ---------------------------------------------------------------------------------------------------

_PAGE = ("page", "page_number", "pagenumber", "page_no")
_OFFSET = ("offset", "skip", "start")
_LIMIT = ("limit", "per_page", "perpage", "page_size", "pagesize", "size", "count", "max_results")
_CURSOR = ("cursor", "page_token", "pagetoken", "after", "starting_after", "continuation_token", "next_token")
_NEXT_CURSOR = ("next_cursor", "nextcursor", "next_page_token", "nextpagetoken", "cursor", "next_token",
                "continuation_token")


def pagination(op: Operation) -> dict[str, Any] | None:
    """The HTTP request node's pagination setting that fits the operation's shape, or None for a single call: a
    page, offset or cursor query parameter, or a `next` link in the answer, with the list of records at a top-level
    field (`items`, `data`, `results`, …) or the answer itself."""
    if op.method != "GET" or op.response is None:
        return None
    query = {p.name.lower().replace("-", "_"): p for p in op.params if p.location == "query"}
    records = _records(op.response)
    if records is None:
        return None
    props: dict[str, Any] = (op.response.get("properties") or {}) if records else {}
    lowered = {k.lower(): k for k in props}
    page = next((query[n] for n in _PAGE if n in query), None)
    offset = next((query[n] for n in _OFFSET if n in query), None)
    limit = next((query[n] for n in _LIMIT if n in query), None)
    cursor = next((query[n] for n in _CURSOR if n in query), None)
    if cursor is not None:
        found = _cursor_field(props, lowered)
        if found:
            return {"type": "cursor", "records": records, "parameter": cursor.name, "cursor_field": found}
    if "next" in lowered and not _is_array(props[lowered["next"]]):
        return {"type": "next_link", "records": records, "next_field": lowered["next"]}
    links = props.get("links") or props.get("_links")
    if isinstance(links, dict) and "next" in (links.get("properties") or {}):
        return {"type": "next_link", "records": records, "next_field": f"{'links' if 'links' in props else '_links'}"
                                                                        ".next"}
    if op.link_header:  # the next page's address in the Link header (rel="next"), as GitHub does
        return {"type": "next_link", "records": records, "next_field": ""}
    if offset is not None and limit is not None:
        size = limit.schema.get("default") or min(100, int(limit.schema.get("maximum") or 100))
        return {"type": "offset", "records": records, "parameter": offset.name, "limit_parameter": limit.name,
                "limit": int(size)}
    if page is not None:
        first = page.schema.get("minimum", page.schema.get("default", 1))
        return {"type": "page", "records": records, "parameter": page.name,
                "first": int(first) if isinstance(first, int) and first >= 0 else 1}
    return None


def _records(response: dict[str, Any]) -> str | None:
    """Where a list answer's records are: "" for a list itself, the field of the list in an object (one named like
    `items`, `data`, `results`, …, or the only list field), None when the answer is no list."""
    if _is_array(response):
        return ""
    props = response.get("properties")
    if not isinstance(props, dict):
        return None
    arrays = [k for k, v in props.items() if _is_array(v)]
    named = [k for k in arrays if k.lower() in RECORD_KEYS]
    if named:
        return named[0]
    return arrays[0] if len(arrays) == 1 else None


def _cursor_field(props: dict[str, Any], lowered: dict[str, str]) -> str:
    for name in _NEXT_CURSOR:
        if name in lowered:
            return lowered[name]
    for container in ("meta", "pagination", "paging", "page_info", "pageinfo"):
        if container in lowered:
            inner = props[lowered[container]].get("properties") or {}
            low = {k.lower(): k for k in inner}
            for name in _NEXT_CURSOR:
                if name in low:
                    return f"{lowered[container]}.{low[name]}"
    return ""


def _is_array(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    return kind == "array" or (isinstance(kind, list) and "array" in kind)
