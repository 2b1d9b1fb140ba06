"""Safe one-click links for approval tasks: every recipient gets their own signed, expiring link to one task.

```
 email / chat button ──GET /decide/<token>──▶ a confirmation page: the data, the outcome buttons, a comment box
                                                (records NOTHING: link previews and mail scanners only ever GET)
 the person presses   ──POST /decide/<token>─▶ checks, then ApprovalService.decide(..., channel="link")
```

- A token is `base64url(JSON {task, to, exp}) . base64url(HMAC-SHA256)`, keyed by a key derived from Flowboard's
  secret key, so it cannot be made or changed without it. It names the recipient: a link forwarded to someone else
  still decides as its recipient, and a link whose recipient no longer holds the task (handed on) is refused.
- Single use: a task takes one decision, so a replayed link is answered "already approved by Ada at 10:42".
- The POST must carry the page's CSRF value (an HMAC of the token, which only the page has) and, when the browser
  sends one, an Origin of this server: another site cannot post a decision even for a link it has seen.
- Links start with `FLOWBOARD_PUBLIC_URL` (the address people reach the server at, behind a reverse proxy), else
  `http://127.0.0.1:8080`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .forms_public import _e, _notice, _page, _plain, _read_form
from .store.approvals import OPEN, ApprovalError, NotAllowed, TaskNotFound

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from .approvals import ApprovalService
    from .services import Flowboard

log = logging.getLogger("flowboard.links")

DEFAULT_BASE = "http://127.0.0.1:8080"
DEFAULT_LIFETIME = 7 * 24 * 3600  # a link to a task without a deadline expires after a week


class LinkRefused(Exception):
    """The link cannot be used; the message says why, for the page."""


@dataclass(frozen=True, slots=True)
class Claim:
    task_id: str
    recipient: str
    expires: float


class Links:
    """Makes and reads the links. `key` is secret; `base` is the public address of the server."""

    def __init__(self, key: bytes | Callable[[], bytes], base: str | None = None):
        self._source = key
        self._derived: bytes | None = None
        self.base = (base or os.environ.get("FLOWBOARD_PUBLIC_URL") or DEFAULT_BASE).rstrip("/")

    @property
    def _key(self) -> bytes:
        """Derived from the secret key on first use (a server that never makes a link never reads it)."""
        if self._derived is None:
            raw = self._source() if callable(self._source) else self._source
            self._derived = hashlib.sha256(b"flowboard approval links\0" + raw).digest()
        return self._derived

    def url(self, task_id: str, recipient: str, expires: float | None = None, outcome: str | None = None) -> str:
        """The link expires at `expires` (a task's deadline) in whole seconds, rounded down: it never outlives the
        deadline, so once a task is past due (escalated, timed out) its old links all say they have expired."""
        claim = {"task": task_id, "to": recipient, "exp": math.floor(expires or time.time() + DEFAULT_LIFETIME)}
        body = _b64(orjson.dumps(claim, option=orjson.OPT_SORT_KEYS))
        token = f"{body}.{_b64(self._sign(body))}"
        return f"{self.base}/decide/{token}" + (f"?outcome={outcome}" if outcome else "")

    def read(self, token: str, now: float | None = None) -> Claim:
        body, dot, signature = token.partition(".")
        try:
            valid = bool(dot) and hmac.compare_digest(_unb64(signature), self._sign(body))
            claim = orjson.loads(_unb64(body)) if valid else None
        except (ValueError, orjson.JSONDecodeError):
            valid, claim = False, None
        if not valid or not isinstance(claim, dict) or not {"task", "to", "exp"} <= set(claim):
            raise LinkRefused("This link is not valid: it was changed or cut short. Open the link from the message "
                              "again, in full.")
        if (time.time() if now is None else now) > float(claim["exp"]):
            raise LinkRefused("This link has expired. Decide in the Flowboard inbox, or ask for a new link.")
        return Claim(str(claim["task"]), str(claim["to"]), float(claim["exp"]))

    def csrf(self, token: str) -> str:
        return _b64(hmac.new(self._key, b"csrf\0" + token.encode(), hashlib.sha256).digest())

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- the pages ----------------------------------------------------------------------------------------------------


def routes(fb: Flowboard) -> list[BaseRoute]:
    return [Route("/decide/{token}", DecisionPage(fb.approvals), methods=["GET", "POST"], name="decide")]


def register(app: Starlette, fb: Flowboard) -> None:
    """Put the link pages ahead of NiceGUI's mount."""
    app.router.routes[0:0] = routes(fb)


class DecisionPage:
    def __init__(self, service: ApprovalService):
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        response = await self.handle(request)
        await response(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        links = self.service.links
        if links is None:
            return _page("Not available", _notice("Links are not available", "This server makes no decision "
                                                                             "links."), 404)
        token = request.path_params["token"]
        try:
            claim = links.read(token)
            task = self.service.store.get(claim.task_id)
        except LinkRefused as exc:
            return _page("Link refused", _notice("This link cannot be used", str(exc)), 403)
        except TaskNotFound:
            return _page("Not found", _notice("This task does not exist any more",
                                              "It may have been deleted with its run."), 404)
        if task.status != OPEN:
            return _page(task.title, _notice("Nothing left to decide", f"This request was already {task.describe()}."),
                         409 if request.method == "POST" else 200)
        if not await run_in_threadpool(self.service.answers_for, task, claim.recipient):
            return _page("Link refused", _notice("This link is not yours any more",
                                                 f"It was sent to {claim.recipient}, but the task has been handed to "
                                                 f"{', '.join(task.assignees)}."), 403)
        if request.method != "POST":
            return _page(task.title, _confirmation(task, token, links.csrf(token), request.query_params.get("outcome")))
        try:
            form = await _read_form(request)
        except ValueError as exc:
            return _page(task.title, _notice("The answer could not be read", str(exc)), 400)
        origin = request.headers.get("origin")
        if not hmac.compare_digest(form.get("csrf", ""), links.csrf(token)) or (
                origin is not None and origin != "null" and urlsplit(origin).netloc != request.headers.get("host")):
            return _page("Refused", _notice("This answer was refused", "It did not come from the page of this link. "
                                                                       "Open the link again and press a button "
                                                                       "there."), 403)
        outcome = form.get("outcome", "")
        fields = {f["name"]: form.get(f"field_{f['name']}", "") for f in _form(task)}
        responder = claim.recipient[5:] if claim.recipient.lower().startswith("user:") else claim.recipient
        try:
            decided = await self.service.decide(task.id, outcome, responder, comment=form.get("comment", "").strip(),
                                                fields=fields, channel="link", roles=None)
        except NotAllowed as exc:
            return _page(task.title, _notice("You cannot decide this request", str(exc)), 403)
        except ApprovalError as exc:
            return _page(task.title, _notice("Not recorded", str(exc)[:1].upper() + str(exc)[1:] + "."), 409)
        return _page(task.title, f'<div class="done"><div class="tick" aria-hidden="true">✓</div>'
                                 f'<h1>Recorded</h1><p class="message" role="status">{_e(task.title)}: '
                                 f'{_e(decided.describe())}.</p></div>')


def _form(task: Any) -> list[dict[str, Any]]:
    show = (task.data or {}).get("show") if isinstance(task.data, dict) else None
    form = show.get("form") if isinstance(show, dict) else None
    return [f for f in form if isinstance(f, dict) and f.get("name")] if isinstance(form, list) else []


def _confirmation(task: Any, token: str, csrf: str, chosen: str | None) -> str:
    show = (task.data or {}).get("show") if isinstance(task.data, dict) else None
    show = show if isinstance(show, dict) else {}
    message = show.get("message") or ""
    fields: dict[str, Any] = show["fields"] if isinstance(show.get("fields"), dict) else {}
    rows = "".join(f"<dt>{_e(str(k))}</dt><dd>{_e(_plain(v))}</dd>" for k, v in fields.items())
    questions = ""
    for f in _form(task):
        default = "" if f.get("default") is None else str(f["default"])
        kind = {"number": "number", "yes_no": "text"}.get(str(f.get("type")), "text")
        required = " required" if f.get("required") else ""
        questions += (f'<label for="f_{_e(f["name"])}">{_e(str(f.get("label") or f["name"]))}</label>'
                      f'<input id="f_{_e(f["name"])}" name="field_{_e(f["name"])}" type="{kind}" '
                      f'value="{_e(default)}"{required}>')
    buttons = "".join(
        f'<button type="submit" name="outcome" value="{_e(o)}"{" autofocus" if o == chosen else ""}>'
        f'{_e(o.replace("_", " ").capitalize())}</button>' for o in task.outcomes)
    due = f'<p class="intro">Decide before {_e(_when(task.due))}.</p>' if task.due else ""
    return (f"<h1>{_e(task.title)}</h1>" + (f'<p class="intro">{_e(message)}</p>' if message else "") + due
            + (f"<dl>{rows}</dl>" if rows else "")
            + f'<form method="post" action="/decide/{_e(token)}"><input type="hidden" name="csrf" value="{_e(csrf)}">'
            + questions + '<label for="comment">Comment (optional)</label>'
            + '<textarea id="comment" name="comment" rows="3"></textarea>'
            + f'<div class="buttons">{buttons}</div></form>'
            + '<p class="intro">Nothing is recorded until you press a button.</p>')


def _when(at: float | None) -> str:
    from .store.approvals import when

    return when(at).removeprefix("at ").removeprefix("on ")
