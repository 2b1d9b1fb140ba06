"""The webhook routes: `/webhook/<path>` for active flows, `/webhook-test/<path>` while the editor listens.

The hot path. Plain ASGI apps mounted as routes of the outer app ahead of NiceGUI (never behind its middleware); per
call only a dict lookup, the body read with a running size check, orjson, and the engine on the plan compiled at
activation. No validation, no planning, no database read per call (a run is written by the recorder, or created first
with `Store.create_run` when the caller is answered at once).

Answers: the flow's result, 202 `{"run_id"}` (respond immediately), 200 `{"skipped": true}` (run mode skip, a run is
going: a 2xx so senders do not retry what was ignored on purpose), or an error as `{"error": "..."}`: 404 unknown
path, 405 wrong method (with Allow), 401 missing credentials or bad signature, 403 wrong credentials, 413 body too
big, 400 unreadable body (malformed JSON, NaN, nesting past the shared limit of jsonlimits.py), 500 the run failed.
Refusals are logged on `flowboard.webhook` at warning level, without header values or bodies. The item keeps only
the request headers the node lists (`headers`), so an anonymous caller cannot store kilobytes of headers per call.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import parse_qsl

import orjson
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from ..blobs import Blobs, FileTooLarge
from ..engine import RunResult, RunStatus, StepStatus
from ..frozen import FrozenDict, FrozenList, freeze, freeze_parsed
from ..jsonlimits import JsonRefused, read_json
from ..store import CREDENTIAL_CACHE
from ..triggers import RunSkipped, WebhookEndpoint, WebhookTriggers, new_run_id

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..services import Flowboard

log = logging.getLogger("flowboard.webhook")

_JSON = ("content-type", "application/json")
_TEXT = ("content-type", "text/plain; charset=utf-8")
_dumps = orjson.dumps
_NO_QUERY = FrozenDict()  # (shared: frozen)
_SKIPPED = b'{"skipped":true,"reason":"a run of this flow is going and its run mode is skip"}'
#: An ASGI scope key (set by `rsgi.serve_http`): the names of headers whose values the server left out (not ASCII)
UNREADABLE = "flowboard.unreadable_headers"


class Refused(Exception):
    """A call the webhook does not take: status, plain words for the caller, extra headers."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


def routes(fb: Flowboard) -> list[BaseRoute]:
    return [Route("/webhook/{path:path}", WebhookApp(fb, test=False), name="webhook"),
            Route("/webhook-test/{path:path}", WebhookApp(fb, test=True), name="webhook_test")]


def register(app: Starlette, fb: Flowboard) -> None:
    """Put the webhook routes first on the outer app, so they are matched before anything else."""
    app.router.routes[0:0] = routes(fb)


class FrontDoor:
    """What the server runs: production webhook calls go straight to their handler, everything else to the outer app.

    The same handler as the route `register` adds, minus the outer app's middleware stack (error middleware, the
    sign-in guard, exception handlers, FastAPI's per-request telemetry check: ~15 µs a call, measured). Test calls
    (`/webhook-test/`) go through the outer app: the guard asks them for a session or an API key. `app` is the outer
    app, kept as `.app` so NiceGUI finds it behind this wrapper."""

    def __init__(self, app: Any, fb: Flowboard):
        self.app = app
        self.hooks = WebhookApp(fb, test=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path[:9] == "/webhook/":
                return await self.hooks.serve(path[9:], scope, receive, send)
        await self.app(scope, receive, send)


class WebhookApp:
    """One ASGI app per URL prefix. Starlette hands it the path after the prefix in `path_params`."""

    def __init__(self, fb: Flowboard, test: bool):
        self.fb = fb
        self.test = test
        self.kind: WebhookTriggers = fb.triggers.kind(WebhookTriggers)
        self.launcher = fb.launcher
        self.prefix = "/webhook-test/" if test else "/webhook/"
        self.source = "webhook-test" if test else "webhook"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.serve(scope["path_params"]["path"], scope, receive, send)

    async def serve(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """A call on ASGI (uvicorn, and test calls through the outer app)."""
        method: str = scope["method"]
        try:
            ep = self.endpoint(path, method)
            listed = scope["headers"]
            found = {name.decode("latin-1"): value.decode("latin-1") for name, value in listed}  # as HTTP has them
            if len(found) != len(listed):
                found = _joined((name.decode("latin-1"), value.decode("latin-1")) for name, value in listed)
            whole = self.admit(ep, found)
            _check_text(ep, found, scope.get(UNREADABLE, ()))
            message = await receive()  # the whole body, in all but big calls
            raw: bytes = message.get("body", b"")
            limit = ep.config.max_body
            if (message.get("more_body") and len(raw) != whole) or len(raw) > limit:
                # (granian says more_body even when the message holds all the declared bytes, then sends an empty
                # last message: not asking for it saves a round trip through its Rust side, ~8 µs of CPU per call)
                raw = await _read_rest(raw, message, receive, limit)
            query: bytes = scope["query_string"]
            status, headers, body = await self.take(ep, method, found, raw, query.decode("latin-1") if query else "")
        except Refused as exc:
            status, headers, body = self.refused(method, path, exc)
        except Exception:
            status, headers, body = self.failed(method, path)
        raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        raw_headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})

    async def serve_rsgi(self, path: str, scope: Any, protocol: Any, listed: list[tuple[str, str]]) -> None:
        """A call on granian's RSGI interface (`flowboard/rsgi.py`; `listed` is `scope.headers.items()`): headers as
        text, the body in one read, the answer in one call (granian adds its Content-Length)."""
        method: str = scope.method
        try:
            ep = self.endpoint(path, method)
            found = dict(listed)  # (a value that is not ASCII text is not in `listed`: `_check_text` says so)
            if len(found) != len(listed):
                found = _joined(listed)
            whole = self.admit(ep, found)
            if unreadable := left_out(scope.headers, found):
                _check_text(ep, found, unreadable)
            if whole is not None:
                try:
                    raw: bytes = await protocol()  # no more than the Content-Length, which is within the limit
                except Exception:  # granian's ProtocolClosed
                    raw = b""
                if len(raw) != whole:
                    raise Refused(400, "the caller went away before sending the whole body")
            else:
                raw = await _read_chunks(protocol, ep.config.max_body)
            status, headers, body = await self.take(ep, method, found, raw, scope.query_string)
        except Refused as exc:
            status, headers, body = self.refused(method, path, exc)
        except Exception:
            status, headers, body = self.failed(method, path)
        protocol.response_bytes(status, headers, body)

    def refused(self, method: str, path: str, exc: Refused) -> tuple[int, list[tuple[str, str]], bytes]:
        log.warning("%s %s%s refused (%d): %s", method, self.prefix, _printable(path), exc.status, exc.message)
        return exc.status, [_JSON, *exc.headers], _dumps({"error": exc.message})

    def failed(self, method: str, path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        log.exception("%s %s%s failed", method, self.prefix, _printable(path))
        return 500, [_JSON], b'{"error":"the call could not be taken; see the server log"}'

    def endpoint(self, path: str, method: str) -> WebhookEndpoint:
        """The active flow's (or test listener's) endpoint for this path and method, or 404 / 405."""
        table = self.kind.tests if self.test else self.kind.routes
        methods = table.get(path)
        if methods is None:
            path = path.strip("/")
            methods = table.get(path)
            if methods is None:
                raise Refused(404, "the editor is not listening for a test call on this URL" if self.test else
                              "no active flow answers this URL (is the flow active?)")
        ep = methods.get(method)
        if ep is None:
            allow = ", ".join(sorted(methods))
            raise Refused(405, f"this URL takes {allow}, not {method}", [("allow", allow)])
        return ep

    def admit(self, ep: WebhookEndpoint, found: dict[str, str]) -> int | None:
        """The checks before the body is read: credentials in a header, and the declared size. Returns that size
        when the body is exactly that long (Content-Length without chunked transfer), else None."""
        auth = ep.config.auth
        kind = auth.type
        if kind == "header" or kind == "basic":
            self.check_auth(auth, found)
        declared = found.get("content-length")
        if declared is None:
            return None
        limit = ep.config.max_body
        if not (declared.isascii() and declared.isdigit()) or (whole := int(declared)) > limit:
            _refuse_length(declared, limit)
        if "transfer-encoding" in found:  # chunked: read to its end whatever Content-Length says
            return None
        return whole

    async def take(self, ep: WebhookEndpoint, method: str, found: dict[str, str], raw: bytes, query: str
                   ) -> tuple[int, list[tuple[str, str]], bytes]:
        """The call read: its signature checked, its body parsed into the trigger's item, the run started."""
        config = ep.config
        if config.auth.type == "hmac":
            self.check_signature(config.auth, found, raw)
        content_type = found.get("content-type")
        if content_type == "application/json" and raw:
            try:
                body = freeze_parsed(read_json(raw, max_bytes=None, what="the body"))  # (freeze takes it as it is)
            except JsonRefused as exc:
                raise Refused(exc.status, f"the body cannot be read: {exc}") from None
        elif raw and content_type is not None and content_type[:19].lower() == "multipart/form-data":
            body = await _multipart(found, raw, self.fb.blobs)
        else:
            body = _parse_body(content_type, raw)
            if isinstance(body, bytes):  # not text: the body is a file
                body = await _keep(self.fb.blobs, body, "body", (content_type or "").partition(";")[0].strip())
        # built frozen, as the engine would make it (it takes a frozen list as it is)
        keep = ep.keep
        items = FrozenList((FrozenDict({"body": freeze(body), "query": freeze(_query(query)) if query else _NO_QUERY,
                                        "headers": FrozenDict({k: v for k, v in found.items() if k in keep}
                                                              if keep is not None else
                                                              {k: v for k, v in found.items() if k not in ep.hidden}),
                                        "method": method, "path": ep.path}),))
        if self.test:
            return await self.test_call(ep, items)
        activation = ep.activation
        if activation is None or not activation.gate.admit():
            return 200, [_JSON], _SKIPPED
        try:
            if config.respond == "immediately":
                run_id = await self.launcher.accept(activation, ep.node_id, items, source=self.source)
                return 202, [_JSON], _dumps({"run_id": run_id})
            result = await self.launcher.run(activation, ep.node_id, items, source=self.source)
        except RunSkipped:  # decided in the store: a run goes in another process
            return 200, [_JSON], _SKIPPED
        return _answer(ep, result)

    async def test_call(self, ep: WebhookEndpoint, items: FrozenList) -> tuple[int, list[tuple[str, str]], bytes]:
        listener = ep.listener
        self.kind.stop_listening(ep.flow_id, listener)  # one call per listen
        if ep.config.respond == "immediately":
            run_id = new_run_id()
            task = self.launcher.spawn(self.launcher.run_plan(ep.plan, ep.version, ep.node_id, items,
                                                              source=self.source, run_id=run_id))
            if listener is not None:
                task.add_done_callback(lambda t: _settle(listener, t))
            return 202, [_JSON], _dumps({"run_id": run_id})
        try:
            result = await self.launcher.run_plan(ep.plan, ep.version, ep.node_id, items, source=self.source)
        except BaseException as exc:
            if listener is not None and not listener.done():
                listener.set_exception(exc if isinstance(exc, Exception) else RuntimeError("the test run stopped"))
            raise
        if listener is not None and not listener.done():
            listener.set_result(result)
        return _answer(ep, result)

    def check_auth(self, auth: Any, headers: dict[str, str]) -> None:
        if auth.type == "header":
            given = headers.get(auth.name.lower())
            if given is None:
                raise Refused(401, f"this webhook needs the {auth.name} header")
            if not _same(given, self.secret(auth, ("value", "token", "secret"))):
                raise Refused(403, f"the {auth.name} header is not the right token")
            return
        challenge = [("www-authenticate", 'Basic realm="Flowboard webhook"')]
        given = headers.get("authorization", "")
        scheme, _, encoded = given.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise Refused(401, "this webhook needs basic authentication", challenge)
        try:
            user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "the basic authentication header is malformed", challenge) from None
        fields = self.credential(auth.credential)
        want_user = str(fields.get("user") or fields.get("username") or "")
        want_password = str(fields.get("password") or "")
        ok_user = _same(user, want_user)
        ok_password = _same(password, want_password)
        if not (sep and ok_user and ok_password and want_user):
            raise Refused(403, "wrong user or password")

    def check_signature(self, auth: Any, headers: dict[str, str], raw: bytes) -> None:
        given = headers.get(auth.header.lower())
        if not given:
            raise Refused(401, f"this webhook needs a signature in the {auth.header} header")
        given = given.strip()
        if given[:7].lower() == "sha256=":
            given = given[7:]
        expected = hmac.new(self.secret(auth, ("secret", "value", "token")).encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected.encode(), given.lower().encode()):
            raise Refused(401, "the signature does not match the body")

    def secret(self, auth: Any, keys: tuple[str, ...]) -> str:
        fields = self.credential(auth.credential)
        for key in keys:
            if fields.get(key):
                return str(fields[key])
        log.error("credential %r has none of the fields %s that the webhook needs", auth.credential, ", ".join(keys))
        raise Refused(500, "the webhook's credential is not set up; see the server log")

    def credential(self, name: str) -> dict[str, Any]:
        try:
            found = self.fb.store.credential(name, CREDENTIAL_CACHE)  # read at most every few seconds
            fields = None if found is None else found[1]
        except Exception as exc:  # the secret key is wrong or the database is gone
            log.error("credential %r could not be read: %s", name, exc)
            fields = None
        if fields is None:
            log.error("the webhook's credential %r is missing", name)
            raise Refused(500, "the webhook's credential is not set up; see the server log")
        return fields


# -- reading the call ---------------------------------------------------------------------------------------------


def _joined(listed: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers by name when a name is given more than once: its values joined with ', ', as one header."""
    out: dict[str, str] = {}
    for name, value in listed:
        have = out.get(name)
        out[name] = value if have is None else f"{have}, {value}"
    return out


def left_out(given: Any, read: Collection[str]) -> tuple[str, ...]:
    """The names of the headers granian's RSGI gave without a value (not ASCII text: it drops such values), from its
    scope's `headers` (whose length counts names) and the names `read` with a value."""
    if len(given) == len(read):
        return ()
    return tuple(name for name in given.keys() if name not in read)  # noqa: SIM118


def _check_text(ep: WebhookEndpoint, found: dict[str, str], left_out: Iterable[str] = ()) -> None:
    """Refuse a call with a header the item keeps whose value is not ASCII text (HTTP's header values are; granian's
    RSGI leaves such a value out, `left_out` naming those, so both servers refuse it alike rather than run without it
    or with it misread)."""
    keep, hidden = ep.keep, ep.hidden
    names = [name for name, value in found.items() if not value.isascii()]
    names.extend(left_out)
    names = sorted({name for name in names if (name in keep if keep is not None else name not in hidden)})
    if names:
        raise Refused(400, f"the {', '.join(names)} header{'s' if len(names) > 1 else ''} "
                      f"hold{'' if len(names) > 1 else 's'} characters other than plain ASCII text, which this "
                      "server cannot read; send the value percent-encoded, or in the body")


def _refuse_length(declared: str, limit: int) -> NoReturn:
    """A Content-Length that is no number, or more than the webhook takes (read before the body)."""
    if not (declared.isascii() and declared.isdigit()):
        raise Refused(400, "the Content-Length header is not a number")
    raise Refused(413, f"the body is {int(declared):,} bytes; this webhook takes at most {limit:,}")


class CutShort(Exception):
    """An RSGI request body that ended before it was whole: the caller went away."""


async def next_chunk(body: Any) -> bytes | None:
    """The next piece of an RSGI request body (`protocol.__aiter__()`), None at its end. granian ends a whole body
    with one empty piece and one cut short (the caller gone, a Content-Length not met) with two, as it gives no error
    for it (granian 2.8; tests/test_rsgi.py and tests/test_webhooks.py check it): that raises CutShort."""
    try:
        chunk: bytes = await body.__anext__()
    except StopAsyncIteration:
        return None
    if chunk:
        return chunk
    try:
        await body.__anext__()
    except StopAsyncIteration:
        return None
    raise CutShort


async def _read_chunks(protocol: Any, limit: int) -> bytes:
    """An RSGI call's body of no declared size (chunked), read up to `limit` bytes (the rest drained, then 413)."""
    chunks: list[bytes] = []
    size = 0
    body = protocol.__aiter__()  # (granian's protocol is its own iterator, and only once: no `async for` twice)
    refused = False
    try:
        while (chunk := await next_chunk(body)) is not None:
            size += len(chunk)
            if size > limit:
                refused = True  # drained on (as `_drain`, up to DRAIN_LIMIT), so the caller gets the 413
                if size > DRAIN_LIMIT:
                    break
            else:
                chunks.append(chunk)
    except CutShort:
        raise Refused(400, "the caller went away before sending the whole body") from None
    if refused:
        raise Refused(413, f"the body is bigger than {limit:,} bytes, the most this webhook takes")
    return b"".join(chunks)


async def _read_rest(body: bytes, message: Message, receive: Receive, limit: int) -> bytes:
    """The body of a call whose first message (`body` of `message`) did not hold all of it, or held too much."""
    if not message.get("more_body"):
        if len(body) > limit:
            raise Refused(413, f"the body is bigger than {limit:,} bytes, the most this webhook takes")
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the caller went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            if message.get("more_body"):
                await _drain(receive)
            raise Refused(413, f"the body is bigger than {limit:,} bytes, the most this webhook takes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


DRAIN_LIMIT = 16 * 1024 * 1024


async def _drain(receive: Receive) -> None:
    """Read the rest of a refused body (up to DRAIN_LIMIT) and drop it, so the caller gets the 413: granian closes a
    connection whose request body was left unread, and the caller, still sending, sees a reset instead of the answer.
    """
    size = 0
    while size <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            return
        size += len(message.get("body", b""))


def _query(raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    return _pairs(parse_qsl(raw, keep_blank_values=True))


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Pairs as an object; a name given several times gets the list of its values."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            have = out[key]
            if isinstance(have, list):
                have.append(value)
            else:
                out[key] = [have, value]
        else:
            out[key] = value
    return out


def _parse_body(content_type: str | None, raw: bytes) -> Any:
    if not raw:
        return {}
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        try:
            return read_json(raw, max_bytes=None, what="the body")
        except JsonRefused as exc:
            raise Refused(exc.status, f"the body cannot be read: {exc}") from None
    if media == "application/x-www-form-urlencoded":
        try:
            return _pairs(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise Refused(400, "the form is not UTF-8 text") from None
    if not media and raw.lstrip()[:1] in (b"{", b"["):
        try:
            return read_json(raw, max_bytes=None, what="the body")
        except JsonRefused as exc:
            if "nested" in exc.message:
                raise Refused(exc.status, f"the body cannot be read: {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # bytes that are not text: the caller keeps them as a file


async def _keep(blobs: Blobs, content: bytes, name: str, mime_type: str | None) -> dict[str, Any]:
    """Bytes that came with a call, kept as a file: the item gets its reference."""
    try:
        return await asyncio.to_thread(blobs.put, content, name, mime_type or None)
    except FileTooLarge as exc:
        raise Refused(413, str(exc)) from None


async def _multipart(headers: dict[str, str], raw: bytes, blobs: Blobs) -> dict[str, Any]:
    """Fields as text, files as file references `{$file, name, mime_type, size}` (Starlette's parser on the body
    read)."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    scope = {"type": "http", "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
    try:
        async with Request(scope, replay).form(max_files=100, max_fields=1000) as form:
            parts: list[tuple[str, Any]] = []
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    content = await value.read()
                    parts.append((name, await _keep(blobs, content, value.filename or name, value.content_type)))
                else:
                    parts.append((name, value))
    except Refused:
        raise
    except Exception as exc:  # starlette's MultiPartException and the parser's own errors
        raise Refused(400, f"the multipart body cannot be read ({exc})") from None
    return _pairs(parts)


# -- answering ----------------------------------------------------------------------------------------------------


def _answer(ep: WebhookEndpoint, result: RunResult) -> tuple[int, list[tuple[str, str]], bytes]:
    for nid in ep.respond_nodes:
        step = result.steps.get(nid)
        if step is not None and step.status is StepStatus.succeeded and step.outputs.get("main"):
            return _custom(step.outputs["main"][0])
    if result.status is not RunStatus.succeeded:
        error = result.error or {}
        message = error.get("message") or result.status.value
        where = f" at node {error['node_id']}" if error.get("node_id") else ""
        return 500, [_JSON], _dumps({"error": f"the run {result.status.value}{where}: {message}",
                                     "run_id": result.run_id})
    output = result.output
    return 200, [_JSON], _json(output[0] if len(output) == 1 else output)


def _custom(answer: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a Respond to webhook node said: `{"status", "headers", "body"}`."""
    status = answer.get("status", 200)
    headers: list[tuple[str, str]] = []
    content_type = None
    for name, value in (answer.get("headers") or {}).items():
        pair = (str(name).lower(), str(value))
        try:
            pair[0].encode("latin-1"), pair[1].encode("latin-1")
        except UnicodeEncodeError:
            log.warning("response header %r is not Latin-1 text; left out", name)
            continue
        if pair[0] == "content-length" or "\n" in pair[1] or "\r" in pair[1]:
            continue
        if pair[0] == "content-type":
            content_type = pair[1]
        headers.append(pair)
    body = answer.get("body")
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, b""
    if isinstance(body, str) and (content_type is None or not content_type.startswith("application/json")):
        if content_type is None:
            headers.append(_TEXT)
        return status, headers, body.encode()
    if content_type is None:
        headers.append(_JSON)
    return status, headers, _json(body)


def _json(value: Any) -> bytes:
    try:
        return _dumps(value)
    except TypeError:
        return _dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)


def _printable(path: str) -> str:
    """The path for a log line: at most 200 characters, control characters escaped (no forged log lines)."""
    path = path[:200]
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _settle(listener: Any, task: Any) -> None:
    if listener.done():
        return
    if task.cancelled():
        listener.cancel()
    elif task.exception() is not None:
        listener.set_exception(task.exception())
    else:
        listener.set_result(task.result())
