"""The main flows through real HTTP: execute, wait for approval, approve, deny, dry run, replay."""

from __future__ import annotations

from gateway_server import Server, note, refund


def test_l1_refund_executes_once_with_a_receipt(warden_server: Server) -> None:
    agent = warden_server.client("a2")
    sent = refund("a2", 2500)
    response = agent.post("/v1/actions", json=sent)
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["status"] == "executed"
    assert decision["risk"] == "L1"
    assert decision["execution"]["state"] == "succeeded"
    assert decision["execution"]["external_id"].startswith("re_")
    assert decision["execution"]["idempotency_key"] == decision["decision_id"]
    assert decision["audit"]["seq"] >= 0
    again = agent.post("/v1/actions", json=sent)
    assert again.status_code == 200
    assert again.json() == agent.get(f"/v1/actions/{decision['decision_id']}").json()
    assert again.json()["execution"]["external_id"] == decision["execution"]["external_id"]


def test_l2_refund_waits_for_an_approver_then_executes(warden_server: Server) -> None:
    response = warden_server.client("a2").post("/v1/actions", json=refund("a2", 60000))
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending_approval"
    assert pending["approval"]["required_role"] == "approver"
    queue = warden_server.client("approver").get("/v1/approvals", params={"status": "pending"}).json()
    assert [d["decision_id"] for d in queue] == [pending["decision_id"]]
    approved = warden_server.client("approver").post(
        f"/v1/approvals/{pending['decision_id']}/approve", json={"comment": "customer is right"})
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "executed"
    assert approved.json()["approval"]["approvals"][0]["approver"] == "approver@test.local"


def test_unreconciled_refund_is_denied_with_the_reason(warden_server: Server) -> None:
    sent = refund("a2", 2500)
    sent["evidence"]["reconciled"] = False
    decision = warden_server.client("a2").post("/v1/actions", json=sent).json()
    assert decision["status"] == "denied"
    assert decision["execution"] is None
    assert any(r["rule"] == "refund_reconciled" for r in decision["reasons"])


def test_dry_run_records_nothing(warden_server: Server) -> None:
    auditor = warden_server.client("auditor")
    before = auditor.get("/v1/audit/entries").json()["size"]
    response = warden_server.client("a2").post("/v1/actions/evaluate", json=note("a2"))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "allowed"
    assert auditor.get("/v1/audit/entries").json()["size"] == before
