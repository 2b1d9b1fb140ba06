"""The store on real databases: every test runs on SQLite (a file in tmp_path) and on PostgreSQL (its own schema)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

from flowboard.engine import RunStatus, Step, StepStatus
from flowboard.model import Flow, dump_flow, parse_flow
from flowboard.store import (
    AlreadyExists,
    NotFound,
    SecretKeyError,
    Store,
    VersionConflict,
    database_url,
    make_engine,
    normalize_url,
)
from flowboard.store.tables import credentials_t, flows_t, steps_t

from .conftest import require_service

PG_URL = os.environ.get("FLOWBOARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MakeStore = Callable[[], Store]


def _pg_admin() -> Any:
    import psycopg

    try:
        conn = psycopg.connect(normalize_url(PG_URL).replace("postgresql+psycopg://", "postgresql://"),
                               autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        conn = None
    require_service("PostgreSQL on 127.0.0.1:5432", conn is not None)
    return conn


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def open_stores(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeStore]:
    """Makes stores on one fresh database: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    for var in ("FLOWBOARD_SECRET_KEY", "FLOWBOARD_DATABASE_URL", "FLOWBOARD_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    stores: list[Store] = []
    admin = schema = None
    if backend == "postgresql":
        admin = _pg_admin()
        schema = f"t_{uuid.uuid4().hex[:16]}"
        admin.execute(f"CREATE SCHEMA {schema}")

    def new() -> Store:
        if schema is None:
            store = Store(f"sqlite:///{tmp_path / 'flowboard.db'}", data_dir=tmp_path)
        else:
            store = Store(make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"}), data_dir=tmp_path)
        stores.append(store)
        return store

    try:
        yield new
    finally:
        for store in stores:
            store.close()
        if admin is not None:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
            admin.close()


@pytest.fixture(params=BACKENDS)
def make_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeStore]:
    yield from open_stores(request.param, tmp_path, monkeypatch)


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


def a_flow(flow_id: str = "greet", name: str = "Greet", **extra: Any) -> Flow:
    return parse_flow({"id": flow_id, "name": name, "description": "says hello", "nodes": [
        {"id": "start", "type": "trigger.manual", "position": {"x": 10, "y": 20}},
        {"id": "hello", "type": "test.add", "name": "Say hello", "config": {"field": "greeting", "value": "hé {{ 1 }}"},
         "settings": {"retries": 2}},
    ], "edges": [{"source": "start", "target": "hello"}], **extra})


def raw_row(store: Store, table: sa.Table, **where: Any) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(table).where(*(table.c[k] == v for k, v in where.items()))).first()


# -- flows ----------------------------------------------------------------------------------------------------------


#: A statement that takes a moment (0.4 s; SQLite: counting to a million) and answers 7 in its second column, by
#: SQLAlchemy dialect name.
SLOW_SEVEN = {"sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000) "
                        "SELECT count(*), 7 FROM n",
              "postgresql": "SELECT pg_sleep(0.4), 7", "mysql": "SELECT SLEEP(0.4), 7"}


class SlowQuery(threading.Thread):
    """`SLOW_SEVEN` on `engine` in a thread of its own, as a store call or a SQL node's statement runs: `begin()`
    returns once it holds its connection (`raw`, the driver's own); `answer` is 7 after `join()`."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__()
        self.engine = engine
        self.raw: Any = None
        self.answer: Any = None
        self._holding = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            self.raw = conn.connection.dbapi_connection
            self._holding.set()
            self.answer = conn.execute(sa.text(SLOW_SEVEN[self.engine.dialect.name])).one()[1]

    def begin(self) -> SlowQuery:
        self.start()
        assert self._holding.wait(10), "the statement did not get a connection"
        return self


def test_closing_while_a_thread_queries_closes_its_connection_when_it_is_given_back(store: Store) -> None:
    """An app stopping while a store call runs in a thread: the call finishes with its answer, and its connection is
    closed as it comes back, not left to the garbage collector (psycopg warns of each such connection then, at a
    random later moment: a ResourceWarning that failed an unrelated test)."""
    query = SlowQuery(store.engine).begin()
    store.close()
    query.join(30)
    assert query.answer == 7
    with pytest.raises(Exception, match="closed"):  # psycopg: "the connection is closed"; sqlite3: "closed database"
        query.raw.cursor().execute("SELECT 1")
    assert store.flow_exists("nothing") is False  # the store's engine opens new connections after


def test_save_and_read_back_byte_for_byte(store: Store) -> None:
    flow = a_flow()
    assert store.save_flow(flow, expected_version=None, note="first") == 1
    assert raw_row(store, flows_t, id="greet").document == dump_flow(flow)
    stored = store.get_flow("greet")
    assert (stored.version, stored.active) == (1, False)
    assert dump_flow(stored.flow) == dump_flow(flow)
    assert stored.flow == flow
    assert dump_flow(store.get_version("greet", 1)) == dump_flow(flow)
    assert store.flow_exists("greet") and not store.flow_exists("nope")


def test_a_stale_save_is_refused_and_changes_nothing(store: Store) -> None:
    store.save_flow(a_flow(), expected_version=None)
    tab_a = store.get_flow("greet")
    tab_b = store.get_flow("greet")
    assert store.save_flow(tab_a.flow.model_copy(update={"name": "From A"}), tab_a.version, note="a") == 2
    with pytest.raises(VersionConflict) as caught:
        store.save_flow(tab_b.flow.model_copy(update={"name": "From B"}), tab_b.version, note="b")
    assert caught.value.current_version == 2
    after = store.get_flow("greet")
    assert (after.version, after.flow.name) == (2, "From A")
    assert [(v.version, v.note) for v in store.list_versions("greet")] == [(2, "a"), (1, "")]
    assert store.get_version("greet", 1).name == "Greet"
    assert store.save_flow(tab_b.flow.model_copy(update={"name": "From B"}), after.version) == 3  # after a reload


def test_create_refuses_a_taken_id_and_update_needs_an_existing_flow(store: Store) -> None:
    store.save_flow(a_flow(), expected_version=None)
    with pytest.raises(AlreadyExists):
        store.save_flow(a_flow(name="Other"), expected_version=None)
    with pytest.raises(NotFound):
        store.save_flow(a_flow("ghost"), expected_version=1)
    with pytest.raises(NotFound):
        store.get_flow("ghost")
    with pytest.raises(NotFound):
        store.get_version("greet", 7)
    with pytest.raises(NotFound):
        store.list_versions("ghost")
    assert [v.version for v in store.list_versions("greet")] == [1]


def test_set_active_and_delete_flow_with_its_versions_runs_and_steps(store: Store) -> None:
    store.save_flow(a_flow(), None)
    store.save_flow(a_flow(), 1)
    store.set_active("greet", True)
    assert store.get_flow("greet").active and store.get_flow("greet").version == 2
    with pytest.raises(NotFound):
        store.set_active("ghost", True)
    store.create_run("r1", "greet", 2, "start", [{"a": 1}], "manual")
    store.create_run("other", "elsewhere", None, "start", [], "cli")
    with store.engine.begin() as conn:
        conn.execute(steps_t.insert().values(run_id="r1", node_id="start", status="succeeded", attempt=1, started=1.0,
                                             finished=2.0, inputs={}, outputs={"main": [{"a": 1}]}))
    store.delete_flow("greet")
    assert not store.flow_exists("greet")
    with pytest.raises(NotFound):
        store.get_version("greet", 1)
    with pytest.raises(NotFound):
        store.get_run("r1")
    assert store.get_steps("r1") == {}
    assert store.get_run("other").flow_id == "elsewhere"
    with pytest.raises(NotFound):
        store.delete_flow("greet")


def test_list_flows_shows_the_last_run(store: Store) -> None:
    store.save_flow(a_flow("b_flow", "Beta"), None)
    store.save_flow(a_flow("a_flow", "Alpha"), None)
    store.create_run("r1", "a_flow", 1, "start", [], "manual")
    store.mark_run("r1", RunStatus.succeeded)
    time.sleep(0.01)
    store.create_run("r2", "a_flow", 1, "start", [], "manual")
    store.mark_run("r2", "failed", {"message": "boom"})
    summaries = store.list_flows()
    assert [(f.id, f.name, f.version) for f in summaries] == [("a_flow", "Alpha", 1), ("b_flow", "Beta", 1)]
    alpha, beta = summaries
    assert alpha.last_run_status is RunStatus.failed
    assert alpha.last_run_at == store.get_run("r2").created
    assert (beta.last_run_status, beta.last_run_at) == (None, None)
    assert alpha.description == "says hello" and not alpha.active


# -- runs -----------------------------------------------------------------------------------------------------------


def test_runs_create_list_filter_mark_and_delete(store: Store) -> None:
    t0 = time.time()
    for i in range(5):
        store.create_run(f"run{i}", "f1" if i < 4 else "f2", 1, "start", [{"i": i}], "webhook" if i % 2 else "manual")
        time.sleep(0.002)
    with pytest.raises(AlreadyExists):
        store.create_run("run0", "f1", 1, "start", [], "manual")
    record = store.get_run("run3")
    assert (record.flow_id, record.flow_version, record.status, record.trigger, record.source, record.input) == \
        ("f1", 1, RunStatus.queued, "start", "webhook", [{"i": 3}])
    assert record.created >= t0 and record.started is None and record.finished is None
    assert [r.id for r in store.list_runs()] == ["run4", "run3", "run2", "run1", "run0"]
    assert [r.id for r in store.list_runs(flow_id="f1", limit=2)] == ["run3", "run2"]
    assert [r.id for r in store.list_runs(flow_id="f1", limit=2, offset=2)] == ["run1", "run0"]
    assert [r.id for r in store.list_runs(source="webhook")] == ["run3", "run1"]
    assert [r.id for r in store.list_runs(since=store.get_run("run3").created)] == ["run4", "run3"]
    store.mark_run("run1", RunStatus.succeeded)
    store.mark_run("run2", RunStatus.crashed, {"message": "the process died"})
    assert [r.id for r in store.list_runs(status="succeeded")] == ["run1"]
    assert [r.id for r in store.list_runs(status=["succeeded", RunStatus.crashed])] == ["run2", "run1"]
    crashed = store.get_run("run2")
    assert crashed.error == {"message": "the process died"} and crashed.finished is not None
    assert [r.id for r in store.unfinished_runs()] == ["run0", "run3", "run4"]
    store.delete_run("run0")
    with pytest.raises(NotFound):
        store.get_run("run0")
    with pytest.raises(NotFound):
        store.delete_run("run0")
    with pytest.raises(NotFound):
        store.mark_run("run0", "failed")


def test_get_steps_gives_the_engines_step_records(store: Store) -> None:
    store.create_run("r", "f", 1, "start", [], "manual")
    steps = [Step("r", "start", StepStatus.succeeded, 1.5, 1.75, 1, {"main": []}, {"main": [{"x": "é"}]}),
             Step("r", "bad", StepStatus.failed, 2.0, 2.25, 3, {"main": [{"x": 1}]}, {}, {"message": "no"})]
    with store.engine.begin() as conn:
        for s in steps:
            conn.execute(steps_t.insert().values(run_id=s.run_id, node_id=s.node_id, status=s.status.value,
                                                 attempt=s.attempt, started=s.started, finished=s.finished,
                                                 inputs=s.inputs, outputs=s.outputs, error=s.error))
    got = store.get_steps("r")
    assert got == {s.node_id: s for s in steps}
    assert list(got) == ["start", "bad"]
    assert got["bad"].status is StepStatus.failed


# -- retention and settings -----------------------------------------------------------------------------------------


def _finished_run(store: Store, run_id: str, flow_id: str, status: RunStatus, age_days: float) -> None:
    store.create_run(run_id, flow_id, 1, "start", [{"n": 1}], "manual")
    store.mark_run(run_id, status)
    created = time.time() - age_days * 86400
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET created = :c WHERE id = :id"), {"c": created, "id": run_id})
        conn.execute(steps_t.insert().values(run_id=run_id, node_id="start", status="succeeded", attempt=1,
                                             started=created, finished=created, inputs={"main": [{"n": 1}]},
                                             outputs={"main": [{"n": 1}]}))


def test_settings_have_defaults_and_are_checked(store: Store) -> None:
    assert store.get_settings() == {"keep_days": 30, "keep_runs": 10_000, "keep_success_data": True}
    assert store.set_settings({"keep_days": None, "theme": "dark"}) == \
        {"keep_days": None, "keep_runs": 10_000, "keep_success_data": True, "theme": "dark"}
    assert store.set_settings({"keep_days": 7})["keep_days"] == 7
    for bad in ({"keep_days": -1}, {"keep_runs": "many"}, {"keep_runs": True}, {"keep_success_data": "no"}):
        with pytest.raises(ValueError):
            store.set_settings(bad)
    assert store.get_settings()["keep_days"] == 7


def test_retention_by_age_by_count_and_success_data(store: Store) -> None:
    _finished_run(store, "old", "f1", RunStatus.succeeded, age_days=10)
    for i in range(4):
        _finished_run(store, f"f1_{i}", "f1", RunStatus.succeeded, age_days=1 - i * 0.1)
    _finished_run(store, "f2_fail", "f2", RunStatus.failed, age_days=0.5)
    store.create_run("waiting_old", "f1", 1, "start", [], "manual")  # unfinished: never deleted
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET created = 0 WHERE id = 'waiting_old'"))

    assert store.apply_retention() == 0  # defaults keep everything here
    store.set_settings({"keep_days": 5})
    assert store.apply_retention() == 1
    assert store.get_steps("old") == {}
    store.set_settings({"keep_runs": 2})
    assert store.apply_retention() == 2  # f1 keeps its newest two; f2 has one
    assert {r.id for r in store.list_runs(limit=100)} == {"f1_2", "f1_3", "f2_fail", "waiting_old"}
    assert store.get_steps("f1_3")["start"].outputs == {"main": [{"n": 1}]}

    store.set_settings({"keep_success_data": False})
    assert store.apply_retention() == 0
    kept = store.get_steps("f1_3")["start"]
    assert (kept.inputs, kept.outputs, kept.status) == ({}, {}, StepStatus.succeeded)
    assert store.get_steps("f2_fail")["start"].outputs == {"main": [{"n": 1}]}  # failed runs keep their data


# -- credentials ----------------------------------------------------------------------------------------------------


def test_credentials_are_encrypted_at_rest(store: Store, tmp_path: Path) -> None:
    secret = {"user": "alice", "password": "hunter2-very-secret"}
    store.set_credential("smtp main", "smtp", secret)
    assert store.get_credential("smtp main") == secret
    assert store.get_credential("nope") is None
    raw = raw_row(store, credentials_t, name="smtp main")
    assert raw.type == "smtp"
    assert "hunter2" not in raw.data and "alice" not in raw.data and "password" not in raw.data
    key_file = tmp_path / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    store.set_credential("smtp main", "smtp", {"password": "changed"})
    assert store.get_credential("smtp main") == {"password": "changed"}
    store.set_credential("api", "http.bearer", {"token": "t"})
    assert [(c.name, c.type) for c in store.list_credentials()] == [("api", "http.bearer"), ("smtp main", "smtp")]
    assert not hasattr(store.list_credentials()[0], "data")
    store.delete_credential("api")
    with pytest.raises(NotFound):
        store.delete_credential("api")
    assert [c.name for c in store.list_credentials()] == ["smtp main"]


def test_credentials_read_by_runs_are_kept_briefly_and_forgotten_on_change(make_store: MakeStore) -> None:
    """Runs read a credential at most every few seconds (no database read, no decryption per call); a change made
    through this store is seen at once, one made by another process within `max_age`; a copy that a caller changes
    does not change what the next caller gets."""
    store, other = make_store(), make_store()  # `other` stands for another process
    store.set_credential("api", "http.bearer", {"token": "one", "nested": {"k": 1}})
    assert store.cached_credential("api") is None  # nothing read yet
    assert store.credential("api", max_age=60) == ("http.bearer", {"token": "one", "nested": {"k": 1}})
    other.set_credential("api", "http.bearer", {"token": "two"})
    found = store.cached_credential("api", 60)
    assert found == ("http.bearer", {"token": "one", "nested": {"k": 1}})  # kept: no read
    found[1]["nested"]["k"] = 99
    assert store.credential("api", max_age=60) == ("http.bearer", {"token": "one", "nested": {"k": 1}})
    assert store.credential("api") == ("http.bearer", {"token": "two"})  # without max_age: always read
    assert store.cached_credential("api", 0.0) is None  # too old for a max_age of 0
    store.set_credential("api", "http.bearer", {"token": "three"})  # this store's change: forgotten at once
    assert store.cached_credential("api", 60) is None
    assert store.credential("api", max_age=60) == ("http.bearer", {"token": "three"})
    store.delete_credential("api")
    assert store.cached_credential("api", 60) is None and store.credential("api", max_age=60) is None


def test_a_wrong_key_gives_a_clear_error(make_store: MakeStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", Fernet.generate_key().decode())
    make_store().set_credential("db", "postgres", {"password": "pw"})
    assert not (tmp_path / "secret.key").exists()
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", Fernet.generate_key().decode())
    with pytest.raises(SecretKeyError, match=r"'db' cannot be decrypted.*another secret key"):
        make_store().get_credential("db")
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", "not-a-key")
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        make_store().get_credential("db")


def test_keys_rotate_and_tokens_cannot_move_between_credentials(make_store: MakeStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", old)
    store = make_store()
    store.set_credential("a", "x", {"v": "a"})
    store.set_credential("b", "x", {"v": "b"})
    monkeypatch.setenv("FLOWBOARD_SECRET_KEY", f"{new},{old}")
    rotated = make_store()
    assert rotated.get_credential("a") == {"v": "a"}
    with rotated.engine.begin() as conn:
        token = conn.execute(sa.select(credentials_t.c.data).where(credentials_t.c.name == "a")).scalar()
        conn.execute(credentials_t.update().where(credentials_t.c.name == "b").values(data=token))
    with pytest.raises(SecretKeyError, match="saved for another credential"):
        rotated.get_credential("b")


# -- claiming runs for resume ---------------------------------------------------------------------------------------


def test_claim_run_is_exclusive_between_two_stores(make_store: MakeStore) -> None:
    a, b = make_store(), make_store()
    assert a.owner != b.owner
    a.create_run("r", "f", 1, "start", [], "manual", status="running")
    assert a.claim_run("r", a.owner)
    assert a.claim_run("r", a.owner)  # its own: fine
    assert not b.claim_run("r", b.owner)  # a is alive and beating
    assert b.get_run("r").owner == a.owner
    time.sleep(0.05)
    assert a.heartbeat(a.owner) == 1
    assert not b.claim_run("r", b.owner, stale_after=10)
    time.sleep(0.05)
    assert b.claim_run("r", b.owner, stale_after=0.01)  # a went quiet
    assert not a.claim_run("r", a.owner)
    assert b.get_run("r").owner == b.owner
    b.mark_run("r", RunStatus.succeeded)
    assert not b.claim_run("r", b.owner) and not b.claim_run("missing", b.owner)


def test_claim_run_races_have_one_winner(make_store: MakeStore) -> None:
    a, b = make_store(), make_store()
    for i in range(40):
        a.create_run(f"r{i}", "f", 1, "start", [], "manual")
    won: dict[str, list[str]] = {a.owner: [], b.owner: []}
    barrier = threading.Barrier(2)

    def claim_all(store: Store) -> None:
        barrier.wait()
        for i in range(40):
            if store.claim_run(f"r{i}", store.owner):
                won[store.owner].append(f"r{i}")

    threads = [threading.Thread(target=claim_all, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won[a.owner] + won[b.owner]) == sorted(f"r{i}" for i in range(40))
    assert not set(won[a.owner]) & set(won[b.owner])
    for run in a.unfinished_runs():
        assert run.owner == (a.owner if run.id in won[a.owner] else b.owner)


def test_a_dead_local_owner_is_taken_over_at_once_a_live_remote_one_is_not(store: Store) -> None:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    dead = f"{socket.gethostname()}:{child.stdout.strip()}:abc"
    remote = "some-other-host:1:abc"
    store.create_run("dead", "f", 1, "start", [], "manual", status="running", owner=dead)
    store.create_run("remote", "f", 1, "start", [], "manual", status="running", owner=remote)
    assert store.claim_run("dead", store.owner)  # heartbeat fresh, but the process is gone
    assert not store.claim_run("remote", store.owner)
    assert store.heartbeat(remote) == 1 and store.heartbeat("nobody") == 0


# -- connecting -----------------------------------------------------------------------------------------------------


def test_database_url_and_engine_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWBOARD_DATABASE_URL", raising=False)
    monkeypatch.setenv("FLOWBOARD_DATA_DIR", str(tmp_path / "env_dir"))
    assert database_url() == f"sqlite:///{tmp_path / 'env_dir' / 'flowboard.db'}"
    assert (tmp_path / "env_dir").is_dir()
    assert database_url(tmp_path / "arg") == f"sqlite:///{tmp_path / 'arg' / 'flowboard.db'}"
    monkeypatch.setenv("FLOWBOARD_DATABASE_URL", "postgresql://u@h/db")
    assert database_url(tmp_path) == "postgresql://u@h/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            pragmas = [conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in
                       ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
        assert pragmas == ["wal", 1, 1, 5000]
    finally:
        engine.dispose()
