"""The synchronous client against a real gateway: submit, evaluate, get, wait, act, and the
typed results and exceptions."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from gateway_server import Server

from warden_sdk import (
    Conflict,
    Decision,
    Denied,
    Expired,
    Failed,
    Forbidden,
    InvalidRequest,
    NotFound,
    Rejected,
    StillPending,
    Unauthorized,
    WardenClient,
)

REFUND = {"charge": "ch_sdk", "currency": "usd"}


def refund(amount: int) -> dict[str, Any]:
    return {**REFUND, "amount": amount}


def reconciled(amount: int) -> dict[str, Any]:
    return {"evidence": {"reconciled": True, "order_total": amount}, "claims": {"refund_reconciled": "PASS"}}


def approve(gateway: Server, decision_id: str) -> None:
    answer = gateway.client("approver").post(f"/v1/approvals/{decision_id}/approve", json={"comment": "ok"})
    assert answer.status_code in (200, 202), answer.text


def test_act_executes_an_allowed_action_and_returns_the_typed_decision(client: WardenClient, gateway: Server) -> None:
    decision = client.act("stripe.refund", refund(2500), **reconciled(2500), context={"task_id": "t-1"})
    assert isinstance(decision, Decision)
    assert (decision.status, decision.risk, decision.autonomy) == ("executed", "L1", "A2")
    assert decision.packet_id.startswith("sdk-") and len(decision.packet_id) == 36
    assert decision.execution is not None and decision.execution.state == "succeeded"
    assert decision.execution.summary is not None and decision.execution.summary["amount"] == 2500
    assert decision.audit is not None and decision.audit.seq > 0 and len(decision.audit.leaf_hash) == 64
    assert decision.invariants[0].id == "refund_reconciled" and decision.invariants[0].verified == "PASS"
    assert decision.decision_id is not None and gateway.calls.executed(decision.decision_id) == 1


def test_submit_returns_a_pending_decision_and_wait_follows_it_to_executed(client: WardenClient, gateway: Server) -> None:
    pending = client.submit("stripe.refund", refund(60000), **reconciled(60000))
    assert pending.status == "pending_approval" and not pending.final
    assert pending.approval is not None and pending.approval.required_role == "approver"
    assert any(r.rule == "large_refund" for r in pending.enforced_reasons)
    assert pending.decision_id is not None
    with pytest.raises(StillPending, match="still pending_approval") as waited:
        client.wait(pending.decision_id, timeout=0.3)
    assert waited.value.decision.decision_id == pending.decision_id
    approve(gateway, pending.decision_id)
    final = client.wait(pending.decision_id, timeout=30)
    assert final.status == "executed" and final.approval is not None
    assert [g.approver for g in final.approval.approvals] == ["approver@test.local"]
    assert client.get(pending.decision_id).status == "executed"


def test_act_waits_through_an_approval(client: WardenClient, gateway: Server) -> None:
    packet_id = "sdk-act-approved"
    found: list[Decision] = []
    acting = threading.Thread(target=lambda: found.append(
        client.act("stripe.refund", refund(70000), **reconciled(70000), packet_id=packet_id, timeout=30)))
    acting.start()
    pending = next(d for d in _queue(gateway) if d["packet_id"] == packet_id)
    approve(gateway, pending["decision_id"])
    acting.join(30)
    assert [d.status for d in found] == ["executed"]


def _queue(gateway: Server) -> list[dict[str, Any]]:
    from gateway_server import eventually

    def pending() -> list[dict[str, Any]]:
        return [d for d in gateway.client("approver").get("/v1/approvals", params={"status": "pending"}).json()
                if d["packet_id"] == "sdk-act-approved"]

    return list(eventually(pending, "the packet in the approval queue"))


def test_a_rejection_raises_rejected_with_the_reasons(client: WardenClient, gateway: Server) -> None:
    pending = client.submit("stripe.refund", refund(80000), **reconciled(80000))
    assert pending.decision_id is not None
    answer = gateway.client("approver").post(f"/v1/approvals/{pending.decision_id}/reject",
                                             json={"reason": "not this one"})
    assert answer.status_code == 200, answer.text
    final = client.wait(pending.decision_id, timeout=10)
    with pytest.raises(Rejected, match="^rejected") as raised:
        final.raise_for_status()
    assert raised.value.decision.status == "rejected"
    with pytest.raises(Rejected):
        client.act("stripe.refund", refund(80000), **reconciled(80000), packet_id=pending.packet_id)


def test_a_denial_raises_denied_carrying_the_reasons(client: WardenClient) -> None:
    claims = {"refund_reconciled": "PASS"}
    with pytest.raises(Denied, match="invariant does not hold") as raised:
        client.act("stripe.refund", refund(3000), evidence={"reconciled": False, "order_total": 3000}, claims=claims)
    effects = {r.effect for r in raised.value.reasons}
    assert {"invariant", "proof_mismatch"} <= effects
    assert raised.value.decision.status == "denied" and raised.value.decision.audit is not None


def test_an_expired_approval_raises_expired(client: WardenClient) -> None:
    with pytest.raises(Expired) as raised:
        client.act("crm.delete_contact", {"contact_ids": ["c_1"]}, timeout=20)
    assert any(r.rule == "approval_expired" for r in raised.value.reasons)


def test_a_failed_execution_raises_failed_with_the_connector_error(client: WardenClient) -> None:
    with pytest.raises(Failed, match="failed") as raised:
        client.act("crm.upsert_contact", {"email": "ana@example.com", "properties": {}}, timeout=20)
    assert raised.value.error.get("code") == "sandbox_rejected"


def test_evaluate_is_a_dry_run(client: WardenClient, gateway: Server) -> None:
    before = gateway.calls.total()
    dry = client.evaluate("stripe.refund", refund(2500), **reconciled(2500))
    assert (dry.status, dry.decision_id, dry.audit) == ("allowed", None, None)
    large = client.evaluate("stripe.refund", refund(60000), **reconciled(60000))
    assert large.status == "pending_approval" and large.risk == "L2"
    assert gateway.calls.total() == before


def test_the_same_packet_id_is_the_same_decision_and_another_body_a_conflict(client: WardenClient, gateway: Server) -> None:
    first = client.act("crm.log_note", {"record_id": "rec_1", "body": "called"}, packet_id="sdk-note-1")
    again = client.act("crm.log_note", {"record_id": "rec_1", "body": "called"}, packet_id="sdk-note-1")
    assert again.decision_id == first.decision_id and first.decision_id is not None
    assert gateway.calls.executed(first.decision_id) == 1
    with pytest.raises(Conflict) as raised:
        client.submit("crm.log_note", {"record_id": "rec_1", "body": "other"}, packet_id="sdk-note-1")
    assert (raised.value.status, raised.value.code) == (409, "packet_id_reused")


@pytest.mark.parametrize(("who", "agent", "tool", "params", "error", "code"), [
    ("narrow", "narrow", "stripe.refund", refund(100), Forbidden, "tool_not_allowed"),
    ("a2", "a3", "crm.log_note", {"record_id": "r", "body": "x"}, Forbidden, "agent_mismatch"),
    ("a2", "a2", "stripe.refund", {"charge": "ch_1"}, InvalidRequest, "invalid_params"),
    ("a2", "a2", "stripe.nothing", {}, InvalidRequest, "unknown_tool"),
    (None, "a2", "crm.log_note", {"record_id": "r", "body": "x"}, Unauthorized, "invalid_token"),
])
def test_problems_become_typed_errors_with_their_code(gateway: Server, who: str | None, agent: str, tool: str,
                                                      params: dict[str, Any], error: type[Exception], code: str) -> None:
    token = gateway.tokens[who] if who else "wdn_not_a_token"
    with WardenClient(gateway.base_url, token, agent) as sdk, pytest.raises(error) as raised:
        sdk.submit(tool, params)
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert raised.value.detail  # type: ignore[attr-defined]


def test_an_unknown_decision_is_not_found(client: WardenClient) -> None:
    with pytest.raises(NotFound) as raised:
        client.get("dec_00000000000000000000000000")
    assert raised.value.code == "decision_not_found"


def test_a_packet_id_outside_the_gateway_alphabet_is_refused_before_sending(client: WardenClient) -> None:
    with pytest.raises(ValueError, match="packet_id"):
        client.submit("crm.log_note", {"record_id": "r", "body": "x"}, packet_id="no spaces")
