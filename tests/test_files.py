"""Files in items: the blob store, Read file / Write file in the allowed folder (escapes refused, symbolic links
included), and Items to file / File to items round trips (CSV, JSON, text, xlsx with a corpus of cell types)."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui.testing import User

from flowboard.blobs import BlobStore, refs_in
from flowboard.engine import RunResult
from flowboard.model import parse_flow
from flowboard.services import Flowboard

from .conftest import make_flow
from .pagekit import keep_flowboard_modules
from .test_store import MakeStore, make_store  # noqa: F401  (the fixture: SQLite and PostgreSQL)

pytest_plugins = ["nicegui.testing.user_plugin"]


@pytest.fixture
async def fb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Flowboard]:
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("FLOWBOARD_FILES_DIR", str(tmp_path / "shared"))
    app = Flowboard(data_dir=tmp_path / "data")
    yield app
    await app.aclose()


async def run(fb: Flowboard, nodes: list[dict[str, Any]], items: list[dict[str, Any]] | None = None) -> RunResult:
    """A chain trigger -> nodes[0] -> nodes[1] ..."""
    ids = ["t", *(n["id"] for n in nodes)]
    flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual"}, *nodes], list(itertools.pairwise(ids))))
    fb.save_flow(flow, None)
    return await fb.run_flow(flow.id, items or [{}])


# A corpus of what items hold, as a spreadsheet gets it: text (unicode, empty, a would-be formula, line breaks,
# long), whole numbers (negative, large), decimals, true/false, empty, and lists and objects (kept as JSON text).
CORPUS: list[dict[str, Any]] = [
    {"text": "Zoë Ångström ✓ 漢字", "whole": 42, "decimal": 3.25, "flag": True, "nothing": None,
     "list": [1, "a"], "object": {"k": {"n": 1}}},
    {"text": "=1+1", "whole": -7, "decimal": -0.001, "flag": False, "nothing": "present", "list": [],
     "object": {}},
    {"text": "two\nlines, a \"quote\" and a ; semicolon", "whole": 9007199254740991, "decimal": 1e-300,
     "flag": True, "nothing": None, "list": None, "object": None},
    {"text": "x" * 5000, "whole": 0, "decimal": 1.5e300, "flag": None, "nothing": None, "list": [None],
     "object": {"emoji": "🎉"}},
]


def as_cells(item: dict[str, Any]) -> dict[str, Any]:
    return {k: json.dumps(v, ensure_ascii=False, separators=(",", ":")) if isinstance(v, list | dict) else v
            for k, v in item.items()}


async def test_xlsx_round_trip_keeps_every_cell_type(fb: Flowboard, tmp_path: Path) -> None:
    result = await run(fb, [
        {"id": "make", "type": "convert.to_file", "config": {"format": "xlsx", "name": "people"}},
        {"id": "write", "type": "files.write", "config": {"path": "out/people.xlsx"}},
        {"id": "read", "type": "files.read", "config": {"path": "{{ item.path }}"}},
        {"id": "items", "type": "convert.from_file", "config": {}},
    ], CORPUS)
    assert result.status.value == "succeeded", result.error
    assert result.output == [as_cells(i) for i in CORPUS]
    from openpyxl import load_workbook

    sheet = load_workbook(tmp_path / "shared" / "out" / "people.xlsx").active
    assert [c.value for c in sheet[1]] == list(CORPUS[0])
    formula = sheet.cell(row=3, column=1)
    assert formula.value == "=1+1" and formula.data_type == "s"  # text, never a formula


@pytest.mark.parametrize("fmt", ["csv", "json", "text"])
async def test_csv_json_and_text_round_trips(fb: Flowboard, fmt: str) -> None:
    items = [{"text": row["text"], "whole": row["whole"], "list": row["list"]} for row in CORPUS]
    result = await run(fb, [
        {"id": "make", "type": "convert.to_file", "config": {"format": fmt, "name": "rows"}},
        {"id": "items", "type": "convert.from_file", "config": {"lines": False}},
    ], items)
    assert result.status.value == "succeeded", result.error
    made = result.steps["make"].outputs["main"][0]["file"]
    assert made["name"] == f"rows.{'txt' if fmt == 'text' else fmt}" and made["size"] > 0
    if fmt == "json":
        assert result.output == items
    elif fmt == "csv":  # CSV has text only
        assert result.output == [{"text": i["text"], "whole": str(i["whole"]),
                                  "list": "" if i["list"] is None else json.dumps(i["list"], separators=(",", ":"))}
                                 for i in items]
    else:
        assert result.output == [{"text": "".join(f"{i['text']}\n" for i in items)}]


async def test_paths_outside_the_folder_are_refused_symlinks_included(fb: Flowboard, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (tmp_path / "secret.txt").write_text("not for flows")
    (shared / "inside.txt").write_text("hello")
    os.symlink(tmp_path / "secret.txt", shared / "leak.txt")
    os.symlink(tmp_path, shared / "up")
    os.symlink(shared / "inside.txt", shared / "alias.txt")  # a link that stays inside is fine
    for path in ["../secret.txt", str(tmp_path / "secret.txt"), "leak.txt", "up/secret.txt", "/etc/passwd", ".",
                 "a/../../secret.txt"]:
        result = await run(fb, [{"id": "read", "type": "files.read", "config": {"path": path}}])
        assert result.status.value == "failed", path
        assert "leads outside the folder flows may use" in str(result.error), (path, result.error)
        assert "not for flows" not in json.dumps(result.output)
    ok = await run(fb, [{"id": "read", "type": "files.read", "config": {"path": "alias.txt"}},
                        {"id": "items", "type": "convert.from_file", "config": {}}])
    assert ok.output == [{"text": "hello"}]
    missing = await run(fb, [{"id": "read", "type": "files.read", "config": {"path": "nope.csv"}}])
    assert "there is no file 'nope.csv'" in str(missing.error)
    # writing through a link to elsewhere is refused too, and writes nothing
    written = await run(fb, [{"id": "make", "type": "convert.to_file", "config": {"format": "text"}},
                             {"id": "write", "type": "files.write", "config": {"path": "up/new.txt"}}])
    assert "leads outside" in str(written.error) and not (tmp_path / "new.txt").exists()


async def test_write_file_if_exists_fail_keeps_the_old_file(fb: Flowboard, tmp_path: Path) -> None:
    (tmp_path / "shared" / "a.txt").write_text("old")
    nodes = [{"id": "make", "type": "convert.to_file", "config": {"format": "text"}},
             {"id": "write", "type": "files.write", "config": {"path": "a.txt", "if_exists": "fail"}}]
    result = await run(fb, nodes, [{"text": "new"}])
    assert "'a.txt' exists already" in str(result.error)
    assert (tmp_path / "shared" / "a.txt").read_text() == "old"
    nodes[1]["config"]["if_exists"] = "overwrite"
    result = await run(fb, nodes, [{"text": "new"}])
    assert result.output == [{"file": result.steps["make"].outputs["main"][0]["file"], "path": "a.txt", "size": 4}]
    assert (tmp_path / "shared" / "a.txt").read_text() == "new\n"


def test_blob_store_keeps_content_once_under_its_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = BlobStore(tmp_path / "blobs")
    a = store.put(b"%PDF-1.4 same", "token=s3cret invoice.pdf")
    b = store.put(b"%PDF-1.4 same", "copy.pdf")
    assert a["$file"] == b["$file"] == hashlib.sha256(b"%PDF-1.4 same").hexdigest()
    assert a["mime_type"] == "application/pdf" and a["size"] == 13
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert [p.name for p in files] == [a["$file"]]  # the name given (a secret in it) is not on disk
    assert store.get(b) == b"%PDF-1.4 same" and refs_in({"x": [a, {"y": b}]}) == {a["$file"]}
    monkeypatch.setenv("FLOWBOARD_MAX_FILE_MB", "0.001")
    with pytest.raises(ValueError, match="more than the 1,048 bytes a file may have"):
        store.put(b"x" * 2000, "big.bin")


async def test_a_value_that_is_not_a_file_is_named(fb: Flowboard) -> None:
    result = await run(fb, [{"id": "items", "type": "convert.from_file", "config": {"field": "doc"}}],
                       [{"doc": "just text"}])
    assert result.status.value == "failed" and "field is not a file" in str(result.error)


async def test_a_runs_files_download_for_who_may_see_the_run_only(fb: Flowboard) -> None:
    from fastapi import FastAPI

    from flowboard.api import rest

    fb.accounts.add_user("ada", "a-long-passw0rd!", ["admin"])
    fb.accounts.add_user("rob", "a-long-passw0rd!", ["requester"])
    _info, admin = fb.store.create_api_key("ada's", fb.accounts.get_user("ada").id)
    _info, requester = fb.store.create_api_key("rob's", fb.accounts.get_user("rob").id)
    result = await run(fb, [{"id": "make", "type": "convert.to_file",
                             "config": {"format": "csv", "name": "Zoë's report"}}], [{"a": 1}, {"a": 2}])
    ref = result.output[0]["file"]
    other = await run(fb, [{"id": "make", "type": "convert.to_file", "config": {"format": "json"}}], [{"b": 1}])
    app = FastAPI()
    rest.register(app, fb)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://flowboard.test") as client:
        url = f"/api/v1/runs/{result.run_id}/files/{ref['$file']}"
        answer = await client.get(url, headers={"X-API-Key": admin})
        assert answer.status_code == 200 and answer.content == b"a\r\n1\r\n2\r\n"
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"] == \
            "attachment; filename=\"Zo_'s report.csv\"; filename*=UTF-8''Zo%C3%AB%27s%20report.csv"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert (await client.get(url)).status_code == 401
        denied = await client.get(url, headers={"X-API-Key": requester})
        assert denied.status_code == 403 and "may not use this part of the API" in denied.json()["error"]
        # another run's file is not this run's to give, though the caller may see both runs
        foreign = other.output[0]["file"]["$file"]
        missing = await client.get(f"/api/v1/runs/{result.run_id}/files/{foreign}", headers={"X-API-Key": admin})
        assert missing.status_code == 404 and "has no file" in missing.json()["error"]


_keep_modules = keep_flowboard_modules(autouse=False)


@pytest.mark.usefixtures("_keep_modules")
async def test_the_run_page_shows_files_with_name_type_size_and_a_download(user: User, fb: Flowboard) -> None:
    from flowboard.ui import pages

    pages.register(fb)
    result = await run(fb, [{"id": "make", "type": "convert.to_file", "config": {"format": "xlsx", "name": "team"}}],
                       CORPUS)
    ref = result.output[0]["file"]
    await user.open(f"/run/{result.run_id}")
    await user.should_see(marker="file:team.xlsx")
    await user.should_see(f"spreadsheet (xlsx) · {ref['size'] / 1000:.1f} kB")
    link = user.find(marker="download:team.xlsx").elements.pop()
    assert link.props["href"] == f"/run/{result.run_id}/files/{ref['$file']}"
    table = user.find(marker="table:run-output:main").elements.pop()
    assert table.rows[0]["c0"] == f"team.xlsx (file, {ref['size'] / 1000:.1f} kB)"  # the table's cell


async def test_files_of_deleted_runs_are_swept_and_the_rest_kept(fb: Flowboard) -> None:
    make = [{"id": "make", "type": "convert.to_file", "config": {"format": "json", "name": "x"}}]
    gone = await run(fb, make, [{"n": "only in the run that goes"}])
    shared_a = await run(fb, make, [{"n": "in two runs"}])
    shared_b = await run(fb, make, [{"n": "in two runs"}])
    pinned = fb.blobs.put(b"pinned test data", "pinned.txt")
    flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual", "pinned": [{"file": pinned}]}], [],
                                name="pins"))
    fb.save_flow(flow, None)
    orphan = fb.blobs.put(b"made by a node, not recorded yet", "new.bin")
    file_of = {r.run_id: r.output[0]["file"]["$file"] for r in (gone, shared_a, shared_b)}
    assert len(fb.blobs.all()) == 4 and file_of[shared_a.run_id] == file_of[shared_b.run_id]

    fb.store.delete_run(gone.run_id)
    fb.store.delete_run(shared_a.run_id)
    assert fb.sweep_files() == 0  # within the grace period nothing goes (a node's new file is not recorded yet)
    assert fb.sweep_files(grace=0) == 2
    assert fb.blobs.all() == {file_of[shared_b.run_id], pinned["$file"]}
    assert not fb.blobs.exists(orphan["$file"]) and not fb.blobs.exists(file_of[gone.run_id])
    fb.store.delete_flow(flow.id)
    assert fb.sweep_files(grace=0) == 1 and fb.blobs.all() == {file_of[shared_b.run_id]}


async def test_clean_up_now_deletes_old_runs_and_then_their_files(fb: Flowboard) -> None:
    """'Clean up now' on the runs page: the runs the retention settings no longer keep go, and with them the files
    only they named (kept longer ago than the sweep's grace); the newest run keeps its file."""
    import time

    make = [{"id": "make", "type": "convert.to_file", "config": {"format": "json", "name": "x"}}]
    old = await run(fb, make, [{"n": "old"}])
    new = await run(fb, make, [{"n": "new"}])
    old_file, new_file = (r.output[0]["file"]["$file"] for r in (old, new))
    assert isinstance(fb.blobs, BlobStore)
    for sha in (old_file, new_file):  # kept two hours ago
        os.utime(fb.blobs.path(sha), (time.time() - 7200, time.time() - 7200))
    from flowboard.store.tables import runs_t

    with fb.store.engine.begin() as conn:  # the old run finished two days ago
        conn.execute(runs_t.update().where(runs_t.c.id == old.run_id).values(created=time.time() - 2 * 86400))
    fb.store.set_settings({"keep_days": 1})
    assert fb.clean_up() == 1
    assert [r.id for r in fb.store.list_runs()] == [new.run_id]
    assert fb.blobs.all() == {new_file}


def test_database_blobs_keep_files_in_the_database(make_store: MakeStore,  # noqa: F811
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL, Flowboard keeps files in the `blobs` table (shared by servers and workers). The table exists on
    SQLite too (the same migrations), where a server uses the data folder instead; the table store is checked on
    both, so it cannot drift from the schema on either."""
    from flowboard.store.blobs import DatabaseBlobs

    store = make_store()
    blobs = DatabaseBlobs(store.engine)
    a = blobs.put(b"%PDF-1.4 same", "a.pdf")
    b = blobs.put(b"%PDF-1.4 same", "b.pdf")
    assert a["$file"] == b["$file"] and blobs.all() == {a["$file"]} and blobs.get(b) == b"%PDF-1.4 same"
    assert blobs.local_path(a["$file"]) is None and 0 <= blobs.age(a["$file"]) < 60
    flow = parse_flow(make_flow([{"id": "t", "type": "trigger.manual", "pinned": [{"file": a}]}], [], name="pins"))
    store.save_flow(flow, expected_version=None)
    assert store.file_ids_in_use() == {a["$file"]}
    blobs.delete(a["$file"])
    assert not blobs.exists(a["$file"])
    with pytest.raises(FileNotFoundError, match="no longer kept"):
        blobs.get(a)
    monkeypatch.setenv("FLOWBOARD_MAX_FILE_MB", "0.001")  # the same limit as the data folder's store, in words
    with pytest.raises(ValueError, match=r"the file 'big\.bin' has 2,000 bytes, more than the 1,048 bytes a file may"):
        blobs.put(b"x" * 2000, "big.bin")


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_a_worker_sweeps_the_files_no_run_names(tmp_path: Path) -> None:
    """Runs executed by `flowboard worker` processes keep their files in the database; a worker sweeps them as a
    server does (at its start, then hourly), with no server running: a file whose run was deleted goes, a file a
    kept run names stays, and a file made again within the grace period stays too."""
    import time

    import sqlalchemy as sa

    from flowboard.store.blobs import DatabaseBlobs
    from flowboard.store.tables import blobs_t

    from .workerkit import Cluster

    with Cluster(tmp_path, workers=0) as cluster:
        assert cluster.store is not None
        store = cluster.store
        blobs = DatabaseBlobs(store.engine)
        kept = blobs.put(b"%PDF-1.4 invoice of a kept run", "invoice.pdf")
        gone = blobs.put(b"%PDF-1.4 invoice of a deleted run", "old.pdf")
        store.create_run("r-kept", "f", None, "manual", [{"doc": kept}], "manual", status="succeeded")
        store.create_run("r-gone", "f", None, "manual", [{"doc": gone}], "manual", status="succeeded")
        store.delete_run("r-gone")
        with store.engine.begin() as conn:  # kept two hours ago: beyond the sweep's grace
            conn.execute(blobs_t.update().values(created=time.time() - 7200))
        again = blobs.put(b"%PDF-1.4 invoice of a deleted run, made again", "again.pdf")
        store.create_run("r-again", "f", None, "manual", [{"doc": again}], "manual", status="succeeded")
        store.delete_run("r-again")  # no run names it, but it was made a moment ago: a node's new file, kept

        worker = cluster.add_worker("sweeper")
        worker.wait_ready()
        deadline = time.monotonic() + 60
        while "deleted 1 kept file(s) that no run or flow names any more" not in worker.output:
            assert time.monotonic() < deadline, f"the worker did not sweep:\n{worker.output}"
            time.sleep(0.2)
        assert blobs.all() == {kept["$file"], again["$file"]}
        with store.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(blobs_t)).scalar() == 2
