"""Schema migrations on SQLite and PostgreSQL: a database of the last release before Alembic (0.1.0) upgrades itself
when a Store opens it, with its flows, versions, runs, steps and credentials intact; replaying the revisions gives
exactly the models' schema; a database from a newer Flowboard is refused, not guessed at."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from flowboard.engine import StepStatus
from flowboard.model import dump_flow, parse_flow
from flowboard.store import Store, make_engine, migrate
from flowboard.store.tables import metadata, steps_t

from .test_store import BACKENDS, PG_URL, _pg_admin

DATA = Path(__file__).parent / "data"
EXAMPLE = Path(__file__).parent.parent / "flows" / "vacation-request.json"


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own (dropped after)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'flowboard.db'}")
        yield engine
        engine.dispose()
        return
    admin = _pg_admin()
    schema = f"m_{uuid.uuid4().hex[:16]}"
    admin.execute(f"CREATE SCHEMA {schema}")
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()


def _load_release_0_1_0(engine: sa.Engine) -> dict[str, object]:
    """Make `engine` a database as Flowboard 0.1.0 left it: its schema (frozen DDL) and rows of every kind."""
    ddl = (DATA / f"schema-0.1.0.{engine.dialect.name}.sql").read_text()
    flow = parse_flow(EXAMPLE.read_text())
    document = dump_flow(flow)
    now = time.time()
    with engine.begin() as conn:
        for statement in ddl.split(";"):
            if "CREATE" in statement:
                conn.exec_driver_sql(statement)
        conn.execute(sa.text("INSERT INTO flows (id, name, description, active, version, document, created, updated) "
                             "VALUES (:id, :name, '', :active, 2, :doc, :now, :now)"),
                     {"id": flow.id, "name": flow.name, "active": True, "doc": document, "now": now})
        for version in (1, 2):
            conn.execute(sa.text("INSERT INTO flow_versions (flow_id, version, document, created, note) "
                                 "VALUES (:id, :v, :doc, :now, 'saved')"),
                         {"id": flow.id, "v": version, "doc": document, "now": now})
        conn.execute(sa.text("INSERT INTO runs (id, flow_id, flow_version, status, trigger, source, input, output, "
                             "error, created, started, finished, owner, heartbeat) VALUES ('run-1', :id, 2, "
                             "'succeeded', 'start', 'webhook', '[{\"employee\": \"ada\"}]', '[{\"ok\": true}]', NULL, "
                             ":now, :now, :now, NULL, NULL)"), {"id": flow.id, "now": now})
        conn.execute(sa.text("INSERT INTO steps (run_id, node_id, status, attempt, started, finished, inputs, "
                             "outputs, error) VALUES ('run-1', 'start', 'succeeded', 1, :now, :now, NULL, "
                             "'{\"main\": [{\"employee\": \"ada\"}]}', NULL)"), {"now": now})
        conn.execute(sa.text("INSERT INTO settings (key, value) VALUES ('retention', '{\"keep_days\": 30}')"))
    return {"flow": flow, "document": document}


def test_a_0_1_0_database_upgrades_itself_with_its_data_intact(database: sa.Engine, tmp_path: Path) -> None:
    old = _load_release_0_1_0(database)
    store = Store(database, data_dir=tmp_path)
    try:
        with database.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == migrate.HEAD
        flow = old["flow"]
        stored = store.get_flow(flow.id)  # type: ignore[attr-defined]
        assert dump_flow(stored.flow) == old["document"]
        assert stored.version == 2 and stored.active
        assert [v.version for v in store.list_versions(flow.id)] == [2, 1]  # type: ignore[attr-defined]
        run = store.get_run("run-1")
        assert run.status == "succeeded" and run.input == [{"employee": "ada"}] and run.output == [{"ok": True}]
        steps = store.get_steps("run-1")
        assert steps["start"].status is StepStatus.succeeded
        assert steps["start"].outputs == {"main": [{"employee": "ada"}]}
        assert store.get_settings()["retention"] == {"keep_days": 30}
    finally:
        store.close()
    _assert_schema_matches_models(database)


def test_replaying_every_revision_gives_the_models_schema(database: sa.Engine) -> None:
    """The two roads to HEAD (create_all for a new database, the revisions for an old one) give the same tables."""
    with database.begin() as conn:
        cfg = migrate._config(conn)
        from alembic import command

        command.upgrade(cfg, "head")
    _assert_schema_matches_models(database)


def test_a_new_database_is_stamped_with_the_newest_revision(database: sa.Engine, tmp_path: Path) -> None:
    Store(database, data_dir=tmp_path).close()
    with database.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == migrate.HEAD
    _assert_schema_matches_models(database)


def test_head_names_the_newest_revision() -> None:
    assert migrate.alembic_head() == migrate.HEAD, "set HEAD in flowboard/store/migrate.py to the newest revision"


def test_a_database_from_a_newer_flowboard_is_refused(database: sa.Engine, tmp_path: Path) -> None:
    Store(database, data_dir=tmp_path).close()
    with database.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(migrate.SchemaTooNew, match="newer Flowboard"):
        Store(database, data_dir=tmp_path)


def test_stores_opening_one_new_database_at_once_all_succeed(database: sa.Engine, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        engine = make_engine(database.url.render_as_string(hide_password=False),
                             connect_args={"options": _options(database)} if database.dialect.name == "postgresql"
                             else None)
        try:
            barrier.wait()
            Store(engine, data_dir=tmp_path).close()
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with database.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(steps_t)).scalar() == 0


def _options(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    return f"-csearch_path={schema}"


def _assert_schema_matches_models(engine: sa.Engine) -> None:
    from flowboard.store import tables  # noqa: F401

    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diffs == [], f"the database's schema and the models differ: {diffs}"


def test_going_back_before_packed_steps_keeps_every_step(database: sa.Engine, tmp_path: Path) -> None:
    """0014 packs a run's steps into its row; its downgrade makes them rows again (and leaves the others alone)."""
    import asyncio

    from alembic import command

    from flowboard.engine import Engine, build_plan
    from flowboard.model import parse_flow
    from flowboard.registry import default_registry
    from flowboard.store import SqlRecorder

    store = Store(database, data_dir=tmp_path)
    plan = build_plan(parse_flow((Path(__file__).parent.parent / "bench" / "flows" / "echo.json").read_text()),
                      default_registry())

    async def record() -> str:
        recorder = SqlRecorder(store)
        result = await Engine(recorder=recorder).run(plan, [{"body": {"a": "ünïcode"}, "headers": {}, "query": {}}])
        await recorder.aclose()
        return result.run_id

    run_id = asyncio.run(record())
    before = store.get_steps(run_id)
    assert list(before) == ["webhook", "add", "respond"]
    with database.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(steps_t)).scalar() == 0  # packed in the run
        command.downgrade(migrate._config(conn), "0013_oauth_sign_ins")
    with database.connect() as conn:
        assert "steps" not in {c["name"] for c in sa.inspect(conn).get_columns("runs")}
        assert conn.execute(sa.select(sa.func.count()).select_from(steps_t)).scalar() == 3
    with database.begin() as conn:
        command.upgrade(migrate._config(conn), "head")
    assert store.get_steps(run_id) == before
    store.close()
