"""The public form pages: `/form/<path>` for every active flow with a Form trigger.

Plain HTML from a route of the outer app (no NiceGUI, no websocket, no JavaScript): GET shows the form, POST checks
the answers at each field (the page comes back with the messages and the values kept, and nothing runs) or starts a
run with the answers as its item and shows the thank-you message or the flow's answer. A path that no active flow
serves is a 404 page with a plain message. Pages carry a strict Content-Security-Policy (no scripts at all).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from .blobs import Blobs, FileTooLarge, is_file_ref, max_file_bytes, size_text
from .engine import RunStatus
from .triggers import FormEndpoint, FormTriggers, RunSkipped

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .services import Flowboard

log = logging.getLogger("flowboard.form")

MAX_BODY = 1024 * 1024
MAX_FIELDS = 1000
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


# -- routes -------------------------------------------------------------------------------------------------------


def routes(fb: Flowboard) -> list[BaseRoute]:
    return [Route("/form/{path:path}", FormPage(fb), methods=["GET", "POST"], name="form")]


def register(app: Starlette, fb: Flowboard) -> None:
    """Put the form route ahead of NiceGUI's mount."""
    app.router.routes[0:0] = routes(fb)


class FormPage:
    def __init__(self, fb: Flowboard):
        self.fb = fb
        self.kind: FormTriggers = fb.triggers.kind(FormTriggers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        path = request.path_params["path"].strip("/")
        ep = self.kind.routes.get(path)
        if ep is None:
            return _page("Form not found", _notice("This form is not available",
                                                   "The link may be wrong, or the form has been switched off."), 404)
        if request.method != "POST":
            return _page(ep.config.title, render_form(ep.config, {}, {}))
        try:
            form = await _read_form(request, ep.config, self.fb.blobs)
        except ValueError as exc:
            status = 413 if "too long" in str(exc) or isinstance(exc, FileTooLarge) else 400
            return _page(ep.config.title, _notice("The answers could not be read", str(exc)), status)
        item, errors = _read_answers(ep.config, form)
        if errors:
            return _page(ep.config.title, render_form(ep.config, form, errors))  # 200: a page, not a failure
        return await self.submit(ep, item)

    async def submit(self, ep: FormEndpoint, item: dict[str, Any]) -> Response:
        config, activation = ep.config, ep.activation
        busy = _page(config.title, _notice("Please try again in a moment",
                                           "The form is busy with the previous answers."), 503)
        if not activation.gate.admit():
            return busy
        try:
            if config.respond.type == "message":
                await self.fb.launcher.accept(activation, ep.node_id, [item], source="form")
                return _page(config.title, _thanks(config.title, config.respond.message, again=ep.config.path))
            result = await self.fb.launcher.run(activation, ep.node_id, [item], source="form")
        except RunSkipped:  # decided in the store: a run goes in another process
            return busy
        if result.status is not RunStatus.succeeded:
            log.warning("form /form/%s: run %s ended %s", ep.config.path, result.run_id, result.status.value)
            return _page(config.title, _notice("Something went wrong",
                                               "Your answers could not be processed. Please try again later."), 500)
        return _page(config.title, _thanks(config.title, None, result.output[0] if result.output else {},
                                           again=ep.config.path))


async def _read_form(request: Request, config: Any = None, blobs: Blobs | None = None) -> dict[str, Any]:
    """The answers by field name: text, or for a file field the reference of the file kept (`blobs`). A form with a
    file field is sent as multipart/form-data, any other (and an approval link's page) as urlencoded text."""
    uploads = {f.name for f in config.fields if f.type == "file"} if config is not None else set()
    limit = MAX_BODY + len(uploads) * max_file_bytes()
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ValueError("The answers are too long.")
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != "application/x-www-form-urlencoded" and not (media == "multipart/form-data" and uploads):
        raise ValueError("Please send the answers from the form page.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ValueError("The answers are too long.")
        chunks.append(chunk)
    if media == "multipart/form-data":
        assert blobs is not None
        return await _read_multipart(request, b"".join(chunks), uploads, blobs)
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("The answers are not UTF-8 text.") from None
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:  # more fields than any form has
        raise ValueError("There are too many answers; please send the answers from the form page.") from None
    return {name: value for name, value in pairs if name not in uploads}  # one value per field; the last wins


async def _read_multipart(request: Request, raw: bytes, uploads: set[str], blobs: Blobs) -> dict[str, Any]:
    """Text fields as text; a file chosen for a file field kept as a file (its reference in the answers); no file
    chosen (the browser sends an empty part) is no answer; a file sent for another field is not kept."""
    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    answers: dict[str, Any] = {}
    try:
        async with Request(request.scope, replay).form(max_files=max(len(uploads), 1), max_fields=MAX_FIELDS,
                                                       max_part_size=MAX_BODY) as form:
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    content = await value.read()
                    if name in uploads and (content or value.filename):
                        answers[name] = await asyncio.to_thread(blobs.put, content, value.filename or name,
                                                                value.content_type or None)
                elif name not in uploads:
                    answers[name] = value
    except FileTooLarge as exc:
        raise FileTooLarge(f"The file is too large: {str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    except Exception:  # starlette's MultiPartException and the parser's own errors
        raise ValueError("The answers could not be read; please send them from the form page.") from None
    return answers


def _read_answers(config: Any, form: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    from .nodes.form import read_answers

    return read_answers(config, form)


# -- HTML ---------------------------------------------------------------------------------------------------------

_e = html.escape

STYLE = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;background:#f3f4f6;color:#111827;
 font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:640px;margin:0 auto;padding:48px 16px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.06);
 padding:32px 32px 28px}
h1{font-size:1.6rem;line-height:1.25;margin:0 0 8px}
.intro{color:#4b5563;margin:0 0 24px;white-space:pre-line}
.card>.intro:last-child{margin-bottom:4px}
.field{margin:0 0 20px}
label.caption{display:block;font-weight:600;margin:0 0 6px}
.req{color:#b91c1c;margin-left:2px}
input[type=text],input[type=email],input[type=number],input[type=date],textarea,select{width:100%;font:inherit;
 color:inherit;background:#fff;border:1px solid #d1d5db;border-radius:8px;padding:10px 12px}
textarea{min-height:120px;resize:vertical}
input:focus,textarea:focus,select:focus{outline:none;border-color:#4f46e5;box-shadow:0 0 0 3px rgba(79,70,229,.2)}
.check{display:flex;gap:10px;align-items:flex-start;font-weight:600}
.check input{width:18px;height:18px;margin:3px 0 0;accent-color:#4f46e5}
.invalid input,.invalid textarea,.invalid select{border-color:#dc2626}
.error{color:#b91c1c;font-size:.9rem;margin:6px 0 0}
.hint{color:#4b5563;font-size:.9rem;margin:6px 0 0}
input[type=file]{font:inherit}
.summary{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;border-radius:8px;padding:10px 14px;
 margin:0 0 20px;font-size:.95rem}
button{font:inherit;font-weight:600;color:#fff;background:#4f46e5;border:0;border-radius:8px;padding:11px 22px;
 cursor:pointer}
button:hover{background:#4338ca}
button:focus-visible{outline:3px solid rgba(79,70,229,.4);outline-offset:2px}
.done{text-align:center;padding:12px 0}
.tick{width:56px;height:56px;border-radius:50%;background:#dcfce7;color:#15803d;display:flex;align-items:center;
 justify-content:center;margin:0 auto 16px;font-size:30px}
.message{white-space:pre-line;color:#374151;margin:0}
dl{text-align:left;margin:16px 0 0;display:grid;grid-template-columns:max-content 1fr;gap:6px 16px}
dt{font-weight:600;color:#374151}dd{margin:0;color:#111827;white-space:pre-wrap;word-break:break-word}
.again{margin:20px 0 0;font-size:.9rem}
a{color:#4f46e5}
footer{text-align:center;color:#9ca3af;font-size:.8rem;margin-top:16px}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">'
                f'<link rel="icon" href="data:,">'
                f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
                f'<body><main><div class="card">{body}</div><footer>Powered by Flowboard</footer></main></body></html>')
    return HTMLResponse(document, status_code=status, headers=HEADERS)


def _notice(heading: str, text: str) -> str:
    return f'<h1>{_e(heading)}</h1><p class="intro">{_e(text)}</p>'


def _thanks(title: str, message: str | None, item: dict[str, Any] | None = None, again: str = "") -> str:
    """The page after sending: `message`, or the flow's answer `item` (its `message` or `text`, else its fields)."""
    body = ""
    if item is not None:
        text = next((item[k] for k in ("message", "text") if isinstance(item.get(k), str)), None)
        if text is not None:
            message = text
        elif item:
            rows = "".join(f"<dt>{_e(str(k))}</dt><dd>{_e(_plain(v))}</dd>" for k, v in item.items())
            body = f'<dl role="status">{rows}</dl>'
    if not body:
        body = f'<p class="message" role="status">{_e(message or "Thank you! Your answers were sent.")}</p>'
    link = f'<p class="again"><a href="/form/{_e(again)}">Send another answer</a></p>' if again else ""
    return f'<div class="done"><div class="tick" aria-hidden="true">✓</div><h1>{_e(title)}</h1>{body}{link}</div>'



def _plain(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str | int | float):
        return str(value)
    if is_file_ref(value):
        return f"{value.get('name', 'file')} ({size_text(int(value.get('size') or 0))})"
    return json.dumps(value, ensure_ascii=False)


def render_form(config: Any, values: dict[str, Any], errors: dict[str, str]) -> str:
    """The form as HTML: `values` as sent (kept after a failed check), `errors` shown at their fields."""
    parts = [f"<h1>{_e(config.title)}</h1>"]
    if config.description:
        parts.append(f'<p class="intro">{_e(config.description)}</p>')
    if errors:
        count = len(errors)
        parts.append(f'<div class="summary" role="alert">Please correct the {count} field{"s" if count > 1 else ""} '
                     "marked below.</div>")
    files = any(f.type == "file" for f in config.fields)
    parts.append('<form method="post" enctype="multipart/form-data" novalidate>' if files
                 else '<form method="post" novalidate>')
    for f in config.fields:
        parts.append(_field(f, values, errors.get(f.name)))
    parts.append(f'<button type="submit">{_e(config.submit_label)}</button></form>')
    return "".join(parts)


def _field(f: Any, values: dict[str, Any], error: str | None) -> str:
    fid = f"f-{f.name}"
    required = ' required aria-required="true"' if f.required else ""
    star = '<span class="req" aria-hidden="true">*</span>' if f.required else ""
    described = f' aria-invalid="true" aria-describedby="{fid}-error"' if error else ""
    placeholder = f' placeholder="{_e(f.placeholder)}"' if f.placeholder else ""
    value = values.get(f.name, "")
    common = f'id="{fid}" name="{_e(f.name)}"{required}{described}'
    if f.type == "checkbox":
        checked = " checked" if f.name in values else ""
        control = (f'<label class="check" for="{fid}"><input type="checkbox" {common} value="on"{checked}>'
                   f"<span>{_e(f.caption)}{star}</span></label>")
    else:
        if f.type == "long_text":
            widget = f"<textarea {common}{placeholder}>{_e(value)}</textarea>"
        elif f.type == "file":
            widget = f'<input type="file" {common}>'
            if isinstance(value, dict):  # a browser cannot be given the file back
                widget += (f'<p class="hint">{_e(str(value.get("name", "")))} was received; please choose it again '
                           "before sending.</p>")
        elif f.type == "choice":
            first = f'<option value="">{_e(f.placeholder or "Choose…")}</option>'
            options = "".join(f'<option value="{_e(o)}"{" selected" if o == value else ""}>{_e(o)}</option>'
                              for o in f.options)
            widget = f"<select {common}>{first}{options}</select>"
        else:
            kind = {"number": "number", "date": "date", "email": "email"}.get(f.type, "text")
            extra = ' step="any" inputmode="decimal"' if kind == "number" else ""
            widget = f'<input type="{kind}" {common} value="{_e(value)}"{placeholder}{extra}>'
        control = f'<label class="caption" for="{fid}">{_e(f.caption)}{star}</label>{widget}'
    message = f'<p class="error" id="{fid}-error">{_e(error)}</p>' if error else ""
    return f'<div class="field{" invalid" if error else ""}">{control}{message}</div>'
