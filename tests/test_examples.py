"""Every example in flows/ runs on a fresh machine with `flowboard run`, and does what its description says. The
business flows call the stand-ins of `flowboard demo` (flowboard/demo.py), which the tests start."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from flowboard.datatables import Condition
from flowboard.demo import DemoServer

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


def test_vacation_request_declines_at_once_when_days_are_short(tmp_path: Path, stand_ins: DemoServer) -> None:
    from flowboard.demo import prepare
    from flowboard.services import Flowboard

    stand_ins.state.reset()
    fb = Flowboard(data_dir=tmp_path)
    prepare(fb)
    fb.store.close()
    out = run(tmp_path, "vacation-request", "--input",
              '{"employee": "alan", "days": 5, "first_day": "2026-12-21", "reason": "trip"}')
    assert out["steps"]["ask"]["status"] == "skipped" and out["steps"]["declined"]["status"] == "succeeded"
    (mail,) = stand_ins.state.mail
    assert mail["to"] == "alan@example.com" and mail["subject"] == "Not enough vacation days"
    assert "you asked for 5 days but have 2 left" in mail["text"]


async def test_vacation_request_end_to_end(tmp_path: Path, stand_ins: DemoServer) -> None:
    """Form item → leave looked up → the manager asked (by email, with one-click links) → the run waits → decided
    → days taken safely → the employee told. Approve, reject with a comment, and two approved requests that together
    ask for more days than are left (the second is told the days went meanwhile; the balance never goes negative)."""
    from flowboard.demo import prepare
    from flowboard.services import Flowboard

    stand_ins.state.reset()
    fb = Flowboard(data_dir=tmp_path)
    try:
        prepare(fb)
        fb.import_flow((FLOWS / "vacation-request.json").read_text())
        fb.approvals.start()

        async def ask(employee: str, days: int) -> str:
            result = await fb.run_flow("vacation-request", [{"employee": employee, "days": days,
                                                             "first_day": "2026-12-20", "reason": "family"}],
                                       trigger="request")
            assert result.status.value == "waiting", result.error
            return result.run_id

        async def decide(run_id: str, outcome: str, comment: str = "") -> None:
            (task,) = fb.approvals.store.list_tasks(run_id=run_id)
            assert task.assignees == ["grace"] and task.title == "Vacation for ada"
            await fb.approvals.decide(task.id, outcome, "grace", comment=comment)
            for _ in range(600):  # up to 30 s on a loaded machine
                if fb.store.get_run(run_id).status.finished:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"run {run_id} did not finish")

        def days_left() -> int:
            return int(fb.tables.tables.find("Employees", [Condition(column="employee", value="ada")])[0]["days_left"])

        first = await ask("ada", 3)
        request = stand_ins.state.mail[-1]
        assert request["to"] == "grace@example.com" and "ada asks for 3 days from 2026-12-20" in request["text"]
        assert "/decide/" in request["text"]  # her own one-click links
        await decide(first, "approve")
        assert days_left() == 17
        assert stand_ins.state.mail[-1]["subject"] == "Your vacation is approved"
        assert "Days left: 17" in stand_ins.state.mail[-1]["text"]

        second = await ask("ada", 5)
        await decide(second, "reject", "the team is short that week")
        assert days_left() == 17
        assert "Comment: the team is short that week" in stand_ins.state.mail[-1]["text"]

        one, two = await ask("ada", 10), await ask("ada", 10)
        await decide(one, "approve")
        await decide(two, "approve")
        assert days_left() == 7
        assert [m["subject"] for m in stand_ins.state.mail[-2:]] == [
            "Your vacation is approved", "Your vacation could not be booked"]
        assert all(fb.store.get_run(r).status.value == "succeeded" for r in (first, second, one, two))
    finally:
        await fb.aclose()


async def test_invoice_approval_routes_by_the_rules_table(tmp_path: Path, stand_ins: DemoServer) -> None:
    """Below the threshold one approver; above it two of three. Approved invoices are booked in accounting and the
    requester told; a rejection comes back with the comment; changing a rule row changes the next invoice's route."""
    from flowboard.demo import prepare
    from flowboard.services import Flowboard

    stand_ins.state.reset()
    fb = Flowboard(data_dir=tmp_path)
    try:
        prepare(fb)
        fb.import_flow((FLOWS / "invoice-approval.json").read_text())
        fb.approvals.start()

        async def submit(number: str, amount: int) -> str:
            result = await fb.run_flow("invoice-approval", [{
                "number": number, "supplier": "Paper & Co", "amount": amount, "description": "paper",
                "department": "office", "requester": "eve", "requester_email": "eve@example.com"}], trigger="invoice")
            assert result.status.value == "waiting", result.error
            return result.run_id

        async def answer(run_id: str, who: str, outcome: str, comment: str = "") -> None:
            task = next(t for t in fb.approvals.store.list_tasks(run_id=run_id) if t.assignees == [who])
            await fb.approvals.decide(task.id, outcome, who, comment=comment)

        async def finished(run_id: str) -> str:
            for _ in range(600):  # up to 30 s on a loaded machine
                run = fb.store.get_run(run_id)
                if run.status.finished:
                    return run.status.value
                await asyncio.sleep(0.05)
            raise AssertionError(f"run {run_id} did not finish")

        small = await submit("INV-1", 800)
        assert [t.assignees for t in fb.approvals.store.list_tasks(run_id=small)] == [["grace"]]
        await answer(small, "grace", "approve")
        assert await finished(small) == "succeeded"
        assert [e["invoice"] for e in stand_ins.state.entries] == ["INV-1"]
        assert stand_ins.state.mail[-1]["to"] == "eve@example.com"
        assert "was approved and booked as entry 1" in stand_ins.state.mail[-1]["text"]

        big = await submit("INV-2", 12_000)
        assert sorted(t.assignees[0] for t in fb.approvals.store.list_tasks(run_id=big)) == ["ada", "grace", "linus"]
        await answer(big, "ada", "approve")
        assert fb.store.get_run(big).status.value == "waiting"  # one of the two approvals so far
        await answer(big, "linus", "approve")
        assert await finished(big) == "succeeded"
        assert [e["invoice"] for e in stand_ins.state.entries] == ["INV-1", "INV-2"]

        refused = await submit("INV-3", 300)
        await answer(refused, "grace", "reject", "this is a duplicate of INV-1")
        assert await finished(refused) == "succeeded"
        assert "Comment: this is a duplicate of INV-1" in stand_ins.state.mail[-1]["text"]
        assert len(stand_ins.state.entries) == 2

        # Raise the threshold in the table (as in the grid): the same amount now needs one approver.
        await fb.tables.call("update", "Invoice rules", [Condition(column="needed", value=1)],
                             {"amount is less than": 20_000})
        await fb.tables.call("update", "Invoice rules", [Condition(column="needed", value=2)],
                             {"amount is greater than or equal to": 20_000})
        again = await submit("INV-4", 12_000)
        assert [t.assignees for t in fb.approvals.store.list_tasks(run_id=again)] == [["grace"]]
    finally:
        await fb.aclose()


async def test_invoice_approval_by_flowboard_run_waits_for_its_approver(tmp_path: Path, stand_ins: DemoServer) -> None:
    """`flowboard run` of the stored flow parks the run for grace and says so (not an error); the run of the bare file
    cannot be kept waiting and says how to store it. grace's answer finishes the stored run."""
    from flowboard.demo import prepare
    from flowboard.services import Flowboard

    stand_ins.state.reset()
    fb = Flowboard(data_dir=tmp_path)
    prepare(fb)
    fb.store.close()
    invoice = json.dumps({"number": "INV-7", "supplier": "Paper & Co", "amount": 800, "description": "paper",
                          "department": "office", "requester": "eve", "requester_email": "eve@example.com"})
    bare = flowboard(tmp_path, "run", str(FLOWS / "invoice-approval.json"), "--input", invoice)
    assert bare.returncode == 1 and result_json(bare)["status"] == "waiting"
    assert "a run of a flow file is not kept" in bare.stderr and "flowboard import" in bare.stderr
    assert flowboard(tmp_path, "import", str(FLOWS / "invoice-approval.json")).returncode == 0
    stored = flowboard(tmp_path, "run", "invoice-approval", "--input", invoice)
    assert stored.returncode == 0, stored.stderr
    assert "The run waits" in stored.stderr and "inbox" in stored.stderr
    run_id = result_json(stored)["run_id"]

    fb = Flowboard(data_dir=tmp_path)
    try:
        fb.approvals.start()
        (task,) = fb.approvals.store.list_tasks(run_id=run_id)
        assert task.assignees == ["grace"]
        await fb.approvals.decide(task.id, "approve", "grace")
        for _ in range(600):  # up to 30 s on a loaded machine
            if fb.store.get_run(run_id).status.finished:
                break
            await asyncio.sleep(0.05)
        assert fb.store.get_run(run_id).status.value == "succeeded"
        assert [e["invoice"] for e in stand_ins.state.entries] == ["INV-7"]
    finally:
        await fb.aclose()


def test_crm_to_invoices(tmp_path: Path, stand_ins: DemoServer) -> None:
    stand_ins.state.reset()
    won = [d for d in stand_ins.state.deals if d["status"] == "won"]
    assert len(won) > 10  # more than one page of the CRM's paging
    out = run(tmp_path, "crm-to-invoices")
    assert sorted(i["customer"] for i in out["output"]) == sorted(d["customer"] for d in won)
    assert all(i["new"] for i in out["output"]) and len(stand_ins.state.invoices) == len(won)
    again = run(tmp_path, "crm-to-invoices")  # a rerun bills nothing twice
    assert not any(i["new"] for i in again["output"])
    assert [i["invoice"] for i in again["output"]] == [i["invoice"] for i in out["output"]]
    assert len(stand_ins.state.invoices) == len(won)


def test_customer_hub(tmp_path: Path, stand_ins: DemoServer) -> None:
    stand_ins.state.reset()
    made = flowboard(tmp_path, "credential", "set", "Team chat", "--type", "chat_webhook",
                     "url=http://127.0.0.1:8091/chat/webhook")
    assert made.returncode == 0, made.stderr
    change = {"event": "update", "table": "Customers", "changed": ["email"],
              "row": {"customer_id": "C007", "name": "Initech", "email": "ap@initech.example", "segment": "large",
                      "vat_id": "DE123"}}
    out = run(tmp_path, "customer-hub", "--input", json.dumps(change))
    assert out["status"] == "succeeded"
    state = stand_ins.state
    assert state.crm_customers["C007"]["email"] == "ap@initech.example"
    assert state.invoicing_customers["C007"]["vat_id"] == "DE123"
    assert "Customer Initech changed" in state.chat[-1]["text"] and "email" in state.chat[-1]["text"]


async def test_customer_hub_routes_every_row_change(tmp_path: Path, stand_ins: DemoServer) -> None:
    """The hub switched on: rows changed in the table (as the grid and the API change them) reach every spoke."""
    from flowboard.demo import prepare
    from flowboard.services import Flowboard

    stand_ins.state.reset()
    fb = Flowboard(data_dir=tmp_path)
    try:
        prepare(fb)
        fb.import_flow((FLOWS / "customer-hub.json").read_text())
        fb.activate("customer-hub")
        await fb.tables.call("update", "Customers", [Condition(column="customer_id", value="C002")],
                             {"segment": "large"})
        await fb.tables.call("insert", "Customers", [{"customer_id": "C100", "name": "Hooli", "segment": "small"}])
        for _ in range(400):
            runs = fb.store.list_runs("customer-hub")
            if len(runs) >= 2 and all(r.status.finished for r in runs):
                break
            await asyncio.sleep(0.05)
        state = stand_ins.state
        assert state.crm_customers["C002"]["segment"] == "large" and state.crm_customers["C100"]["name"] == "Hooli"
        assert set(state.invoicing_customers) == {"C002", "C100"}
        assert len(state.chat) == 2
        runs = fb.store.list_runs("customer-hub")
        assert len(runs) == 2 and all(r.status.value == "succeeded" for r in runs)
    finally:
        await fb.aclose()


EXPECTED = {"vacation-request", "invoice-approval", "crm-to-invoices", "customer-hub"}
