"""The secrets sweep: after runs that used every credential type (HTTP, OAuth2, SMTP, databases and the brokers, each
against a local server or service that checks it; some servers echo the secret back, some runs fail), no secret value
is found in the data folder's plain files (the database with every run's data included), the flow exports, the log
records, the run data, or any API response."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from flowboard import credential_types
from flowboard.api import credentials as credentials_api
from flowboard.api import rest
from flowboard.engine import RunStatus
from flowboard.model import parse_flow
from flowboard.sdk import secret_forms
from flowboard.services import Flowboard
from flowboard.store.secrets import KEY_FILE

from .conftest import make_flow, require_service
from .mailserver import MailServer
from .oauthserver import API_KEY, BASIC, CLIENT_ID, CLIENT_SECRET, COOKIE, AuthServer
from .servers import HttpServer

PG_PASSWORD = "pg-sweep-password-7f3a"  # PostgreSQL here trusts local connections: any password works
MAIL_PASSWORD = "mail-sweep-password-91c2"


def _files(root: Path) -> Iterator[Path]:
    for path in root.rglob("*"):
        if path.is_file() and path.name != KEY_FILE:
            yield path


async def test_no_secret_is_found_anywhere_after_runs_with_every_credential_type(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    caplog.set_level(logging.DEBUG)
    data_dir = tmp_path / "data"
    fb = Flowboard(data_dir=data_dir)
    fb.public_url = "http://flowboard.test"
    app = FastAPI()
    credentials_api.register(app, fb)
    rest.register(app, fb)
    _info, api_key = fb.store.create_api_key("sweep")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flowboard.test",
                               headers={"X-API-Key": api_key})
    answers: list[str] = []

    async def api(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await client.request(method, path, **kwargs)
        answers.append(response.text)
        return response

    flows: list[str] = []

    def flow(name: str, node: dict[str, Any]) -> str:
        parsed = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"}, {"id": "n", **node}], [("t", "n")],
                                      name=name))
        fb.save_flow(parsed, None)
        flows.append(parsed.id)
        return parsed.id

    try:
        async with AuthServer() as auth, HttpServer() as echo:
            http_credentials: dict[str, tuple[str, dict[str, str]]] = {
                "key-header": ("api_key", {"where": "header", "name": "X-API-Key", "value": API_KEY}),
                "key-query": ("api_key", {"where": "query", "name": "api_key", "value": API_KEY}),
                "token": ("bearer", {"token": "bearer-sweep-token-5d1e"}),
                "login": ("basic", {"user": BASIC[0], "password": BASIC[1]}),
                "raw-header": ("header", {"name": "X-API-Key", "value": API_KEY}),
                "raw-query": ("query", {"name": "api_key", "value": API_KEY}),
                "session": ("cookie", {"name": COOKIE[0], "value": COOKIE[1]}),
                "service": ("oauth2_client", {"token_url": auth.url("/token"), "client_id": CLIENT_ID,
                                              "client_secret": CLIENT_SECRET}),
                "account": ("oauth2_code", {"authorize_url": auth.url("/authorize"), "token_url": auth.url("/token"),
                                            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}),
            }
            auth.access["bearer-sweep-token-5d1e"] = time.time() + 3600
            for name, (type_, fields) in http_credentials.items():
                assert (await api("PUT", f"/api/v1/credentials/{name}", json={"type": type_, "fields": fields})) \
                    .status_code == 200
            # the OAuth2 sign-in, as a browser does it; short-lived tokens, so runs renew them
            auth.expires_in = 30
            url = (await api("POST", "/api/v1/credentials/account/connect")).json()["url"]
            async with httpx.AsyncClient() as browser:
                back = httpx.URL((await browser.get(url)).headers["location"])
            assert (await api("GET", f"/oauth/callback?{back.query.decode()}")).status_code == 303

            for name in http_credentials:
                checked = flow(f"checked {name}", {"type": "http.request", "config": {
                    "url": auth.url("/api/me"), "credential": name}})
                echoed = flow(f"echoed {name}", {"type": "http.request", "config": {  # the server sends it all back
                    "url": echo.url("/echo/x"), "credential": name}})
                failing = flow(f"failing {name}", {"type": "http.request", "config": {  # and in an error
                    "url": echo.url("/status/500"), "credential": name}})
                for flow_id, status in ((checked, RunStatus.succeeded), (echoed, RunStatus.succeeded),
                                        (failing, RunStatus.failed)):
                    result = (await api("POST", f"/api/v1/flows/{flow_id}/runs", json={"items": [{}]})).json()
                    assert result["status"] == status.value, (name, result)
                    await api("GET", f"/api/v1/runs/{result['run_id']}")
            assert set(auth.grants) == {"authorization_code", "refresh_token", "client_credentials"}

            with MailServer(security="starttls", login=("ada", MAIL_PASSWORD)) as mail:
                assert (await api("PUT", "/api/v1/credentials/mail", json={"type": "smtp", "fields": {
                    "host": "127.0.0.1", "port": str(mail.port), "security": "starttls", "user": "ada",
                    "password": MAIL_PASSWORD, "certificate": mail.certificate_pem}})).status_code == 200
                sent = flow("mail", {"type": "email.send", "config": {
                    "credential": "mail", "sender": "flows@example.com", "to": ["ada@example.com"],
                    "subject": "Hello", "text": "Hi"}})
                assert (await fb.run_flow(sent)).status is RunStatus.succeeded
                await api("POST", "/api/v1/credentials/mail/test")

            pg = {"kind": "postgresql", "host": "127.0.0.1", "port": "5432", "user": "postgres",
                  "password": PG_PASSWORD, "database": "test"}
            await api("PUT", "/api/v1/credentials/pg", json={"type": "db", "fields": pg})
            tested = (await api("POST", "/api/v1/credentials/pg/test")).json()
            require_service("PostgreSQL", tested["ok"])
            await api("PUT", "/api/v1/credentials/pg-url", json={"type": "database", "fields": {
                "url": f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:5432/test"}})
            for name in ("pg", "pg-url"):
                ok = flow(f"sql {name}", {"type": "sql.query", "config": {"credential": name,
                                                                          "query": "SELECT 1 AS one"}})
                bad = flow(f"bad sql {name}", {"type": "sql.query", "config": {"credential": name,
                                                                               "query": "SELECT * FROM nowhere_x"}})
                assert (await fb.run_flow(ok)).status is RunStatus.succeeded
                assert (await fb.run_flow(bad)).status is RunStatus.failed

            brokers = {  # the local services take these logins (or none): the URLs themselves are the secrets
                "cache": ("redis", {"url": "redis://127.0.0.1:6379/3"},
                          {"type": "redis.command", "config": {"credential": "cache", "action": {
                              "operation": "set", "key": "sweep", "value": "x"}}}),
                "queue": ("rabbitmq", {"url": "amqp://guest:guest@127.0.0.1:5672/%2F"},
                          {"type": "rabbitmq.publish", "config": {"credential": "queue", "routing_key": "sweep",
                                                                  "message": "x", "persistent": False}}),
                "sensors": ("mqtt", {"host": "127.0.0.1", "port": "1883", "user": "sweep-user",
                                     "password": "mqtt-sweep-pw-4c1d"},
                            {"type": "mqtt.publish", "config": {"credential": "sensors", "topic": "sweep/x",
                                                                "message": "x"}}),
                "bus": ("nats", {"url": "nats://127.0.0.1:4222/"},
                        {"type": "nats.message", "config": {"credential": "bus", "action": {
                            "operation": "publish", "subject": "sweep.x", "message": "x"}}}),
            }
            for name, (type_, fields, node) in brokers.items():
                await api("PUT", f"/api/v1/credentials/{name}", json={"type": type_, "fields": fields})
                tested = (await api("POST", f"/api/v1/credentials/{name}/test")).json()
                require_service(type_, tested["ok"])
                result = await fb.run_flow(flow(f"broker {name}", node))
                assert result.status is RunStatus.succeeded, (name, result.error)

            for path in ("/api/v1/credentials", "/api/v1/runs?limit=500", "/api/v1/flows"):
                await api("GET", path)
            for flow_id in flows:
                await api("GET", f"/api/v1/flows/{flow_id}/export")
                for run in fb.store.list_runs(flow_id):
                    await api("GET", f"/api/v1/runs/{run.id}")
            exports = [fb.export_flow(flow_id) for flow_id in flows]
            run_data = [repr(fb.store.get_steps(run.id)) + repr(fb.store.get_run(run.id))
                        for run in fb.store.list_runs()]
            issued = list(auth.issued)
        await fb.aclose()
        fb.store.close()

        secrets: set[str] = set(issued) | {CLIENT_SECRET, PG_PASSWORD, MAIL_PASSWORD}
        for info in fb.store.list_credentials():
            found = fb.store.credential(info.name)
            assert found is not None
            secrets |= set(credential_types.secret_values(*found))
        secrets.add(base64.b64encode(f"{BASIC[0]}:{BASIC[1]}".encode()).decode())
        assert API_KEY in secrets and BASIC[1] in secrets and COOKIE[1] in secrets and len(secrets) > 15
        forms = {form for secret in secrets for form in secret_forms(secret) if len(form) >= 6}

        places: dict[str, str] = {f"file {p.relative_to(tmp_path)}": p.read_bytes().decode("latin-1")
                                  for p in _files(data_dir)}
        places |= {f"export {i}": text for i, text in enumerate(exports)}
        places |= {f"run data {i}": text for i, text in enumerate(run_data)}
        places |= {f"API response {i}": text for i, text in enumerate(answers)}
        places |= {f"log {i}": f"{r.getMessage()} {r.exc_text or ''}" for i, r in enumerate(caplog.records)}
        assert len(places) > 100 and any(p.startswith("file ") and p.endswith(".db") for p in places)
        leaks = [(where, form[:12]) for where, text in places.items() for form in forms if form in text]
        assert leaks == [], [places[w][:300] for w, _ in leaks]
    finally:
        await client.aclose()
