"""Every example in flows/ runs offline on a fresh machine with `flowboard run`, and does what its description says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .clihelp import flowboard, result_json

FLOWS = Path(__file__).parent.parent / "flows"


def run(tmp_path: Path, name: str, *extra: str) -> dict:
    proc = flowboard(tmp_path, "run", str(FLOWS / f"{name}.json"), *extra)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return result_json(proc)


def test_every_example_is_valid_and_tested(tmp_path: Path) -> None:
    names = sorted(p.stem for p in FLOWS.glob("*.json"))
    assert len(names) >= 3
    assert set(names) <= set(EXPECTED), f"add a test for the new example(s) {set(names) - set(EXPECTED)}"
    for name in names:
        assert flowboard(tmp_path, "validate", str(FLOWS / f"{name}.json")).returncode == 0


def test_vacation_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = run(tmp_path, "vacation-request", "--input", '{"employee": "ada", "days": 3}')
    assert out["output"] == [{"employee": "ada", "days_left": 12, "days_requested": 3,
                              "status": "waiting for manager approval"}]
    assert out["steps"]["decline"]["status"] == "skipped"
    out = run(tmp_path, "vacation-request", "--input", '{"employee": "grace", "days": 5}')
    assert out["output"][0]["status"] == "declined: only 2 days left"
    assert out["steps"]["to_manager"]["status"] == "skipped"


def test_invoice_approval(tmp_path: Path) -> None:
    out = run(tmp_path, "invoice-approval")
    assert [(i["number"], i["approver"]) for i in out["output"]] == [
        ("INV-103", "CFO"), ("INV-102", "manager"), ("INV-101", "automatic"), ("INV-104", "automatic")]


def test_crm_to_invoices(tmp_path: Path) -> None:
    [summary] = run(tmp_path, "crm-to-invoices")["output"]
    lines = summary["lines"]
    assert {line["invoice_number"] for line in lines} == {"INV-7", "INV-9"}  # the lost deal is not billed
    assert [line["amount"] for line in lines] == [900, 600, 240]
    assert json.dumps(lines).count("stage") == 0


EXPECTED = {"vacation-request", "invoice-approval", "crm-to-invoices"}
