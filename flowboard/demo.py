"""Stand-ins for the outside platforms the example business flows talk to, so they run on a fresh machine.

`flowboard demo` serves them at http://127.0.0.1:8091 beside the app (http://127.0.0.1:8080). They are NOT real
services: small in-memory APIs shaped like typical ones, each with a page showing what it received. Pointing a flow at
the real service is a change of its URL (and credential) only.

```
 /crm/deals?status=won&page=N       the CRM's deals, 10 a page ({"data": [...], "page": N})
 /crm/customers/{id}   PUT          the CRM's copy of a customer (the customer hub writes it)
 /invoicing/invoices   POST, GET    invoices; an `Idempotency-Key` header (or `external_id`) makes a repeat return the
                                    invoice made the first time (200) instead of a second one (201)
 /invoicing/customers/{id}  PUT     the invoicing system's copy of a customer
 /accounting/entries   POST, GET    bookings (approved invoices)
 /chat/webhook         POST         a Slack-style incoming webhook ({"text", "blocks"})
 /mail                              the mail catcher: every email sent to its SMTP port 2525 (plain, no login)
 /received                          everything each stand-in received, as JSON; / is a page listing it
```
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from typing import Any

from fastapi import Body, FastAPI, Header, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

PORT = 8091
SMTP_PORT = 2525
PAGE = 10
CUSTOMERS = ["Acme GmbH", "Globex", "Initech", "Umbrella", "Stark Industries"]


def seed_deals() -> list[dict[str, Any]]:
    deals = []
    for n in range(1, 26):
        deals.append({"id": n, "customer": CUSTOMERS[n % len(CUSTOMERS)], "status": "won" if n % 4 else "lost",
                      "amount": 500 + 125 * n, "currency": "EUR", "closed": f"2026-11-{n:02d}"})
    return deals


class DemoState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.deals = seed_deals()
        self.invoices: list[dict[str, Any]] = []
        self.keys: dict[str, int] = {}
        self.entries: list[dict[str, Any]] = []
        self.crm_customers: dict[str, dict[str, Any]] = {}
        self.invoicing_customers: dict[str, dict[str, Any]] = {}
        self.chat: list[dict[str, Any]] = []
        self.mail: list[dict[str, Any]] = []


def create_demo_app(state: DemoState | None = None) -> FastAPI:
    state = state or DemoState()
    app = FastAPI(title="Flowboard stand-ins (not real services)", docs_url=None, redoc_url=None)
    app.state.demo = state

    @app.get("/crm/deals")
    def deals(status: str | None = None, page: int = Query(1, ge=1)) -> dict[str, Any]:
        chosen = [d for d in state.deals if status is None or d["status"] == status]
        return {"data": chosen[(page - 1) * PAGE: page * PAGE], "page": page, "total": len(chosen)}

    @app.put("/crm/customers/{customer_id}")
    def crm_customer(customer_id: str, data: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        with state.lock:
            state.crm_customers[customer_id] = {**data, "synced": time.time()}
        return {"id": customer_id, "saved": True}

    @app.post("/invoicing/invoices")
    def invoice(response: Response, data: dict[str, Any] = Body(...),  # noqa: B008
                idempotency_key: str | None = Header(None)) -> dict[str, Any]:
        key = idempotency_key or (str(data["external_id"]) if data.get("external_id") is not None else None)
        with state.lock:
            if key is not None and key in state.keys:
                response.status_code = 200
                return state.invoices[state.keys[key]]
            number = f"INV-{1000 + len(state.invoices) + 1}"
            made = {"number": number, **data, "created": time.time()}
            state.invoices.append(made)
            if key is not None:
                state.keys[key] = len(state.invoices) - 1
        response.status_code = 201
        return made

    @app.get("/invoicing/invoices")
    def invoices() -> list[dict[str, Any]]:
        return state.invoices

    @app.put("/invoicing/customers/{customer_id}")
    def invoicing_customer(customer_id: str, data: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        with state.lock:
            state.invoicing_customers[customer_id] = {**data, "synced": time.time()}
        return {"id": customer_id, "saved": True}

    @app.post("/accounting/entries", status_code=201)
    def entry(data: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        with state.lock:
            made = {"entry": len(state.entries) + 1, **data}
            state.entries.append(made)
        return made

    @app.get("/accounting/entries")
    def entries() -> list[dict[str, Any]]:
        return state.entries

    @app.post("/chat/webhook")
    def chat(data: dict[str, Any] = Body(...)) -> Response:  # noqa: B008
        if not isinstance(data.get("text"), str):
            return JSONResponse({"error": "a message needs text"}, 400)
        with state.lock:
            state.chat.append(data)
        return Response("ok", media_type="text/plain")

    @app.get("/received")
    def received() -> dict[str, Any]:
        return {"invoices": state.invoices, "entries": state.entries, "crm_customers": state.crm_customers,
                "invoicing_customers": state.invoicing_customers, "chat": state.chat, "mail": state.mail}

    @app.get("/mail", response_class=HTMLResponse)
    def mail() -> str:
        rows = "".join(f"<tr><td>{html.escape(m['to'])}</td><td>{html.escape(m['subject'])}</td>"
                       f"<td><pre>{html.escape(m['text'][:2000])}</pre></td></tr>" for m in reversed(state.mail))
        return ("<!doctype html><meta charset=utf-8><title>Mail catcher</title><style>body{font-family:system-ui;"
                "margin:24px}td{vertical-align:top;border-bottom:1px solid #ddd;padding:6px}pre{white-space:pre-wrap;"
                "margin:0}</style><h1>Mail catcher (not a real mail server)</h1><p>Every email sent to "
                f"127.0.0.1:{SMTP_PORT}, newest first. Nothing leaves this machine.</p><table><tr><th>To</th>"
                f"<th>Subject</th><th>Text</th></tr>{rows}</table>")

    @app.post("/reset")
    def reset() -> dict[str, Any]:
        state.reset()
        return {"reset": True}

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> str:
        sections: list[tuple[str, list[Any]]] = [("Invoices made", state.invoices), ("Bookings", state.entries),
                    ("Customers in the CRM", list(state.crm_customers.items())),
                    ("Customers in invoicing", list(state.invoicing_customers.items())),
                    ("Chat messages", [m.get("text") for m in state.chat])]
        body = "".join(f"<h2>{html.escape(title)} ({len(rows)})</h2><ul>"
                       + "".join(f"<li><code>{html.escape(str(r))}</code></li>" for r in rows[-50:]) + "</ul>"
                       for title, rows in sections)
        return ("<!doctype html><meta charset=utf-8><title>Flowboard stand-ins</title>"
                "<style>body{font-family:system-ui;margin:24px;max-width:1000px}code{font-size:12px}</style>"
                "<h1>Flowboard stand-ins</h1><p>These are <b>not</b> real services: small local APIs that the example "
                "flows call, so they run without accounts anywhere. Point a flow at the real service by changing "
                "its URL and credential.</p>" + body)

    return app


class _Catcher:
    """aiosmtpd's handler: keeps each message (to, from, subject, plain text) in the state."""

    def __init__(self, state: DemoState):
        self.state = state

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd's name
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        body = message.get_body(preferencelist=("plain", "html"))
        with self.state.lock:
            self.state.mail.append({"to": ", ".join(envelope.rcpt_tos), "from": envelope.mail_from,
                                    "subject": str(message.get("subject", "")),
                                    "text": body.get_content() if body is not None else ""})
        return "250 Message accepted"


class DemoServer:
    """The stand-ins on 127.0.0.1:`port` (and the mail catcher on `smtp_port`), in threads of their own, for
    `flowboard demo` and for tests."""

    def __init__(self, port: int = PORT, state: DemoState | None = None, smtp_port: int | None = SMTP_PORT):
        import uvicorn

        self.state = state or DemoState()
        self.port = port
        config = uvicorn.Config(create_demo_app(self.state), host="127.0.0.1", port=port, log_level="warning",
                                access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._serve, name="flowboard-demo", daemon=True)
        self.smtp_port = smtp_port
        self.smtp: Any = None

    def start(self, timeout: float = 15) -> DemoServer:
        """Start both; if either cannot (a port is taken), nothing is left running and RuntimeError says which."""
        if self.smtp_port is not None:
            from aiosmtpd.controller import Controller

            smtp = Controller(_Catcher(self.state), hostname="127.0.0.1", port=self.smtp_port)
            try:
                smtp.start()
            except Exception as exc:
                with contextlib.suppress(Exception):  # its thread ended; its event loop stays open otherwise
                    smtp.stop(no_assert=True)
                if not smtp.loop.is_closed():
                    smtp.loop.close()
                raise RuntimeError(f"the mail catcher could not start on 127.0.0.1:{self.smtp_port} (is the port "
                                   f"taken?): {exc}") from None
            self.smtp = smtp
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the stand-ins could not start on 127.0.0.1:{self.port} (is the port taken?)")
            time.sleep(0.05)
        return self

    def _serve(self) -> None:
        with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind; start() says so in words
            self.server.run()

    def stop(self) -> None:
        """Stop what was started (safe to call after a failed start, and twice)."""
        self.server.should_exit = True
        if self.thread.ident is not None:
            self.thread.join(10)
        if self.smtp is not None:
            self.smtp.stop()
            self.smtp = None

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def prepare(fb: Any) -> list[str]:
    """What the example flows need in this data folder, made once: the Customers table (with a few rows) and the
    `Team chat` credential pointing at the chat stand-in. Returns what it did, in words."""
    from .datatables import Column, TableSchema
    from .store.datatables import TableNotFound

    done = []
    try:
        fb.tables.tables.get("Customers")
    except TableNotFound:
        fb.tables.tables.create(TableSchema(name="Customers", key="customer_id", columns=[
            Column(name="customer_id"), Column(name="name", required=True), Column(name="email"),
            Column(name="segment", type="choice", choices=["small", "medium", "large"]), Column(name="vat_id")]))
        fb.tables.tables.insert("Customers", [
            {"customer_id": f"C{n:03d}", "name": name, "email": f"billing@{name.split()[0].lower()}.example",
             "segment": ["small", "medium", "large"][n % 3]} for n, name in enumerate(CUSTOMERS, 1)])
        done.append("made the data table Customers (5 rows)")
    try:
        fb.tables.tables.get("Employees")
    except TableNotFound:
        fb.tables.tables.create(TableSchema(name="Employees", key="employee", columns=[
            Column(name="employee"), Column(name="email"), Column(name="days_left", type="number", default=0),
            Column(name="manager")]))
        fb.tables.tables.insert("Employees", [
            {"employee": "ada", "email": "ada@example.com", "days_left": 20, "manager": "grace"},
            {"employee": "alan", "email": "alan@example.com", "days_left": 2, "manager": "grace"},
            {"employee": "grace", "email": "grace@example.com", "days_left": 25, "manager": "ada"}])
        done.append("made the data table Employees (3 rows)")
    try:
        fb.tables.tables.get("Invoice rules")
    except TableNotFound:
        fb.tables.tables.create(TableSchema(name="Invoice rules", columns=[
            Column(name="amount is greater than or equal to", type="number"),
            Column(name="amount is less than", type="number"), Column(name="needed", type="number"),
            Column(name="approvers")]))
        fb.tables.tables.insert("Invoice rules", [
            {"amount is greater than or equal to": 0, "amount is less than": 5000, "needed": 1, "approvers": "grace"},
            {"amount is greater than or equal to": 5000, "needed": 2, "approvers": "grace, ada, linus"}])
        done.append("made the data table Invoice rules (2 rules)")
    if fb.store.get_credential("Mail") is None:
        fb.store.set_credential("Mail", "smtp", {"host": "127.0.0.1", "port": str(SMTP_PORT), "security": "plain"})
        done.append(f"made the credential Mail (the mail catcher on port {SMTP_PORT})")
    if fb.store.get_credential("Team chat") is None:
        fb.store.set_credential("Team chat", "chat_webhook", {"url": f"http://127.0.0.1:{PORT}/chat/webhook"})
        done.append("made the credential Team chat (the chat stand-in)")
    return done
