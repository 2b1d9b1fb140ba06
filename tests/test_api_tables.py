"""The data tables' REST API over real HTTP against `flowboard serve` (the `server` fixture of test_api.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from .test_api import Server, server  # noqa: F401  (the module's server fixture)


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:  # noqa: F811
    with server.client() as client:
        yield client


@pytest.fixture
def table(api: httpx.Client) -> str:
    name = f"Employees {uuid.uuid4().hex[:6]}"
    made = api.post("/tables", json={"name": name, "key": "employee", "columns": [
        {"name": "employee"}, {"name": "days_left", "type": "number", "default": 0}, {"name": "manager"}]})
    assert made.status_code == 201, made.text
    added = api.post(f"/tables/{name}/rows", json={"rows": [
        {"employee": "ada", "days_left": 20, "manager": "grace"}, {"employee": "bob", "days_left": 2}]})
    assert added.status_code == 201 and [r["id"] for r in added.json()["rows"]] == [1, 2]
    return name


def test_tables_are_listed_read_renamed_and_deleted(api: httpx.Client, table: str) -> None:
    assert table in [t["name"] for t in api.get("/tables").json()["tables"]]
    got = api.get(f"/tables/{table}").json()
    assert got["rows"] == 2 and got["key"] == "employee"
    assert [c["name"] for c in got["columns"]] == ["employee", "days_left", "manager"]
    assert "storage" not in got["columns"][0]
    renamed = api.patch(f"/tables/{table}", json={"name": table + " (old)"})
    assert renamed.status_code == 200 and renamed.json()["name"] == table + " (old)"
    assert api.delete(f"/tables/{table} (old)").status_code == 204
    missing = api.get(f"/tables/{table} (old)")
    assert missing.status_code == 404 and "there is no data table" in missing.json()["error"]


def test_rows_are_found_changed_and_removed(api: httpx.Client, table: str) -> None:
    page = api.get(f"/tables/{table}/rows", params={"sort": "-days_left", "limit": 1}).json()
    assert [r["employee"] for r in page["rows"]] == ["ada"] and page["total"] == 2
    assert [r["employee"] for r in api.get(f"/tables/{table}/rows", params={"manager": "grace"}).json()["rows"]] \
        == ["ada"]
    found = api.post(f"/tables/{table}/rows/find", json={"conditions": [
        {"column": "days_left", "op": "is less than", "value": 5}]}).json()
    assert [r["employee"] for r in found["rows"]] == ["bob"]
    assert api.patch(f"/tables/{table}/rows/2", json={"days_left": 4}).json()["days_left"] == 4
    assert api.get(f"/tables/{table}/rows/2").json()["days_left"] == 4
    up = api.post(f"/tables/{table}/rows/upsert", json={"rows": [{"employee": "bob", "manager": "ada"},
                                                               {"employee": "cy"}]}).json()["rows"]
    assert [(r["employee"], r["manager"]) for r in up] == [("bob", "ada"), ("cy", None)]
    updated = api.post(f"/tables/{table}/rows/update", json={"conditions": [
        {"column": "manager", "op": "is empty"}], "values": {"manager": "zoe"}}).json()["rows"]
    assert [r["employee"] for r in updated] == ["cy"]
    assert api.delete(f"/tables/{table}/rows/3").status_code == 204
    assert api.delete(f"/tables/{table}/rows/3").status_code == 404
    gone = api.post(f"/tables/{table}/rows/delete", json={"conditions": [{"column": "employee", "value": "bob"}]})
    assert [r["employee"] for r in gone.json()["rows"]] == ["bob"]
    assert api.get(f"/tables/{table}").json()["rows"] == 1


def test_a_conditional_change_applies_completely_or_not_at_all(api: httpx.Client, table: str) -> None:
    body = {"conditions": [{"column": "employee", "value": "bob"},
                           {"column": "days_left", "op": "is greater than or equal to", "value": 3}],
            "changes": [{"column": "days_left", "action": "decrease by", "value": 3}]}
    refused = api.post(f"/tables/{table}/rows/change", json=body).json()
    assert refused == {"applied": False, "rows": []}
    body["conditions"][0]["value"] = "ada"
    done = api.post(f"/tables/{table}/rows/change", json=body).json()
    assert done["applied"] and done["rows"][0]["days_left"] == 17


BAD = [
    ("post", "/tables", {"name": "X", "columns": [{"name": "id"}]}, 422, "kept for every row"),
    ("post", "/tables", {"name": "X", "colums": []}, 422, "colums"),
    ("post", "/tables/{t}/rows", {"rows": [{"employee": "ada"}]}, 422, "another row already has 'ada'"),
    ("post", "/tables/{t}/rows", {"rows": [{"employee": "dan", "days_left": "many"}]}, 422, "is not a number"),
    ("post", "/tables/{t}/rows", {"rows": [{"employee": "dan", "age": 3}]}, 422, "there is no such column"),
    ("post", "/tables/{t}/rows/find", {"conditions": [{"column": "x", "op": "is", "value": 1}]}, 422,
     "there is no column 'x'"),
    ("post", "/tables/{t}/rows/find", {"conditions": [{"column": "employee", "op": "gte"}]}, 422, ""),
    ("post", "/tables/{t}/rows/delete", {"conditions": []}, 422, ""),
    ("post", "/tables/{t}/rows/change", {"changes": [{"column": "manager", "action": "increase by",
                                                      "value": 1}]}, 422, "number columns only"),
    ("put", "/tables/{t}/columns/manager", {"name": "manager", "type": "number"}, 422, "'grace' is not a number"),
    ("delete", "/tables/{t}/columns/employee", None, 422, "key column"),
    ("post", "/tables/{t}/columns", {"name": "office", "required": True}, 422, "needs a default value"),
    ("get", "/tables/nope/rows", None, 404, "there is no data table called 'nope'"),
    ("get", "/tables/{t}/rows/99", None, 404, "there is no row 99"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "words"), BAD)
def test_bad_requests_get_a_clear_answer_and_change_nothing(api: httpx.Client, table: str, method: str, path: str,
                                                           body: object, status: int, words: str) -> None:
    before = api.get(f"/tables/{table}/rows").json()
    answer = api.request(method.upper(), path.replace("{t}", table), json=body)
    assert answer.status_code == status, answer.text
    assert words in answer.text and "error" in answer.json()
    assert api.get(f"/tables/{table}/rows").json() == before


def test_csv_import_dry_run_lists_every_bad_line_and_export_round_trips(api: httpx.Client, table: str) -> None:
    bad = "employee,days_left\ndan,5\neve,lots\nada,1\n"
    report = api.post(f"/tables/{table}/import", content=bad, params={"dry_run": "false"},
                      headers={"Content-Type": "text/csv"}).json()
    assert "committed" in report, report
    assert not report["committed"] and len(report["problems"]) == 2
    assert report["problems"][0].startswith("line 3: days_left") and report["problems"][1].startswith("line 4")
    good = "employee,days_left\ndan,5\neve,6\n"
    dry = api.post(f"/tables/{table}/import", content=good, headers={"Content-Type": "text/csv"}).json()
    assert dry == {"rows": 2, "inserted": 2, "updated": 0, "committed": False, "problems": []}
    assert api.get(f"/tables/{table}").json()["rows"] == 2
    done = api.post(f"/tables/{table}/import", content=good, params={"dry_run": "false"}).json()
    assert done["committed"] and api.get(f"/tables/{table}").json()["rows"] == 4
    csv = api.get(f"/tables/{table}/export", params={"sort": "employee", "manager": "grace"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["id,employee,days_left,manager", "1,ada,20,grace"]
    assert api.post(f"/tables/{table}/import", content=b"\xff\xfe").status_code == 422


def test_the_tables_api_needs_a_key(server: Server, table: str) -> None:  # noqa: F811
    with server.client(key="") as anonymous:
        for path in ("/tables", f"/tables/{table}", f"/tables/{table}/rows", f"/tables/{table}/export"):
            assert anonymous.get(path).status_code == 401
        assert anonymous.post(f"/tables/{table}/rows", json={"rows": [{"employee": "x"}]}).status_code == 401
