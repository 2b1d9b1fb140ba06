"""Accounts, roles, sessions and the guard.

In-process, on SQLite and PostgreSQL: argon2id hashes (never the password), sessions (only their hash stored; idle
and absolute expiry; sign-out; a password change signs out the other sessions), throttling, the last admin.
Subprocesses: `flowboard user ...`, and a real server with a user of every role, where every route of the app,
enumerated from the app itself, is called anonymously, as each role (browser session) and with API keys; the NiceGUI
websocket without and with a session; and a public bind without an admin, which must refuse to start.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from flowboard.auth import PERMISSIONS, AccountError, Accounts, Permission, Role, SignInRefused
from flowboard.auth.throttle import Throttle
from flowboard.store import Store
from flowboard.store.approvals import ApprovalStore
from flowboard.store.tables import api_keys_t, sessions_t, users_t

from .clihelp import env_for, flowboard
from .serve import Server
from .test_api import free_port
from .test_store import MakeStore, make_store  # noqa: F401  (the fixture: SQLite and PostgreSQL)

PASSWORDS = {"ada": "analytical-engine", "eve": "edit-all-day", "abe": "approve-it-1", "rob": "request-it-1"}
ROLES = {"ada": Role.admin, "eve": Role.editor, "abe": Role.approver, "rob": Role.requester}


def accounts_with_admin(store: Store) -> Accounts:
    accounts = Accounts(store)
    accounts.add_user("ada", PASSWORDS["ada"], ["admin"], full_name="Ada Lovelace")
    return accounts


# -- in-process: the rules, on both databases ---------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes_only(make_store: MakeStore) -> None:  # noqa: F811
    store = make_store()
    accounts = accounts_with_admin(store)
    for name in ("eve", "abe", "rob"):
        accounts.add_user(name, PASSWORDS[name], [ROLES[name]])
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(users_t)).mappings().all()
    assert {row["name"] for row in rows} == set(PASSWORDS)
    for row in rows:
        assert row["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$"), row["password_hash"]
        assert all(PASSWORDS[row["name"]] not in str(value) for value in row.values())
    assert len({row["password_hash"] for row in rows}) == 4  # salted: no two alike


def test_an_unknown_user_is_checked_against_a_hash_made_at_first_use_not_at_import() -> None:
    from flowboard.auth import passwords

    code = "import flowboard.auth.passwords as p, flowboard.server; assert p._DUMMY is None"
    subprocess.run([sys.executable, "-c", code], check=True)  # start-up hashes nothing (a quarter of a second)
    assert passwords.verify_password(None, "any password") is False
    assert passwords._DUMMY is not None and passwords._DUMMY.startswith("$argon2id$")
    stored = passwords.hash_password("correct horse battery")
    assert passwords.verify_password(stored, "correct horse battery")
    assert not passwords.verify_password(stored, "wrong horse battery")


def test_sign_in_sessions_are_stored_hashed_and_end_on_sign_out(make_store: MakeStore) -> None:  # noqa: F811
    store = make_store()
    accounts = accounts_with_admin(store)
    token, who = accounts.sign_in("ADA ", PASSWORDS["ada"], "10.0.0.1")  # names are case-insensitive, trimmed
    assert who.name == "ada" and who.can(Permission.users) and who.label == "Ada Lovelace"
    with store.engine.connect() as conn:
        stored = conn.execute(sa.select(sessions_t)).mappings().all()
    assert [row["id"] for row in stored] == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in json.dumps([dict(row) for row in stored])
    assert Accounts(store).session(token) == who  # another process (no cache) finds it too
    accounts.sign_out(token)
    assert accounts.session(token) is None and Accounts(store).session(token) is None
    for wrong in ("", "x" * 43, token + "x", "a" * 500):
        assert accounts.session(wrong) is None


@pytest.mark.parametrize("ended", ["idle", "absolute"])
def test_sessions_expire_idle_and_absolute(make_store: MakeStore, ended: str) -> None:  # noqa: F811
    store = make_store()
    accounts = accounts_with_admin(store)
    token, _ = accounts.sign_in("ada", PASSWORDS["ada"])
    key = hashlib.sha256(token.encode()).hexdigest()
    now = time.time()
    with store.engine.begin() as conn:  # as if the time had passed
        values = {"last_seen": now - accounts.idle - 1} if ended == "idle" else {"expires": now - 1,
                                                                                   "last_seen": now}
        conn.execute(sessions_t.update().where(sessions_t.c.id == key).values(**values))
    fresh = Accounts(store)  # no cache: reads the row
    assert fresh.session(token) is None
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sessions_t)).scalar() == 0  # deleted


def test_a_password_change_signs_out_the_other_sessions(make_store: MakeStore) -> None:  # noqa: F811
    store = make_store()
    accounts = accounts_with_admin(store)
    accounts.add_user("eve", PASSWORDS["eve"], ["editor"])
    here, who = accounts.sign_in("eve", PASSWORDS["eve"])
    there, _ = accounts.sign_in("eve", PASSWORDS["eve"])
    admin, _ = accounts.sign_in("ada", PASSWORDS["ada"])
    with pytest.raises(AccountError, match="current password is not right"):
        accounts.change_own_password(who, "wrong-password", "a-new-secret")
    with pytest.raises(AccountError, match="too short"):
        accounts.change_own_password(who, PASSWORDS["eve"], "short")
    assert accounts.change_own_password(who, PASSWORDS["eve"], "a-new-secret") == 1
    assert accounts.session(here) is not None and accounts.session(there) is None
    assert accounts.session(admin) is not None  # other users keep theirs
    with pytest.raises(SignInRefused):
        accounts.sign_in("eve", PASSWORDS["eve"])
    accounts.sign_in("eve", "a-new-secret")
    assert accounts.set_password("eve", "set-by-the-admin") == 2  # the CLI's passwd: every session ends
    assert accounts.session(here) is None


def test_sign_in_is_throttled_per_name_and_per_address(make_store: MakeStore) -> None:  # noqa: F811
    accounts = accounts_with_admin(make_store())
    for _ in range(5):
        with pytest.raises(SignInRefused, match="not right") as refused:
            accounts.sign_in("ada", "guess", "10.0.0.1")
        assert refused.value.wait == 0
    with pytest.raises(SignInRefused, match=r"^Too many attempts; try again in 15 minutes\.$"):
        accounts.sign_in("ada", PASSWORDS["ada"], "10.0.0.2")  # the right password, from elsewhere: still refused
    # per address: many names from one address
    for i in range(20):
        with pytest.raises(SignInRefused):
            accounts.sign_in(f"nobody{i}", "guess", "10.0.0.9")
    with pytest.raises(SignInRefused, match="Too many attempts"):
        accounts.sign_in("someone", "guess", "10.0.0.9")


def test_throttle_window_slides() -> None:
    throttle = Throttle(per_name=3, per_address=5, window=600)
    for t in (0, 100, 200):
        assert throttle.wait("ada", "a", now=t) == 0
        throttle.failed("ada", "a", now=t)
    assert throttle.wait("ada", "b", now=250) == 350  # until the first failure is 600 s old
    assert throttle.wait("ada", "b", now=600.5) == 0
    throttle.failed("ada", "b", now=601)
    assert throttle.wait("ada", "b", now=602) > 0
    throttle.succeeded("ada")
    assert throttle.wait("ada", "c", now=603) == 0
    for t in range(5):
        throttle.failed(f"n{t}", "z", now=700 + t)
    assert throttle.wait("fresh", "z", now=710) > 0 and throttle.wait("fresh", "y", now=710) == 0


def test_the_first_user_is_an_admin_and_the_last_admin_stays(make_store: MakeStore) -> None:  # noqa: F811
    store = make_store()
    accounts = Accounts(store)
    assert not accounts.required()  # no users, loopback: single-user mode
    with pytest.raises(AccountError, match=r"first user must be an admin.*flowboard user add --role admin NAME"):
        accounts.add_user("eve", PASSWORDS["eve"], ["editor"])
    accounts_with_admin(store)
    accounts = Accounts(store)
    assert accounts.required()
    accounts.add_user("eve", PASSWORDS["eve"], ["editor", "approver"])
    for bad_name in ("", "has space", "-dash", "x" * 65, "ümlaut"):
        with pytest.raises(AccountError, match="cannot be a user name"):
            accounts.add_user(bad_name, "long-enough-pw", ["editor"])
    with pytest.raises(AccountError, match="there is a user 'eve' already"):
        accounts.add_user("Eve", "long-enough-pw", ["editor"])
    with pytest.raises(AccountError, match="must not be the user name"):
        accounts.add_user("longname1", "LongName1", ["editor"])
    with pytest.raises(AccountError, match="no role 'boss'"):
        accounts.add_user("bob", "long-enough-pw", ["boss"])
    with pytest.raises(AccountError, match="only admin"):
        accounts.remove_user("ada")
    with pytest.raises(AccountError, match="only admin"):
        accounts.set_roles("ada", ["editor"])
    accounts.set_roles("eve", ["admin"])
    accounts.remove_user("ada")
    info, _ = store.create_api_key("eve's script", user_id=accounts.get_user("eve").id)
    token, _ = accounts.sign_in("eve", PASSWORDS["eve"])
    accounts.remove_user("eve")  # the last user: back to single-user mode
    assert accounts.session(token) is None and accounts.key_principal(info) is None
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(api_keys_t)).scalar() == 0
    assert not Accounts(store).required()


def test_roles_grant_what_the_issue_says() -> None:
    assert PERMISSIONS[Role.admin] == frozenset(Permission)
    assert PERMISSIONS[Role.editor] >= {Permission.flows, Permission.credentials, Permission.tables}
    assert Permission.users not in PERMISSIONS[Role.editor] and Permission.inbox not in PERMISSIONS[Role.editor]
    assert PERMISSIONS[Role.approver] & {Permission.flows, Permission.credentials, Permission.tables} == set()
    assert Permission.inbox in PERMISSIONS[Role.approver]
    assert PERMISSIONS[Role.requester] == {Permission.requests}


# -- the CLI ------------------------------------------------------------------------------------------------------


def test_cli_user_add_list_passwd_remove(tmp_path: Path) -> None:
    def run(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        return flowboard(tmp_path, *args, input=None if password is None else password + "\n")

    listed = run("user", "list")
    assert listed.returncode == 0 and "no users yet" in listed.stdout and "--role admin" in listed.stdout
    refused = run("user", "add", "eve", "--role", "editor", password=PASSWORDS["eve"])
    assert refused.returncode == 2 and "first user must be an admin" in refused.stderr
    added = run("user", "add", "Ada", "--role", "admin", "--full-name", "Ada Lovelace", "--email", "ada@example.org",
                password=PASSWORDS["ada"])
    assert added.returncode == 0, added.stderr
    assert run("user", "add", "eve", "--role", "editor", "--role", "approver", password=PASSWORDS["eve"]
               ).returncode == 0
    short = run("user", "add", "rob", "--role", "requester", password="short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    listed = run("user", "list")
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split()[:2] == ["ada", "admin"] and "ada@example.org" in lines[0]
    assert lines[1].split()[:3] == ["eve", "editor,", "approver"]

    store = Store(data_dir=tmp_path)
    try:
        accounts = Accounts(store)
        token, _ = accounts.sign_in("eve", PASSWORDS["eve"])
        changed = run("user", "passwd", "eve", password="a-brand-new-one")
        assert changed.returncode == 0 and "1 session signed out" in changed.stdout, changed.stderr
        assert Accounts(store).session(token) is None
        Accounts(store).sign_in("eve", "a-brand-new-one")
        assert run("user", "passwd", "nobody", password="whatever-long").returncode == 2
        gone = run("user", "remove", "ada")
        assert gone.returncode == 2 and "only admin" in gone.stderr
        assert run("user", "roles", "eve", "--role", "admin").returncode == 0
        assert run("user", "remove", "ada").returncode == 0
        assert [u.name for u in Accounts(store).list_users()] == ["eve"]
        with store.engine.connect() as conn:
            hashes = conn.execute(sa.select(users_t.c.password_hash)).scalars().all()
        assert [h[:10] for h in hashes] == ["$argon2id$"]
    finally:
        store.close()


def test_a_public_bind_without_an_admin_refuses_to_start(tmp_path: Path) -> None:
    port = str(free_port())
    for host in ("0.0.0.0", "192.0.2.10", "::"):
        proc = flowboard(tmp_path, "serve", "--host", host, "--port", port, "--no-browser", timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "flowboard user add --role admin NAME" in proc.stderr and f"refusing to serve on {host}" in proc.stderr


# -- a real server: every route, every role -----------------------------------------------------------------------


@dataclass
class Live:
    base: str
    data_dir: Path
    log: Path
    sessions: dict[str, str]  # user name -> session cookie value
    keys: dict[str, str]  # "eve" / "rob" / "cli" -> API key

    def client(self, who: str | None = None, **headers: str) -> httpx.Client:
        cookies = {"flowboard_session": self.sessions[who]} if who in self.sessions else {}
        if who is not None and who.endswith("-key"):
            headers["X-API-Key"] = self.keys[who.removesuffix("-key")]
        return httpx.Client(base_url=self.base, cookies=cookies, headers=headers, timeout=30,
                            follow_redirects=False)


def sign_in(base: str, name: str, password: str, **form: str) -> httpx.Response:
    return httpx.post(base + "/login", data={"user": name, "password": password, **form}, timeout=30)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("accounts")
    store = Store(data_dir=data_dir)  # users and keys made in-process (the CLI has its own test): fewer processes
    try:
        accounts = Accounts(store)
        ids = {name: accounts.add_user(name, PASSWORDS[name], [role]).id for name, role in ROLES.items()}
        keys = {owner: store.create_api_key(f"{owner}'s key", ids.get(owner))[1] for owner in ("eve", "rob", "cli")}
        tasks = ApprovalStore(store.engine)  # a request of rob's, decided, and one of someone else's
        task = tasks.create(flow_id="leave", run_id="r1", node_id="approve", title="Vacation 3 days",
                            assignees=["role:approver"], requester="rob")
        tasks.decide(task.id, "approve", "abe")
        tasks.create(flow_id="leave", run_id="r2", node_id="approve", title="Someone else's trip",
                     assignees=["role:approver"], requester="ada")
    finally:
        store.close()
    server = Server(data_dir)
    sessions = {}
    for name in ROLES:
        answer = sign_in(server.url, name, PASSWORDS[name])
        assert answer.status_code == 303, answer.text
        sessions[name] = answer.cookies["flowboard_session"]
    yield Live(server.url, data_dir, server.log, sessions, keys)
    server.stop()
    assert not server.errors(), "the server logged errors:\n" + server.output


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Every route of the app `flowboard serve` builds, from the app (tests/apps/route_list.py)."""
    data_dir = tmp_path_factory.mktemp("routes")
    script = Path(__file__).parent / "apps" / "route_list.py"
    proc = subprocess.run([sys.executable, str(script), str(data_dir)], env=env_for(data_dir), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(found) > 30
    return found


OPEN = ("/webhook/", "/form/", "/webhook-waiting/", "/decide/", "/healthz", "/readyz", "/login", "/logout",
        "/_nicegui/")
FLOWS_ONLY = ("/webhook-test/", "/docs", "/openapi.json", "/_swagger")
IDENTITIES = [None, "ada", "eve", "abe", "rob", "eve-key", "rob-key", "cli-key"]
HOME = {"ada": "/", "eve": "/", "abe": "/inbox", "rob": "/me"}  # an approver's home is their inbox


def _roles_of(who: str) -> frozenset[Permission]:
    name = who.removesuffix("-key")
    return PERMISSIONS[Role.admin] if name == "cli" else PERMISSIONS[ROLES[name]]


def expected(route: dict[str, Any], who: str | None) -> str:
    """What `who` must get: open | ok | login | home | 401 | 403."""
    path = route["path"]
    if path.startswith(OPEN) and not path.startswith("/_nicegui_ws"):
        return "open"
    if who is None:
        if path.startswith(("/api/", "/webhook-test/", "/openapi.json", "/_swagger", "/_nicegui_ws")):
            return "401"
        return "login"
    granted = _roles_of(who)
    if route["kind"] == "page":
        permission = route["permission"]
        assert permission is not None, f"the page {path} declares no permission (ui.access.require or public)"
        if permission in ("public", "signed-in"):
            return "ok"
        return "ok" if Permission(permission) in granted else "home"
    if path.startswith("/api/v1/approvals"):  # approvers use it too (the route's own check, before the body)
        return "ok" if approvals_permitted(path, route["method"], granted) else "403"
    if path.startswith("/api/") or path.startswith(FLOWS_ONLY):
        return "ok" if Permission.flows in granted else "403"
    return "ok"  # the websocket: any signed-in user


def approvals_permitted(path: str, method: str, granted: frozenset[Permission]) -> bool:
    """Who may call each approvals route (for a task or user named `x`, which is nobody's)."""
    if path.endswith("/decision"):
        return Permission.inbox in granted
    if path.endswith("/audit"):
        return Permission.flows in granted
    if "/out-of-office/" in path:  # someone else's delegate: admins only
        return Permission.users in granted
    return bool({Permission.flows, Permission.inbox} & granted)


def concrete(path: str) -> str:
    path = re.sub(r"\{[^}]+\}", "x", path)
    if path == "/_nicegui_ws":
        return "/_nicegui_ws/socket.io/?EIO=4&transport=polling"
    if path == "/_swagger":
        return "/_swagger/swagger-ui.css"
    if path.endswith("/static"):
        return path + "/nicegui.js"
    return path or "/"


@pytest.mark.timeout(900)  # some 300 calls, on a machine shared by many test runs
def test_every_route_answers_each_role_as_it_must(live: Live, routes: list[dict[str, Any]]) -> None:
    problems = []
    checked = 0
    clients = {who: live.client(who) for who in IDENTITIES}
    for route in routes:
        for method in route["methods"]:
            if method == "OPTIONS":
                continue
            for who in IDENTITIES:
                if route["path"] == "/logout" and who is not None:
                    continue  # would end the module's sessions; signing out has its own test
                want = expected(route | {"method": method}, who)
                url = concrete(route["path"])
                answer = clients[who].request(method, url, json={} if method in ("POST", "PUT", "PATCH") else None)
                checked += 1
                got = answer.status_code
                location = answer.headers.get("location", "")
                ok = {
                    # open routes answer for themselves (a bad link's own 403 page, a webhook's 404): never the guard
                    "open": not location.startswith("/login?next=") and "sign in first" not in answer.text,
                    "ok": got not in (401, 403) and not location.startswith(("/login", "/me")) and got < 500,
                    "login": got == 303 and (location.startswith("/login?next=") or url == location == "/login"
                                             or (url == "/" and location == "/login")),
                    "home": got == 303 and location == HOME.get((who or "").removesuffix("-key")),
                    "401": got == 401,
                    "403": got == 403,
                }[want]
                if not ok:
                    problems.append(f"{method} {url} as {who or 'anonymous'}: want {want}, got {got} {location}")
                if want in ("401", "403") and got in (401, 403):
                    assert answer.json()["error"], answer.text  # plain words, always
    for client in clients.values():
        client.close()
    assert not problems, "\n".join(problems)
    assert checked > 200


def test_the_pages_a_role_cannot_use_are_not_in_its_header(live: Live) -> None:
    with live.client("rob") as client:
        page = client.get("/me")
    assert page.status_code == 200
    assert "Forms you can fill in" in page.text and "Sign out" in page.text
    assert "Vacation 3 days" in page.text and "approved by abe" in page.text  # the state of their own requests
    assert "Someone else" not in page.text
    assert '"/runs"' not in page.text and "Credentials" not in page.text
    with live.client("eve") as client:
        page = client.get("/")
    assert '"/runs"' in page.text and "Credentials" in page.text and "Sign out" in page.text


def _client_id(html: str) -> str:
    match = re.search(r"""["']client_id["']:\s*["']([0-9a-f-]{36})["']""", html)
    assert match, html[:2000]
    return match.group(1)


def test_the_websocket_needs_a_session(live: Live) -> None:
    ws = live.base.replace("http://", "ws://") + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"
    with live.client("eve") as client:
        client_id = _client_id(client.get("/").text)
    url = f"{ws}&client_id={client_id}"
    for headers in ({}, {"Cookie": "flowboard_session=made-up"}, {"Cookie": f"flowboard_session={'a' * 43}"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers=headers, open_timeout=10).close()
        assert refused.value.response.status_code == 403
    with connect(url, additional_headers={"Cookie": f"flowboard_session={live.sessions['eve']}"},
                 open_timeout=10) as socket:
        assert str(socket.recv(timeout=10)).startswith("0{")  # engine.io's open packet
    # a live connection ends with its session (here: signed out in another tab)
    answer = sign_in(live.base, "eve", PASSWORDS["eve"])
    fresh = answer.cookies["flowboard_session"]
    with connect(url, additional_headers={"Cookie": f"flowboard_session={fresh}"}, open_timeout=10) as socket:
        assert str(socket.recv(timeout=10)).startswith("0{")
        time.sleep(2.5)
        socket.send("40")  # socket.io's connect: answered while the session lives
        assert str(socket.recv(timeout=30)).startswith("4")
        httpx.post(live.base + "/logout", cookies={"flowboard_session": fresh}, timeout=30)
        time.sleep(2.5)  # past the guard's check interval (WATCH)
        socket.send("40")  # any message from the browser: the guard checks the session now
        with pytest.raises(ConnectionClosed):
            for _ in range(10):
                socket.recv(timeout=30)
    # the sign-in page's own websocket opens without a session, and only with that page's client id
    login_id = _client_id(httpx.get(live.base + "/login", timeout=30).text)
    with connect(f"{ws}&client_id={login_id}", open_timeout=10) as socket:
        assert str(socket.recv(timeout=10)).startswith("0{")


def test_sign_out_ends_the_session(live: Live) -> None:
    answer = sign_in(live.base, "abe", PASSWORDS["abe"], next="/me")
    assert answer.status_code == 303 and answer.headers["location"] == "/me"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    token = answer.cookies["flowboard_session"]
    with httpx.Client(base_url=live.base, cookies={"flowboard_session": token}, timeout=30) as client:
        assert client.get("/me").status_code == 200
        out = client.post("/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login?out=1"
        assert 'flowboard_session=""' in out.headers["set-cookie"] or "Max-Age=0" in out.headers["set-cookie"]
    with httpx.Client(base_url=live.base, cookies={"flowboard_session": token}, timeout=30) as client:
        again = client.get("/me")
        assert again.status_code == 303 and again.headers["location"].startswith("/login")
    assert "You have signed out." in httpx.get(live.base + "/login?out=1", timeout=30).text


def test_sign_in_goes_only_to_pages_of_this_server(live: Live) -> None:
    for target, lands in (("/runs", "/runs"), ("https://evil.example/", "/"), ("//evil.example/x", "/"),
                          ("/\\evil.example", "/"), ("javascript:alert(1)", "/")):
        answer = sign_in(live.base, "eve", PASSWORDS["eve"], next=target)
        assert answer.status_code == 303 and answer.headers["location"] == lands, target


def test_cross_site_posts_with_a_session_are_refused(live: Live) -> None:
    with live.client("eve", Origin="http://evil.example") as client:  # refused by the HostGuard or the guard
        assert client.post("/api/v1/flows/x/runs", json={}).status_code == 403
    with live.client("eve", Origin=live.base) as client:
        assert client.post("/api/v1/flows/x/runs", json={}).status_code == 404  # same site: on to the API
    answer = httpx.post(live.base + "/login", data={"user": "eve", "password": PASSWORDS["eve"]},
                        headers={"Origin": "http://evil.example"}, timeout=30)
    assert answer.status_code == 403 and "flowboard_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_throttling_over_http(live: Live) -> None:
    """Last in the module: it leaves failures on the server's 127.0.0.1 count (fewer than that limit)."""
    for _ in range(5):
        answer = sign_in(live.base, "rob", "not-the-password")
        assert answer.status_code == 303 and answer.headers["location"] == "/login?failed=1&user=rob"
    answer = sign_in(live.base, "rob", PASSWORDS["rob"])
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?wait=15&")
    page = httpx.get(live.base + answer.headers["location"], timeout=30).text
    assert "Too many attempts; try again in 15 minutes." in page
    assert "The user name or the password is not right" in httpx.get(live.base + "/login?failed=1", timeout=30).text


# -- the guard alone, as the ASGI middleware it is ----------------------------------------------------------------


async def _call(guard: Any, path: str, method: str = "GET", headers: dict[str, str] | None = None,
                kind: str = "http", query: bytes = b"") -> tuple[int, dict[str, str], Any]:
    """One request through the guard: (status, headers, the principal the inner app saw, or None)."""
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []
    scope = {"type": kind, "path": path, "method": method, "query_string": query,
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    from flowboard.auth import SCOPE_KEY, current_principal

    async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["principal"] = scope.get(SCOPE_KEY)
        seen["current"] = current_principal()
        await send({"type": "http.response.start", "status": 200, "headers": []})

    guard.app = inner
    await guard(scope, receive, send)
    if not sent:
        return 0, {}, None
    start = sent[0]
    if start["type"] == "websocket.close":
        return 403, {}, None
    answer = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    if seen:
        assert seen["principal"] == seen["current"]  # the services' view is the scope's
    return start["status"], answer, seen.get("principal")


async def test_the_guard_in_front_of_an_app(tmp_path: Path) -> None:
    from flowboard.auth import LOCAL
    from flowboard.auth.guard import AuthGuard

    store = Store(data_dir=tmp_path)
    try:
        accounts = Accounts(store)
        guard = AuthGuard(lambda *a: None, accounts, store)  # type: ignore[arg-type]
        # single-user mode: the local admin, for pages and the websocket; the API still checks its key itself
        assert await _call(guard, "/flow/x") == (200, {}, LOCAL)
        assert (await _call(guard, "/_nicegui_ws/socket.io/", kind="websocket"))[2] == LOCAL
        assert (await _call(guard, "/api/v1/flows"))[2] is None
        accounts_with_admin(store)
        accounts.add_user("rob", PASSWORDS["rob"], ["requester"])
        accounts._has_users = (True, time.monotonic())
        for path in ("/webhook/a", "/form/a", "/healthz", "/login", "/logout", guard.assets + "static/x.js"):
            assert (await _call(guard, path, "POST"))[0] == 200, path
        status, headers, _ = await _call(guard, "/runs", query=b"flow=a&b=1")
        assert status == 303 and headers["location"] == "/login?next=%2Fruns%3Fflow%3Da%26b%3D1"
        for path in ("/webhook-test/a", "/openapi.json", "/_nicegui_ws/socket.io/", "/_nicegui/auto/x"):
            status, headers, _ = await _call(guard, path)
            assert status == 401 and "www-authenticate" in headers, path
        assert (await _call(guard, "/_nicegui_ws/socket.io/", kind="websocket"))[0] == 403
        accounts.sign_in_clients.add("c-1")
        assert (await _call(guard, "/_nicegui_ws/socket.io/", kind="websocket", query=b"client_id=c-1"))[0] == 200
        assert (await _call(guard, "/_nicegui_ws/socket.io/", kind="websocket", query=b"client_id=c-2"))[0] == 403

        token, _ = accounts.sign_in("ada", PASSWORDS["ada"])
        cookie = {"cookie": f"theme=dark; flowboard_session={token}"}
        status, _, who = await _call(guard, "/flow/x", headers=cookie)
        assert status == 200 and who is not None and who.name == "ada"
        assert (await _call(guard, "/api/v1/flows", "POST", {**cookie, "origin": "http://evil.example",
                                                             "host": "127.0.0.1:8080"}))[0] == 403
        assert (await _call(guard, "/api/v1/flows", "POST", {**cookie, "origin": "http://127.0.0.1:8080",
                                                             "host": "127.0.0.1:8080"}))[0] == 200
        _, key = store.create_api_key("rob's", accounts.get_user("rob").id)
        status, _, who = await _call(guard, "/webhook-test/a", headers={"x-api-key": key})
        assert status == 403 and who is None  # a requester's key: not for the editor's test URL
        status, _, who = await _call(guard, "/me", headers={"authorization": f"Bearer {key}"})
        assert status == 200 and who is not None and who.name == "rob"
        accounts.sign_out(token)
        assert (await _call(guard, "/flow/x", headers=cookie))[0] == 303
    finally:
        store.close()
