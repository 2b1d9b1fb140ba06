"""The `flowboard` command as a user types it: run, validate, import, export, list, schema, nodes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowboard.cli import main
from flowboard.store import Store

from .clihelp import flowboard, result_json
from .jsoncorpus import BAD_JSON

GOOD = {
    "id": "greet", "name": "Greet",
    "nodes": [
        {"id": "start", "type": "trigger.manual", "config": {"items": [{"name": "Ada"}]}},
        {"id": "hello", "type": "data.set", "name": "Say hello",
         "config": {"fields": [{"name": "greeting", "value": "Hello {{ item.name }}"}]}},
    ],
    "edges": [{"source": "start", "target": "hello"}],
}


def write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else
                     (data if isinstance(data, str) else json.dumps(data)).encode())
    return path


def test_run_a_file_prints_the_result(tmp_path: Path) -> None:
    path = write(tmp_path, "greet.json", GOOD)
    proc = flowboard(tmp_path, "run", str(path))
    assert proc.returncode == 0, proc.stderr
    out = result_json(proc)
    assert out["status"] == "succeeded"
    assert out["output"] == [{"name": "Ada", "greeting": "Hello Ada"}]
    assert out["steps"]["hello"] == {"status": "succeeded", "items": 1, "attempt": 1}

    proc = flowboard(tmp_path, "run", str(path), "--input", '[{"name": "Grace"}, {"name": "Linus"}]')
    assert [i["greeting"] for i in result_json(proc)["output"]] == ["Hello Grace", "Hello Linus"]


def test_failed_run_exits_1_and_usage_errors_exit_2(tmp_path: Path) -> None:
    failing = {**GOOD, "nodes": [*GOOD["nodes"], {"id": "call", "type": "http.request",
                                                   "config": {"url": "http://127.0.0.1:9/nothing", "timeout": 2}}],
               "edges": [*GOOD["edges"], {"source": "hello", "target": "call"}]}
    proc = flowboard(tmp_path, "run", str(write(tmp_path, "fail.json", failing)))
    assert proc.returncode == 1
    out = result_json(proc)
    assert out["status"] == "failed" and out["error"]["node_id"] == "call"

    proc = flowboard(tmp_path, "run", str(write(tmp_path, "g.json", GOOD)), "--input", "{oops")
    assert proc.returncode == 2 and "--input is not JSON" in proc.stderr
    proc = flowboard(tmp_path, "run", "no-such-flow")
    assert proc.returncode == 2 and "no stored flow has the id or name 'no-such-flow'" in proc.stderr


def test_import_export_round_trip_and_list(tmp_path: Path) -> None:
    path = write(tmp_path, "greet.json", GOOD)
    proc = flowboard(tmp_path, "import", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "imported 'Greet' as greet (version 1)" in proc.stdout
    listing = flowboard(tmp_path, "list").stdout
    assert "greet" in listing and "Greet" in listing and "never run" in listing

    out = tmp_path / "out.json"
    assert flowboard(tmp_path, "export", "Greet", "-o", str(out)).returncode == 0
    again = tmp_path / "again.json"
    flowboard(tmp_path, "import", str(out))  # same id: stored as a copy with a new id
    assert flowboard(tmp_path, "export", "greet", "-o", str(again)).returncode == 0
    assert out.read_bytes() == again.read_bytes()
    assert json.loads(out.read_text())["nodes"][1]["config"] == GOOD["nodes"][1]["config"]

    proc = flowboard(tmp_path, "run", "greet")  # a stored flow: the run is recorded
    assert result_json(proc)["status"] == "succeeded"
    assert "succeeded" in flowboard(tmp_path, "list").stdout


BROKEN = {
    "not JSON": ("{'name': 'x'", "this is not JSON at line 1, column 2"),
    "wrong format": ({**GOOD, "format": 2}, "format: this Flowboard reads flow format 1, the file says 2"),
    "unknown node type": ({**GOOD, "nodes": [GOOD["nodes"][0], {**GOOD["nodes"][1], "type": "data.sett"}]},
                          "nodes[1].type: unknown node type 'data.sett'"),
    "dangling edge": ({**GOOD, "edges": [{"source": "start", "target": "nowhere"}]},
                      "edges[0].target: there is no node with id 'nowhere'"),
    "cycle": ({**GOOD, "nodes": [*GOOD["nodes"], {**GOOD["nodes"][1], "id": "again"}],
               "edges": [{"source": "start", "target": "hello"}, {"source": "hello", "target": "again"},
                         {"source": "again", "target": "hello"}]}, "the connections form a loop"),
    "wrong port": ({**GOOD, "edges": [{"source": "start", "source_port": "yes", "target": "hello"}]},
                   "edges[0].source_port: node 'start' has no output 'yes' (it has 'main')"),
    "bad config": ({**GOOD, "nodes": [GOOD["nodes"][0], {**GOOD["nodes"][1], "config": {"fields": "greeting"}}]},
                   "nodes[1].config.fields: must be a list"),
    "bad expression": ({**GOOD, "nodes": [GOOD["nodes"][0], {**GOOD["nodes"][1], "config": {
        "fields": [{"name": "g", "value": "Hello {{ item.name "}]}}]},
        "nodes[1].config.fields[0].value: the expression is not closed: end it with }}"),
    "10 MB of junk": (b"\x00\x9f junk " * (10 * 1024 * 1024 // 8), "may be at most 5,242,880 bytes"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_files_are_rejected_with_a_located_message_and_nothing_is_stored(tmp_path: Path, case: str) -> None:
    data, expected = BROKEN[case]
    path = write(tmp_path, "broken.json", data)
    for command in ("validate", "import", "run"):
        proc = flowboard(tmp_path, command, str(path))
        assert proc.returncode == 2, f"{command}: {proc.stdout} {proc.stderr}"
        assert "The flow is not valid" in proc.stderr
        assert expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert "no flows yet" in flowboard(tmp_path, "list").stdout


def test_validate_good_and_schema_and_nodes(tmp_path: Path) -> None:
    proc = flowboard(tmp_path, "validate", str(write(tmp_path, "g.json", GOOD)))
    assert proc.returncode == 0 and "valid (2 nodes, 1 connections)" in proc.stdout
    schema = json.loads(flowboard(tmp_path, "schema").stdout)
    assert schema["title"] == "Flowboard flow file"
    nodes = flowboard(tmp_path, "nodes").stdout
    for type_id in ("trigger.manual", "logic.if", "logic.switch", "logic.merge", "data.set", "logic.filter",
                    "data.sort", "data.limit", "data.split_out", "data.aggregate", "logic.wait", "http.request",
                    "sql.query"):
        assert type_id in nodes
    reference = flowboard(tmp_path, "nodes", "--markdown").stdout
    assert reference.startswith("# Node reference")
    assert (Path(__file__).parent.parent / "docs" / "nodes.md").read_text() == reference, \
        "docs/nodes.md is stale: regenerate it with `flowboard nodes --markdown > docs/nodes.md`"


def test_credential_set_list_and_delete(tmp_path: Path) -> None:
    proc = flowboard(tmp_path, "credential", "set", "github", "--type", "basic", "user=ada", "password=-",
                     input="pa55-word!\n")
    assert proc.returncode == 0, proc.stderr
    assert "created credential github (basic)" in proc.stdout
    proc = flowboard(tmp_path, "credential", "set", "github", "--type", "basic", "user=grace")  # password kept
    assert proc.returncode == 0 and "changed credential github" in proc.stdout
    proc = flowboard(tmp_path, "credential", "set", "api", "--type", "bearer")
    assert proc.returncode == 2 and "Token (token) is required" in proc.stderr
    proc = flowboard(tmp_path, "credential", "set", "api", "--type", "bearer", "tokn=x")
    assert proc.returncode == 2 and "has no field 'tokn'" in proc.stderr
    assert flowboard(tmp_path, "credential", "set", "api", "--type", "bearer", "token=t0ken-xyz").returncode == 0

    listing = flowboard(tmp_path, "credential", "list").stdout
    assert "github" in listing and "basic" in listing and "api" in listing and "bearer" in listing
    assert "pa55-word!" not in listing and "t0ken-xyz" not in listing
    store = Store(data_dir=tmp_path)
    try:
        assert store.get_credential("github") == {"user": "grace", "password": "pa55-word!"}
    finally:
        store.close()

    assert flowboard(tmp_path, "credential", "delete", "github").returncode == 0
    proc = flowboard(tmp_path, "credential", "delete", "github")
    assert proc.returncode == 2 and "there is no credential 'github'" in proc.stderr
    assert "github" not in flowboard(tmp_path, "credential", "list").stdout


@pytest.mark.parametrize("case", list(BAD_JSON))
def test_bad_json_corpus_exits_2_with_the_place(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWBOARD_DATA_DIR", str(tmp_path / "data"))
    raw, expected = BAD_JSON[case]
    path = write(tmp_path, "bad.json", raw)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "The flow is not valid (1 problem)" in err and expected in err, err
    assert main(["run", str(path)]) == 2
    assert expected in capsys.readouterr().err
    if raw.isascii() and b"\\u" not in raw:  # --input takes text on the command line
        assert main(["run", str(path), "--input", raw.decode()]) == 2
        err = capsys.readouterr().err
        assert "--input" in err and expected in err, err


def test_workers_need_postgresql_and_say_so(tmp_path: Path) -> None:
    worker = flowboard(tmp_path, "worker")
    assert worker.returncode == 2
    assert "FLOWBOARD_DATABASE_URL" in worker.stderr and "postgresql://" in worker.stderr
    serve = flowboard(tmp_path, "serve", "--dispatch", "procrastinate", "--no-browser", "--port", "0")
    assert serve.returncode == 2, serve.stderr
    assert "PostgreSQL" in serve.stderr and "FLOWBOARD_DISPATCH" in serve.stderr and "Traceback" not in serve.stderr


def test_the_collector_is_off_only_while_the_server_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`flowboard` starts with Python's garbage collector off (its start-up makes objects, not garbage); every
    command but `serve` runs with it on, and the server turns it on once the editor is built, or failed to build:
    a collector left off would let a long-running server or worker grow with every cyclic object it drops."""
    import asyncio
    import gc

    from flowboard import __main__ as entry
    from flowboard import cli, server
    from flowboard.boot import Boot
    from flowboard.services import Flowboard

    seen: dict[str, bool] = {}
    for name in cli.COMMANDS:
        monkeypatch.setitem(cli.COMMANDS, name, lambda args, name=name: seen.__setitem__(name, gc.isenabled()))
    flow = write(tmp_path, "greet.json", GOOD)
    commands = [["list"], ["nodes"], ["validate", str(flow)], ["run", str(flow)], ["worker"], ["demo"], ["serve"], []]
    try:
        for argv in commands:
            monkeypatch.setattr("sys.argv", ["flowboard", *argv, "--data-dir", str(tmp_path)])
            entry.main()
            assert gc.isenabled() is (argv[:1] not in (["serve"], [])), argv
    finally:
        gc.enable()
    assert seen == {"list": True, "nodes": True, "validate": True, "run": True, "worker": True, "demo": True,
                    "serve": False}

    monkeypatch.setenv("FLOWBOARD_DATA_DIR", str(tmp_path / "data"))

    def broken(fb: Flowboard) -> None:
        raise RuntimeError("the editor could not be built")

    async def build(boot: Boot) -> None:
        boot.start()
        await boot.ready.wait()
        await boot.stop()

    monkeypatch.setattr(server, "create_app", broken)
    gc.disable()
    try:
        boot = Boot(Flowboard(record=False))
        asyncio.run(build(boot))
        assert gc.isenabled() and boot.app is None and boot.failed is not None
        gc.disable()
        server.settle_collector()  # what the built app's start-up calls (create_app's lifespan)
        assert gc.isenabled()
    finally:
        gc.enable()
