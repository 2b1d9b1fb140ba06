"""Every credential type against a local server that checks it: the HTTP request node signed with API keys, bearer,
basic, header, query, cookie and both OAuth2 types (a real local provider, PKCE and refresh included); database
connections and SMTP through "Test connection"; deleting a credential in use is refused (store, API, CLI); the secret
key rotates all or nothing; retries honour Retry-After; proxy and TLS options."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiohttp import web
from fastapi import FastAPI
from flowboard.nodes.http import retry_after

from flowboard.api import credentials as credentials_api
from flowboard.engine import RunResult, RunStatus
from flowboard.model import parse_flow
from flowboard.services import Flowboard
from flowboard.store import CredentialInUse, SecretKeyError
from flowboard.store.secrets import KEY_FILE
from flowboard.store.tables import credentials_t, oauth_sign_ins_t

from .conftest import make_flow
from .mailserver import MailServer, self_signed
from .oauthserver import API_KEY, BASIC, CLIENT_ID, CLIENT_SECRET, COOKIE, PUBLIC_CLIENT, AuthServer
from .servers import HttpServer, serve


@pytest.fixture
async def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flowboard]:
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    app = Flowboard(data_dir=tmp_path)
    app.public_url = "http://flowboard.test"
    yield app
    await app.aclose()
    app.store.close()


@pytest.fixture
async def auth() -> AsyncIterator[AuthServer]:
    async with AuthServer() as server:
        yield server


@pytest.fixture
async def api(fb: Flowboard) -> AsyncIterator[httpx.AsyncClient]:
    """The credentials API and the OAuth2 callback, in process."""
    app = FastAPI()
    credentials_api.register(app, fb)
    _info, key = fb.store.create_api_key("test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flowboard.test",
                                 headers={"X-API-Key": key}) as client:
        yield client


def http_flow(fb: Flowboard, config: dict[str, Any], name: str = "call") -> str:
    flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                 {"id": "http", "type": "http.request", "config": config}], [("t", "http")],
                                name=name))
    fb.save_flow(flow, None)
    return flow.id


async def call(fb: Flowboard, credential: str, url: str, **config: Any) -> RunResult:
    return await fb.run_flow(http_flow(fb, {"url": url, "credential": credential, **config}, name=credential))


def stored(fb: Flowboard, name: str) -> dict[str, Any]:
    found = fb.store.get_credential(name)
    assert found is not None
    return found


async def connect(fb: Flowboard, api: httpx.AsyncClient, name: str) -> None:
    """Sign in as a browser would: Connect, the provider's page, back to our callback."""
    answer = await api.post(f"/api/v1/credentials/{name}/connect")
    assert answer.status_code == 200, answer.text
    async with httpx.AsyncClient() as browser:
        at_provider = await browser.get(answer.json()["url"])
    assert at_provider.status_code == 302
    back = httpx.URL(at_provider.headers["location"])
    assert back.path == "/oauth/callback"
    done = await api.get(f"/oauth/callback?{back.query.decode()}")
    assert done.status_code == 303 and done.headers["location"] == f"/credentials?connected={name}", done.text


# -- HTTP types ------------------------------------------------------------------------------------------------------

HTTP_CASES = [
    ("api_key", {"where": "header", "name": "X-API-Key", "value": API_KEY}, "header"),
    ("api_key", {"where": "query", "name": "api_key", "value": API_KEY}, "query"),
    ("bearer", None, "bearer"),  # a token from the provider, below
    ("basic", {"user": BASIC[0], "password": BASIC[1]}, "basic"),
    ("header", {"name": "X-API-Key", "value": API_KEY}, "header"),
    ("query", {"name": "api_key", "value": API_KEY}, "query"),
    ("cookie", {"name": COOKIE[0], "value": COOKIE[1]}, "cookie"),
]


@pytest.mark.parametrize(("type_", "fields", "via"), HTTP_CASES)
async def test_http_types_sign_requests_and_test_connection(fb: Flowboard, auth: AuthServer, type_: str,
                                                            fields: dict[str, str] | None, via: str) -> None:
    if fields is None:
        auth.access["bearer-token-xyz"] = time.time() + 3600
        fields = {"token": "bearer-token-xyz"}
    fb.store.set_credential("cred", type_, {**fields, "test_url": auth.url("/api/me")})
    result = await call(fb, "cred", auth.url("/api/me"))
    assert result.status is RunStatus.succeeded, result.error
    assert result.output[0]["body"] == {"ok": True, "via": via}
    assert auth.api_calls == [via]
    assert "accepted the credential (status 200)" in await fb.test_credential("cred")
    # a wrong value: the API refuses it, and so does the test, in words
    fb.store.set_credential("cred", type_, {**{k: (v + "-wrong" if k in ("value", "password", "token") else v)
                                               for k, v in fields.items()}, "test_url": auth.url("/api/me")})
    failed = await call(fb, "cred", auth.url("/api/me"))
    assert failed.status is RunStatus.failed and "401" in failed.error["message"]
    with pytest.raises(ValueError, match="refused the credential"):
        await fb.test_credential("cred")


async def test_http_type_without_a_test_address_says_how_to_test(fb: Flowboard) -> None:
    fb.store.set_credential("t", "bearer", {"token": "x"})
    with pytest.raises(ValueError, match="enter an address to try it on"):
        await fb.test_credential("t")


# -- OAuth2 ----------------------------------------------------------------------------------------------------------

async def test_oauth2_client_credentials_fetches_and_reuses_a_token(fb: Flowboard, auth: AuthServer) -> None:
    fb.store.set_credential("svc", "oauth2_client", {"token_url": auth.url("/token"), "client_id": CLIENT_ID,
                                                     "client_secret": CLIENT_SECRET, "scope": "read"})
    for _ in range(2):
        result = await call(fb, "svc", auth.url("/api/me"))
        assert result.status is RunStatus.succeeded, result.error
        assert result.output[0]["body"]["via"] == "bearer"
    assert auth.grants == ["client_credentials"]  # fetched once, reused while valid
    assert auth.client_auth == ["basic"]
    assert "gave an access token" in await fb.test_credential("svc")
    fb.store.set_credential("svc", "oauth2_client", {"token_url": auth.url("/token"), "client_id": CLIENT_ID,
                                                     "client_secret": "wrong"})
    failed = await call(fb, "svc", auth.url("/api/me"))
    assert failed.status is RunStatus.failed
    assert "the client ID or secret is wrong" in failed.error["message"]
    assert "wrong" not in failed.error["message"].replace("is wrong", "")


async def test_oauth2_client_id_and_secret_in_the_body_when_the_provider_asks_so(fb: Flowboard,
                                                                                   auth: AuthServer) -> None:
    from flowboard.credential_types import credential_data

    data = credential_data("oauth2_client", {"token_url": auth.url("/token"), "client_id": CLIENT_ID,
                                             "client_secret": CLIENT_SECRET, "client_auth": "body"}, None)
    fb.store.set_credential("svc", "oauth2_client", data)
    assert (await call(fb, "svc", auth.url("/api/me"))).status is RunStatus.succeeded
    assert auth.client_auth == ["body"] and auth.grants == ["client_credentials"]
    assert credential_data("oauth2_client", {"token_url": "t", "client_id": "c", "client_secret": "s"},
                           None)["client_auth"] == "basic"


async def test_oauth2_code_with_pkce_connects_refreshes_and_reports_a_failed_refresh(
        fb: Flowboard, auth: AuthServer, api: httpx.AsyncClient) -> None:
    answer = await api.put("/api/v1/credentials/crm", json={"type": "oauth2_code", "fields": {
        "authorize_url": auth.url("/authorize"), "token_url": auth.url("/token"), "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "scope": "contacts"}})
    assert answer.status_code == 200, answer.text
    not_yet = await call(fb, "crm", auth.url("/api/me"))
    assert not_yet.status is RunStatus.failed and "press Connect" in not_yet.error["message"]

    auth.expires_in = 30  # within the refresh leeway: every use renews it
    await connect(fb, api, "crm")
    first = stored(fb, "crm")
    assert first["access_token"].startswith("access-") and first["refresh_token"].startswith("refresh-")
    assert auth.grants == ["authorization_code"]

    result = await call(fb, "crm", auth.url("/api/me"))
    assert result.status is RunStatus.succeeded, result.error
    assert auth.grants == ["authorization_code", "refresh_token"]
    renewed = stored(fb, "crm")
    assert renewed["access_token"] != first["access_token"] and renewed["refresh_token"] != first["refresh_token"]

    auth.expires_in = 3600
    await call(fb, "crm", auth.url("/api/me"))  # renews once more (the stored token expires within the leeway) ...
    await call(fb, "crm", auth.url("/api/me"))  # ... then the new one lasts an hour: no refresh
    assert auth.grants.count("refresh_token") == 2

    # the provider revokes the sign-in: the run fails in words, and the credentials page shows it
    fb.store.set_credential("crm", "oauth2_code", {**stored(fb, "crm"), "expires_at": time.time()})
    auth.revoke_refresh_tokens()
    failed = await call(fb, "crm", auth.url("/api/me"))
    assert failed.status is RunStatus.failed
    assert "renewing the sign-in failed" in failed.error["message"] and "press Connect" in failed.error["message"]
    [info] = fb.store.list_credentials()
    assert info.problem is not None and "no longer valid" in info.problem
    listed = (await api.get("/api/v1/credentials")).json()["credentials"]
    assert listed[0]["problem"] == info.problem
    # signing in again clears it
    await connect(fb, api, "crm")
    assert fb.store.list_credentials()[0].problem is None
    assert (await call(fb, "crm", auth.url("/api/me"))).status is RunStatus.succeeded


async def test_oauth2_public_client_and_refused_callbacks(fb: Flowboard, auth: AuthServer,
                                                          api: httpx.AsyncClient) -> None:
    fb.store.set_credential("pub", "oauth2_code", {"authorize_url": auth.url("/authorize"),
                                                   "token_url": auth.url("/token"), "client_id": PUBLIC_CLIENT})
    await connect(fb, api, "pub")
    assert (await call(fb, "pub", auth.url("/api/me"))).status is RunStatus.succeeded
    unknown = await api.get("/oauth/callback?state=forged&code=abc")
    assert unknown.status_code == 400 and "unknown, finished already or too old" in unknown.text
    url = (await api.post("/api/v1/credentials/pub/connect")).json()["url"]
    state = httpx.URL(url).params["state"]
    denied = await api.get(f"/oauth/callback?state={state}&error=access_denied")
    assert denied.status_code == 400 and "access was denied" in denied.text
    assert (await api.post("/api/v1/credentials/nope/connect")).status_code == 404


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def test_oauth2_sign_in_started_on_one_server_finishes_on_another(tmp_path: Path, auth: AuthServer,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        database: str) -> None:
    """Two servers of one database (or one server restarted between Connect and the provider's redirect): the
    sign-in is kept in the database, its PKCE verifier encrypted, used once, and refused after 10 minutes."""
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    with contextlib.ExitStack() as cleanup:
        url = None
        if database == "postgresql":
            url = cleanup.enter_context(pg_schema())
        one, other = Flowboard(data_dir=tmp_path, database=url), Flowboard(data_dir=tmp_path, database=url)
        clients = []
        for server in (one, other):
            server.public_url = "http://flowboard.test"
            app = FastAPI()
            credentials_api.register(app, server)
            clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flowboard.test",
                                             headers={"X-API-Key": server.store.create_api_key("test")[1]}))
        try:
            on_one, on_other = clients
            one.store.set_credential("crm", "oauth2_code", {
                "authorize_url": auth.url("/authorize"), "token_url": auth.url("/token"), "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET})

            async def sign_in_started_on_one() -> httpx.URL:
                answer = await on_one.post("/api/v1/credentials/crm/connect")
                assert answer.status_code == 200, answer.text
                async with httpx.AsyncClient() as browser:
                    at_provider = await browser.get(answer.json()["url"])
                assert at_provider.status_code == 302
                return httpx.URL(at_provider.headers["location"])

            back = await sign_in_started_on_one()
            state = back.params["state"]
            with one.store.engine.connect() as conn:
                [row] = conn.execute(sa.select(oauth_sign_ins_t)).all()
            assert row.credential == "crm" and row.data.startswith("gAAAAA")  # the verifier is encrypted
            assert state not in str(tuple(row)) and row.expires - row.created == 600
            assert one.store.rotate_secret_key() == 1  # a new secret key meanwhile: the sign-in goes on

            done = await on_other.get(f"/oauth/callback?{back.query.decode()}")
            assert done.status_code == 303 and done.headers["location"] == "/credentials?connected=crm", done.text
            assert stored(other, "crm")["access_token"].startswith("access-")
            assert auth.grants == ["authorization_code"]  # the provider checked the PKCE verifier against the challenge
            ran = await call(one, "crm", auth.url("/api/me"))  # one had read it unconnected a moment before
            assert ran.status is RunStatus.succeeded, ran.error

            again = await on_one.get(f"/oauth/callback?{back.query.decode()}")  # once only, on either server
            assert again.status_code == 400 and "finished already" in again.text
            with one.store.engine.connect() as conn:
                assert conn.execute(sa.select(sa.func.count()).select_from(oauth_sign_ins_t)).scalar() == 0

            late = await sign_in_started_on_one()
            with one.store.engine.begin() as conn:  # eleven minutes later
                conn.execute(oauth_sign_ins_t.update().values(expires=time.time() - 60))
            too_old = await on_other.get(f"/oauth/callback?{late.query.decode()}")
            assert too_old.status_code == 400
            assert "within 10 minutes" in too_old.text and "press Connect" in too_old.text
            assert auth.grants == ["authorization_code"]
        finally:
            for client in clients:
                await client.aclose()
            for server in (one, other):
                await server.aclose()
                server.store.close()


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A PostgreSQL URL on a schema of its own, dropped after."""
    from .test_store import PG_URL, _pg_admin

    admin = _pg_admin()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


# -- databases and mail ----------------------------------------------------------------------------------------------

async def test_database_connection_sqlite_runs_a_query_and_tests(fb: Flowboard, tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    with sa.create_engine(f"sqlite:///{db}").begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        conn.execute(sa.text("INSERT INTO t VALUES (41)"))
    fb.store.set_credential("shop", "db", {"kind": "sqlite", "database": str(db)})
    assert "SELECT 1" in await fb.test_credential("shop")
    flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                 {"id": "q", "type": "sql.query", "config": {"credential": "shop",
                                                                             "query": "SELECT x + 1 AS y FROM t"}}],
                                [("t", "q")]))
    fb.save_flow(flow, None)
    result = await fb.run_flow(flow.id)
    assert result.status is RunStatus.succeeded, result.error
    assert result.output == [{"y": 42}]


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
async def test_database_connection_servers(fb: Flowboard, kind: str) -> None:
    from .conftest import require_service

    fields = {"postgresql": {"kind": "postgresql", "host": "127.0.0.1", "port": "5432", "user": "postgres",
                             "database": "test"},
              "mariadb": {"kind": "mariadb", "host": "127.0.0.1", "port": "3306", "user": "root",
                          "database": "test"}}[kind]
    fb.store.set_credential("db", "db", fields)
    try:
        message = await fb.test_credential("db")
    except ValueError as exc:
        require_service(kind, "connect" not in str(exc).lower())
        raise
    assert "SELECT 1" in message
    fb.store.set_credential("db", "db", {**fields, "user": "nobody", "password": "wrong-password-123"})
    with pytest.raises(ValueError, match="Could not connect to the database") as caught:
        await fb.test_credential("db")
    assert "wrong-password-123" not in str(caught.value)


async def test_database_connection_form_checks(fb: Flowboard) -> None:
    from flowboard.credential_types import credential_data, database_url

    with pytest.raises(ValueError, match="Server \\(host\\) is required for PostgreSQL"):
        credential_data("db", {"kind": "postgresql", "database": "x"}, None)
    with pytest.raises(ValueError, match="must be one of postgresql, mariadb, sqlite"):
        credential_data("db", {"kind": "oracle", "database": "x"}, None)
    data = credential_data("db", {"host": "h", "user": "u@x", "password": "p/w:d", "database": "d"}, None)
    assert database_url(data) == "postgresql+psycopg://u%40x:p%2Fw%3Ad@h/d"


async def test_smtp_test_connection_logs_in(fb: Flowboard) -> None:
    with MailServer(security="starttls", login=("ada", "mail-pw-123")) as server:
        fields = {"host": "127.0.0.1", "port": str(server.port), "security": "starttls", "user": "ada",
                  "password": "mail-pw-123", "certificate": server.certificate_pem}
        fb.store.set_credential("mail", "smtp", fields)
        assert await fb.test_credential("mail") == f"Connected to 127.0.0.1:{server.port} and logged in"
        fb.store.set_credential("mail", "smtp", {**fields, "password": "wrong-pw-456"})
        with pytest.raises(ValueError, match="refused the user and password") as caught:
            await fb.test_credential("mail")
        assert "wrong-pw-456" not in str(caught.value)


# -- delete refused while in use -------------------------------------------------------------------------------------

async def test_deleting_a_credential_in_use_is_refused_naming_the_flows(fb: Flowboard, api: httpx.AsyncClient,
                                                                         tmp_path: Path) -> None:
    fb.store.set_credential("gh", "bearer", {"token": "t0ken"})
    fb.store.set_credential("unused", "bearer", {"token": "t0ken"})
    http_flow(fb, {"url": "https://api.github.com/user", "credential": "gh"}, name="Nightly report")
    approval = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                     {"id": "s", "type": "logic.wait", "config": {"seconds": 1}}], [("t", "s")],
                                    name="Unrelated"))
    fb.save_flow(approval, None)
    with pytest.raises(CredentialInUse) as caught:
        fb.store.delete_credential("gh")
    assert caught.value.flows == ["Nightly report"]
    assert "'Nightly report' uses it" in str(caught.value)
    answer = await api.delete("/api/v1/credentials/gh")
    assert answer.status_code == 409 and answer.json()["flows"] == ["Nightly report"]
    listed = {c["name"]: c["used_by"] for c in (await api.get("/api/v1/credentials")).json()["credentials"]}
    assert listed == {"gh": ["Nightly report"], "unused": []}
    assert (await api.delete("/api/v1/credentials/unused")).status_code == 204
    env = {**os.environ, "FLOWBOARD_DATA_DIR": str(tmp_path)}
    env.pop("FLOWBOARD_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "flowboard", "credential", "delete", "gh"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "'Nightly report' uses it" in proc.stderr, proc.stderr
    assert fb.store.get_credential("gh") == {"token": "t0ken"}


# -- secret key rotation ---------------------------------------------------------------------------------------------

def _rows(fb: Flowboard) -> dict[str, str]:
    with fb.store.engine.connect() as conn:
        return {r.name: r.data for r in conn.execute(sa.select(credentials_t.c.name, credentials_t.c.data))}


async def test_secret_key_rotation_is_all_or_nothing(fb: Flowboard, tmp_path: Path) -> None:
    for n in range(3):
        fb.store.set_credential(f"c{n}", "bearer", {"token": f"token-{n}"})
    key_file = tmp_path / KEY_FILE
    old_key, old_rows = key_file.read_text(), _rows(fb)

    with pytest.raises(RuntimeError, match="on purpose"):  # stops after re-encrypting one row
        fb.store.rotate_secret_key(fail_after=1)
    assert key_file.read_text() == old_key and _rows(fb) == old_rows
    assert [fb.store.get_credential(f"c{n}") for n in range(3)] == [{"token": f"token-{n}"} for n in range(3)]

    with fb.store.engine.begin() as conn:  # a row the key cannot read stops it before anything changes
        conn.execute(credentials_t.insert().values(name="broken", type="bearer", data="not-a-token", created=0,
                                                   updated=0))
    with pytest.raises(SecretKeyError, match="'broken' cannot be decrypted"):
        fb.store.rotate_secret_key()
    assert key_file.read_text() == old_key and {k: v for k, v in _rows(fb).items() if k != "broken"} == old_rows
    with fb.store.engine.begin() as conn:
        conn.execute(credentials_t.delete().where(credentials_t.c.name == "broken"))

    env = {**os.environ, "FLOWBOARD_DATA_DIR": str(tmp_path)}
    env.pop("FLOWBOARD_DATABASE_URL", None)
    env.pop("FLOWBOARD_SECRET_KEY", None)
    proc = subprocess.run([sys.executable, "-m", "flowboard", "secret-key", "rotate"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and "re-encrypted 3 credentials" in proc.stdout, proc.stderr
    new_key = key_file.read_text()
    assert new_key != old_key and "," not in new_key and oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert all(_rows(fb)[k] != v for k, v in old_rows.items())
    assert [fb.store.get_credential(f"c{n}") for n in range(3)] == [{"token": f"token-{n}"} for n in range(3)]


async def test_rotation_with_the_key_in_the_environment(fb: Flowboard, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    old = Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", old)
    fb.store.secrets._fernet = None
    fb.store.set_credential("c", "bearer", {"token": "tok"})
    with pytest.raises(SecretKeyError, match="NEW,OLD"):
        fb.store.rotate_secret_key()
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", f"{new},{old}")
    assert fb.store.rotate_secret_key() == 1
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", new)  # the old key dropped: everything still reads
    fb.store.secrets._fernet = None
    assert fb.store.get_credential("c") == {"token": "tok"}


# -- retries ---------------------------------------------------------------------------------------------------------

async def test_retry_after_seconds_and_http_date(fb: Flowboard, auth: AuthServer) -> None:
    flow_id = http_flow(fb, {"url": auth.url("/busy/a?times=2&after=1"), "retries": 3})
    started = time.monotonic()
    result = await fb.run_flow(flow_id)
    assert result.status is RunStatus.succeeded, result.error
    assert result.output[0]["body"] == {"tries": 3} and time.monotonic() - started >= 1.9
    result = await fb.run_flow(http_flow(fb, {"url": auth.url("/busy/b?times=1&after=date&status=503"),
                                              "method": "POST", "retries": 1}))
    assert result.status is RunStatus.succeeded and result.output[0]["body"] == {"tries": 2}
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("120") == 120.0 and retry_after("soon") is None


async def test_retries_are_bounded_and_never_repeat_a_post_after_a_500(fb: Flowboard, auth: AuthServer) -> None:
    result = await fb.run_flow(http_flow(fb, {"url": auth.url("/busy/c?times=9&after=0"), "retries": 2}))
    assert result.status is RunStatus.failed and "answered 429" in result.error["message"]
    assert auth.busy["c"] == 3
    result = await fb.run_flow(http_flow(fb, {"url": auth.url("/busy/d?times=9&after=0&status=500"),
                                              "method": "POST", "retries": 2}))
    assert result.status is RunStatus.failed and auth.busy["d"] == 1
    result = await fb.run_flow(http_flow(fb, {"url": auth.url("/busy/e?times=9&after=3600"), "retries": 2,
                                              "retry_max_wait": 5}))
    assert result.status is RunStatus.failed and auth.busy["e"] == 1  # asked to wait an hour: not waited


# -- proxy and TLS ---------------------------------------------------------------------------------------------------

class Proxy:
    """A forward proxy for plain http: takes absolute-form requests and passes them on, recording each."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.port = 0

    async def __aenter__(self) -> Proxy:
        async def forward(request: web.Request) -> web.StreamResponse:
            self.seen.append(str(request.url))
            async with httpx.AsyncClient(trust_env=False) as client:
                answer = await client.request(request.method, str(request.url), content=await request.read(),
                                              headers={"X-Via-Proxy": "yes"})
            return web.Response(status=answer.status_code, body=answer.content,
                                content_type=answer.headers.get("content-type", "text/plain").split(";")[0])

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        self._runner, self.port = await serve(app)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


async def test_proxy_option_sends_through_the_proxy(fb: Flowboard) -> None:
    async with HttpServer() as server, Proxy() as proxy:
        result = await fb.run_flow(http_flow(fb, {"url": server.url("/echo"),
                                                  "proxy": f"http://127.0.0.1:{proxy.port}"}))
        assert result.status is RunStatus.succeeded, result.error
        assert proxy.seen == [server.url("/echo")]
        assert server.requests[-1]["headers"]["x-via-proxy"] == "yes"


async def test_tls_custom_ca_and_skip_verify(fb: Flowboard, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import ssl

    cert, key = self_signed()
    (tmp_path / "c.pem").write_text(cert)
    (tmp_path / "k.pem").write_text(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    async def hello(request: web.Request) -> web.StreamResponse:
        return web.json_response({"hello": "tls"})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner, port = await serve(app, ssl_context=context)
    url = f"https://127.0.0.1:{port}/hello"
    try:
        plain = await fb.run_flow(http_flow(fb, {"url": url}))
        assert plain.status is RunStatus.failed and "certificate" in plain.error["message"].lower()
        trusted = await fb.run_flow(http_flow(fb, {"url": url, "ca_certificate": cert}))
        assert trusted.status is RunStatus.succeeded and trusted.output[0]["body"] == {"hello": "tls"}
        with caplog.at_level(logging.WARNING):
            skipped = await fb.run_flow(http_flow(fb, {"url": url, "verify_tls": False}))
        assert skipped.status is RunStatus.succeeded
        assert any("does not check the server's certificate" in r.getMessage() for r in caplog.records)
    finally:
        await runner.cleanup()
    bad = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"},
                                {"id": "h", "type": "http.request", "config": {"url": url, "ca_certificate": "x"}}],
                               [("t", "h")]))
    [problem] = fb.check(bad)
    assert "must be a certificate in PEM form" in problem.message


async def test_concurrent_runs_share_one_refresh(fb: Flowboard, auth: AuthServer, api: httpx.AsyncClient) -> None:
    fb.store.set_credential("crm", "oauth2_code", {"authorize_url": auth.url("/authorize"),
                                                   "token_url": auth.url("/token"), "client_id": CLIENT_ID,
                                                   "client_secret": CLIENT_SECRET})
    auth.expires_in = 3600
    await connect(fb, api, "crm")
    fb.store.set_credential("crm", "oauth2_code", {**stored(fb, "crm"), "expires_at": time.time()})
    flow_id = http_flow(fb, {"url": auth.url("/api/me"), "credential": "crm"})
    results = await asyncio.gather(*(fb.run_flow(flow_id) for _ in range(5)))
    assert all(r.status is RunStatus.succeeded for r in results), [r.error for r in results]
    assert auth.grants.count("refresh_token") == 1  # a rotating refresh token used twice would fail


async def test_a_server_holding_the_old_key_writes_under_the_new_one_after_rotation(fb: Flowboard,
                                                                                    tmp_path: Path) -> None:
    from flowboard.store import Store

    fb.store.set_credential("a", "bearer", {"token": "t-a"})
    other = Store(fb.store.engine, data_dir=tmp_path)  # another process: the CLI that rotates
    try:
        assert other.rotate_secret_key() == 1
    finally:
        other.secrets._fernet = None
    fb.store.set_credential("b", "bearer", {"token": "t-b"})  # the server, with the old key in memory
    fresh = Store(fb.store.engine, data_dir=tmp_path)  # after a restart: only the new key
    assert fresh.get_credential("a") == {"token": "t-a"} and fresh.get_credential("b") == {"token": "t-b"}


async def test_a_refresh_another_process_made_meanwhile_is_used_not_reported(fb: Flowboard, auth: AuthServer,
                                                                             api: httpx.AsyncClient) -> None:
    fb.store.set_credential("crm", "oauth2_code", {"authorize_url": auth.url("/authorize"),
                                                   "token_url": auth.url("/token"), "client_id": CLIENT_ID,
                                                   "client_secret": CLIENT_SECRET})
    await connect(fb, api, "crm")
    fb.store.set_credential("crm", "oauth2_code", {**stored(fb, "crm"), "expires_at": time.time()})
    stale = stored(fb, "crm")
    other = Flowboard(data_dir=fb.data_dir)  # a worker, renewing with the same refresh token
    renewed: dict[str, Any] = {}

    async def worker_first() -> None:  # its refresh reaches the provider just before ours
        renewed.update(await other.oauth.current("crm", "oauth2_code", stale))

    auth.on_refresh = worker_first
    try:
        mine = await fb.oauth.current("crm", "oauth2_code", stale)
    finally:
        await other.aclose()
        other.store.close()
    assert auth.grants.count("refresh_token") == 1  # ours was refused (the token was used): the worker's is taken
    assert mine == renewed and mine["access_token"] != stale["access_token"]
    assert fb.store.list_credentials()[0].problem is None


def test_cli_lists_types_and_tests_a_credential(tmp_path: Path) -> None:
    from .clihelp import flowboard

    db = tmp_path / "shop.db"
    sa.create_engine(f"sqlite:///{db}").dispose()
    types = flowboard(tmp_path, "credential", "types")
    assert types.returncode == 0 and "oauth2_code" in types.stdout and "client_secret (secret)" in types.stdout
    made = flowboard(tmp_path, "credential", "set", "shop", "--type", "db", "kind=sqlite", f"database={db}")
    assert made.returncode == 0, made.stderr
    tested = flowboard(tmp_path, "credential", "test", "shop")
    assert tested.returncode == 0 and "shop: Connected to the database and ran SELECT 1" in tested.stdout, tested.stderr
    flowboard(tmp_path, "credential", "set", "shop", "--type", "db", f"database={tmp_path}/missing/x.db")
    failed = flowboard(tmp_path, "credential", "test", "shop")
    assert failed.returncode == 1 and "Could not connect to the database" in failed.stderr
    wrong = flowboard(tmp_path, "credential", "set", "x", "--type", "nope")
    assert wrong.returncode != 0 and "unknown credential type 'nope'" in wrong.stderr


def test_a_node_module_declares_a_credential_type() -> None:
    import types

    from flowboard import credential_types
    from flowboard.registry import Registry
    from flowboard.sdk import CredentialField, CredentialType

    module = types.ModuleType("tickets_nodes")
    module.TICKETS = CredentialType("tickets_key", "Tickets API key",  # type: ignore[attr-defined]
                                    (CredentialField("key", "API key", secret=True),))
    try:
        Registry().register_module(module)
        assert credential_types.get("tickets_key") is module.TICKETS  # type: ignore[attr-defined]
        assert credential_types.credential_data("tickets_key", {"key": "k-1"}, None) == {"key": "k-1"}
        again = types.ModuleType("tickets_nodes")  # the module imported again: the same declaration, accepted
        again.TICKETS = CredentialType("tickets_key", "Tickets API key",  # type: ignore[attr-defined]
                                       (CredentialField("key", "API key", secret=True),))
        Registry().register_module(again)
        other = types.ModuleType("other_nodes")
        other.CLASH = CredentialType("tickets_key", "Something else", ())  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match="two credential types claim 'tickets_key'"):
            Registry().register_module(other)
    finally:
        credential_types._TYPES.pop("tickets_key", None)  # the other tests see the built-in types only
