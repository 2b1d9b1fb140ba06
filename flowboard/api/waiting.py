"""The resume link of a waiting run: `POST /webhook-waiting/<run id>/<signature>`, optional JSON data.

The signature is an HMAC of the run id with a key derived from the data folder's secret key (`Flowboard.resume_url`
makes the link; `{{ run.resume_url }}` hands it to a node that sends it). A Wait node set to "resume link" may also
ask for a header token from a credential. The JSON data becomes the Wait node's output. Answers:
202 `{"run_id", "status": "resumed"}`; 403 for a link whose signature does not match or a wrong token; 404 when the
run waits for no link; 409 when the wait was resumed already (saying by whom and when) or the run has ended.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..jsonlimits import JsonRefused, read_json
from ..store import WaitGone
from ..store.store import resumed_already
from ..waiting import LINK_PATH

if TYPE_CHECKING:
    from ..services import Flowboard

MAX_BODY = 1_000_000  # bytes of JSON data a resume call may bring


def register(app: Starlette, fb: Flowboard) -> None:
    async def resume(request: Request) -> JSONResponse:
        run_id, token = request.path_params["run_id"], request.path_params["token"]
        if not fb.resume_token_valid(run_id, token):
            return _answer(403, "this resume link is not valid: check that it was copied whole")
        waits = await asyncio.to_thread(fb.store.waits_of, run_id)
        linked = [nid for nid, w in waits.items() if w.data.get("via") == "link"]
        open_ = [nid for nid in linked if not waits[nid].resumed]
        if not open_:
            if linked:  # say by whom and when
                done = waits[linked[-1]]
                return _answer(409, resumed_already(done.resumed_at or 0.0, done.who))
            return _answer(404, "this run does not wait for its resume link")
        node_id = open_[0]
        refusal = await _check_auth(fb, waits[node_id].data, request)
        if refusal is not None:
            return refusal
        raw = await request.body()
        payload: Any = None
        if raw.strip():
            try:
                payload = read_json(raw, max_bytes=MAX_BODY, what="the resume data")
            except JsonRefused as exc:
                return _answer(exc.status, str(exc))
        try:
            await fb.resume_waiting(run_id, node_id, payload, who="resume link")
        except WaitGone as exc:
            return _answer(409, str(exc))
        return JSONResponse({"run_id": run_id, "status": "resumed"}, status_code=202)

    app.router.routes.insert(0, Route(LINK_PATH + "/{run_id}/{token}", resume, methods=["POST"],
                                      name="resume_waiting"))


async def _check_auth(fb: Flowboard, data: dict[str, Any], request: Request) -> JSONResponse | None:
    """A header token from a credential, when the Wait node asks for one."""
    credential = data.get("credential")
    if not credential:
        return None
    try:
        secret = await fb.services.credential(credential)
    except Exception:
        return _answer(403, "the resume link needs a token, and its credential is missing on the server")
    expected = next((str(secret[k]) for k in ("value", "token", "secret") if secret.get(k)), None)
    given = request.headers.get(str(data.get("header") or "X-Api-Key"))
    if expected is None or given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        return _answer(403, f"the resume link needs the right token in the {data.get('header') or 'X-Api-Key'} "
                            "header")
    return None


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
