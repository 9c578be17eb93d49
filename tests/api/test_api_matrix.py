"""The autonomy x risk matrix end to end over HTTP, every decision status, and the audit entries
that record them (DESIGN.md: "The decision", "Risk tiers and autonomy levels")."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from gateway.engine.models import Packet, packet_hash
from gateway_server import Server, audit_log, note, packet, policies_with, refund, server_config, start_server

MATCHED = {"reconciliation": {"status": "matched"}, "risk_score": 0.1, "cash_runway_days": 90}


def payout(agent: str) -> dict[str, Any]:
    """An L3 payout whose invariants hold."""
    return packet(agent, "stripe.payout", {"amount": 100000, "currency": "usd", "destination": "ba_test"},
                  evidence=dict(MATCHED))


def transfer(agent: str) -> dict[str, Any]:
    """An L2 supplier payment whose invariants hold."""
    return packet(agent, "stripe.transfer", {"destination": "acct_supplier", "amount": 40000, "currency": "usd"},
                  evidence=dict(MATCHED))


def deletion(agent: str) -> dict[str, Any]:
    return packet(agent, "crm.delete_contact", {"contact_ids": ["c_1", "c_2"]})


#: tier → packet builder, and per autonomy level: (HTTP status, decision status, required role)
TIERS = {"L0": lambda a: note(a), "L1": lambda a: refund(a, 2500), "L2": lambda a: refund(a, 60000),
         "L3": payout}
EXECUTE = (200, "executed", None)
MATRIX: dict[str, dict[str, tuple[int, str, str | None]]] = {
    "a0": {tier: (200, "drafted", None) for tier in TIERS},
    "a1": {"L0": EXECUTE, "L1": (202, "pending_approval", "approver"),
           "L2": (202, "pending_approval", "approver"), "L3": (202, "pending_approval", "founder")},
    **{agent: {"L0": EXECUTE, "L1": EXECUTE, "L2": (202, "pending_approval", "approver"),
               "L3": (202, "pending_approval", "founder")} for agent in ("a2", "a3", "a4")},
}


def submit(client: httpx.Client, sent: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST the packet; (HTTP status, decision).

    The request path runs an allowed action itself, but the background outbox worker can claim
    the freshly recorded execution first; the answer is then 202 `executing` and the outcome is
    waited for here, as an agent would (see test_an_executable_action_is_answered_with_its_outcome).
    """
    response = client.post("/v1/actions", json=sent)
    assert response.headers["content-type"].startswith("application/json"), response.text
    decision = response.json()
    if decision["status"] == "executing":
        assert response.status_code == 202
        waited = client.get(f"/v1/actions/{decision['decision_id']}", params={"wait": 20})
        assert waited.status_code == 200, waited.text
        return 200, waited.json()
    return response.status_code, decision


def settled(client: httpx.Client, response: httpx.Response) -> dict[str, Any]:
    """The decision an approval answered with, its execution waited for when the outbox worker
    took it (202 executing; see `submit`)."""
    assert response.status_code in (200, 202), response.text
    decision = response.json()
    if decision["status"] == "executing":
        assert response.status_code == 202
        waited = client.get(f"/v1/actions/{decision['decision_id']}", params={"wait": 20})
        return waited.json()
    assert response.status_code == 200
    return decision


def assert_execution_shape(decision: dict[str, Any]) -> None:
    if decision["status"] == "executed":
        assert decision["execution"]["state"] == "succeeded"
        assert decision["execution"]["external_id"]
        assert decision["execution"]["idempotency_key"] == decision["decision_id"]
    elif decision["status"] == "failed":
        assert decision["execution"]["state"] == "failed"
        assert decision["execution"]["error"]["code"]
    else:
        assert decision["execution"] is None, decision


def test_matrix_every_status_and_its_audit_entries(warden_server: Server) -> None:
    sent: dict[str, dict[str, Any]] = {}  # decision_id → packet
    final: dict[str, dict[str, Any]] = {}  # decision_id → decision as it ends

    def record(packet_sent: dict[str, Any], decision: dict[str, Any]) -> None:
        assert decision["decision_id"] and decision["audit"] is not None
        sent[decision["decision_id"]] = packet_sent
        final[decision["decision_id"]] = decision

    # -- the matrix: every autonomy level x every risk tier
    pending: dict[tuple[str, str], dict[str, Any]] = {}
    for agent, row in MATRIX.items():
        for tier, (code, status, role) in row.items():
            packet_sent = TIERS[tier](agent)
            got_code, decision = submit(warden_server.client(agent), packet_sent)
            where = f"{agent} x {tier}"
            assert (got_code, decision["status"]) == (code, status), f"{where}: {decision}"
            assert decision["risk"] == tier, where
            assert decision["autonomy"] == f"A{agent[1]}", where
            assert decision["packet_id"] == packet_sent["packet_id"]
            assert_execution_shape(decision)
            if role is None:
                assert decision["approval"] is None, where
            else:
                assert decision["approval"]["required_role"] == role, where
                assert decision["approval"]["count"] == 1 and decision["approval"]["approvals"] == []
                pending[(agent, tier)] = decision
            record(packet_sent, decision)

    # an L2 transfer with clean evidence waits for an approver too
    packet_sent = transfer("a3")
    code, decision = submit(warden_server.client("a3"), packet_sent)
    assert (code, decision["status"], decision["risk"]) == (202, "pending_approval", "L2"), decision
    assert decision["approval"]["required_role"] == "approver"
    record(packet_sent, decision)

    # the queue holds exactly the pending ones
    queue = warden_server.client("approver").get("/v1/approvals", params={"status": "pending"})
    assert queue.status_code == 200
    assert {d["decision_id"] for d in queue.json()} == {
        d for d, dec in final.items() if dec["status"] == "pending_approval"}

    # -- founder approves an L3 payout: executed with a payout id
    l3 = pending[("a2", "L3")]
    approved = settled(warden_server.client("founder"), warden_server.client("founder").post(
        f"/v1/approvals/{l3['decision_id']}/approve", json={"comment": "creator payout checked"}))
    assert approved["status"] == "executed", approved
    assert approved["execution"]["external_id"].startswith("po_")
    assert [g["approver"] for g in approved["approval"]["approvals"]] == ["founder@test.local"]
    final[l3["decision_id"]] = approved

    # -- an approver rejects an L2 refund: rejected, never executed
    l2 = pending[("a4", "L2")]
    rejected = warden_server.client("approver").post(f"/v1/approvals/{l2['decision_id']}/reject",
                                                     json={"reason": "duplicate request"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["execution"] is None
    final[l2["decision_id"]] = rejected.json()

    # -- denied: an unreconciled refund
    packet_sent = refund("a2", 2500)
    packet_sent["evidence"]["reconciled"] = False
    code, decision = submit(warden_server.client("a2"), packet_sent)
    assert (code, decision["status"]) == (200, "denied"), decision
    assert decision["execution"] is None and decision["approval"] is None
    record(packet_sent, decision)

    # -- failed: the sandbox declines the charge
    packet_sent = packet("a2", "stripe.refund", {"charge": "ch_sandbox_declined", "amount": 500, "currency": "usd"},
                         evidence={"reconciled": True})
    code, decision = submit(warden_server.client("a2"), packet_sent)
    assert (code, decision["status"]) == (200, "failed"), decision
    assert decision["execution"]["error"]["code"] == "card_declined"
    assert "external_id" not in decision["execution"]
    record(packet_sent, decision)
    failed_id = decision["decision_id"]
    incidents = warden_server.client("approver").get("/v1/incidents", params={"kind": "connector_failure"})
    assert incidents.status_code == 200
    assert [(i["kind"], i["agent"], i["decision_id"]) for i in incidents.json()] == [
        ("connector_failure", "a2", failed_id)]

    # -- allowed: the dry run of an executable action, recorded nowhere
    before = len(audit_log(warden_server))
    dry = warden_server.client("a2").post("/v1/actions/evaluate", json=refund("a2", 2500))
    assert dry.status_code == 200, dry.text
    assert dry.json()["status"] == "allowed"
    assert dry.json()["decision_id"] is None and dry.json()["execution"] is None
    dry = warden_server.client("a1").post("/v1/actions/evaluate", json=refund("a1", 2500))
    assert dry.json()["status"] == "pending_approval"

    # every status but `expired` (tests below) was reached over HTTP
    statuses = {d["status"] for d in final.values()}
    assert statuses == {"executed", "pending_approval", "denied", "drafted", "rejected", "failed"}

    # what the agents read back is what they were answered (and finally)
    for decision_id, decision in final.items():
        agent = sent[decision_id]["agent"]
        read = warden_server.client(agent).get(f"/v1/actions/{decision_id}")
        assert read.status_code == 200
        assert read.json() == decision
        assert_execution_shape(decision)

    # -- the sandbox executed exactly the executed decisions, once each
    calls = warden_server.calls.executions_by_key()
    executed = {d for d, dec in final.items() if dec["status"] == "executed"}
    assert calls == {d: 1 for d in executed}

    # -- the audit log: one decision entry per decision, one execution entry per execution
    log = audit_log(warden_server)
    assert len(log) == before  # the dry runs added nothing
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for item in log:
        by_kind.setdefault(item["entry"]["kind"], []).append(item)
    decision_entries = {e["entry"]["subject"]: e for e in by_kind["decision"]}
    assert set(decision_entries) == set(final)
    activated = {e["entry"]["data"]["digest"] for e in by_kind["policy_activated"]}
    for decision_id, decision in final.items():
        item = decision_entries[decision_id]
        assert item["seq"] == decision["audit"]["seq"]
        assert item["leaf_hash"] == decision["audit"]["leaf_hash"]
        assert item["entry"]["actor"] == sent[decision_id]["agent"]
        data = item["entry"]["data"]
        assert data["packet_hash"] == packet_hash(Packet.model_validate(sent[decision_id]))
        assert data["decision"]["policy_digest"] == decision["policy_digest"]
        assert decision["policy_digest"] in activated
    executions = {e["entry"]["subject"]: e["entry"]["data"] for e in by_kind["execution"]}
    assert set(executions) == executed | {failed_id}
    for decision_id in executed:
        assert executions[decision_id]["outcome"] == "succeeded"
        assert executions[decision_id]["external_id"] == final[decision_id]["execution"]["external_id"]
    assert executions[failed_id]["outcome"] == "failed"
    assert executions[failed_id]["error"]["code"] == "card_declined"
    assert [e["entry"]["subject"] for e in by_kind["approval"]] == [l3["decision_id"]]
    assert [e["entry"]["subject"] for e in by_kind["rejection"]] == [l2["decision_id"]]
    # the only incident is the connector failure (no proof mismatch, no repeated denials);
    # tamper alarms: test_a_float_in_a_packet_raises_no_tamper_alarm
    every = warden_server.client("auditor").get("/v1/incidents").json()
    assert [(i["kind"], i["decision_id"]) for i in every if i["kind"] != "tamper_alarm"] == [
        ("connector_failure", failed_id)]


# ---------------------------------------------------------------- expiry


def seconds_left(decision: dict[str, Any]) -> float:
    return datetime.fromisoformat(decision["approval"]["expires_at"]).timestamp() - time.time()


def test_an_unanswered_approval_expires(db_url: str, tmp_path: Path) -> None:
    """An approval closes at the rule's own expiry, else at the configured default; the
    housekeeping loop then marks the decision expired and a long-polling agent sees it."""
    policy_dir = policies_with(tmp_path, {"crm.policy": (
        'require approval deletion_approval from role "approver"',
        'require approval deletion_approval from role "approver" expires in 1s')})
    server, stop = start_server(server_config(db_url, tmp_path, policy_dir=policy_dir,
                                              approval_ttl_default_seconds=1))
    try:
        agent = server.client("a2")
        # the rule's own expiry: 1 s
        code, by_rule = submit(agent, deletion("a2"))
        assert (code, by_rule["status"], by_rule["risk"]) == (202, "pending_approval", "L2"), by_rule
        assert seconds_left(by_rule) <= 1.0
        # no rule: the configured default, 1 s
        code, by_default = submit(agent, transfer("a2"))
        assert (code, by_default["status"]) == (202, "pending_approval"), by_default
        assert seconds_left(by_default) <= 1.0
        # a rule's own expiry wins over the default, longer or shorter (refunds: 4 h)
        code, by_long_rule = submit(agent, refund("a2", 60000))
        assert code == 202 and 3.9 * 3600 < seconds_left(by_long_rule) <= 4 * 3600

        for decision in (by_rule, by_default):
            waited = agent.get(f"/v1/actions/{decision['decision_id']}", params={"wait": 20})
            assert waited.status_code == 200, waited.text
            expired = waited.json()
            assert expired["status"] == "expired", expired
            assert expired["execution"] is None
            assert any(r["rule"] == "approval_expired" for r in expired["reasons"])
        queue = server.client("approver").get("/v1/approvals").json()
        assert [d["decision_id"] for d in queue] == [by_long_rule["decision_id"]]
        log = audit_log(server)
        assert sorted(e["entry"]["subject"] for e in log if e["entry"]["kind"] == "expiry") == sorted(
            [by_rule["decision_id"], by_default["decision_id"]])
        assert server.calls.total() == 0
    finally:
        stop()


def test_an_executable_action_is_answered_with_its_outcome(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        agent = server.client("a2")
        answers = [agent.post("/v1/actions", json=note("a2")) for _ in range(20)]
        assert [(r.status_code, r.json()["status"]) for r in answers] == [(200, "executed")] * 20
    finally:
        stop()


def test_a_float_in_a_packet_raises_no_tamper_alarm(sqlite_url: str, tmp_path: Path) -> None:
    server, stop = start_server(server_config(sqlite_url, tmp_path))
    try:
        code, decision = submit(server.client("a2"), transfer("a2"))  # risk_score 0.1
        assert code == 202, decision
        assert server.runtime.tamper.check(server.runtime.db, full=True) is None
        incidents = server.client("auditor").get("/v1/incidents").json()
        assert [i for i in incidents if i["kind"] == "tamper_alarm"] == []
    finally:
        stop()


# ---------------------------------------------------------------- proof mismatches


def test_a_false_claim_and_an_unverifiable_claim_each_open_an_incident_that_says_which(
    warden_server: Server,
) -> None:
    agent = warden_server.client("a2")
    claim = [{"id": "refund_reconciled", "status": "PASS", "value": True}]
    lied = agent.post("/v1/actions", json=packet("a2", "stripe.refund", {"charge": "ch_1", "amount": 2500, "currency": "usd"},
                                                 evidence={"reconciled": False}, claims=claim)).json()
    missing = agent.post("/v1/actions", json=packet("a2", "stripe.refund", {"charge": "ch_2", "amount": 2500, "currency": "usd"},
                                                    evidence={}, claims=claim)).json()
    assert (lied["status"], missing["status"]) == ("denied", "denied")
    [unverifiable] = [r["message"] for r in missing["reasons"] if r["effect"] == "proof_mismatch"]
    assert unverifiable.startswith("the agent claimed PASS, but Warden could not evaluate the invariant (")
    assert unverifiable.endswith("the claim was not accepted")
    incidents = warden_server.client("auditor").get("/v1/incidents", params={"kind": "proof_mismatch"}).json()
    summaries = {i["decision_id"]: i["summary"] for i in incidents}
    assert summaries[lied["decision_id"]] == "a2 claimed PASS for refund_reconciled, which Warden verified as FAIL"
    assert summaries[missing["decision_id"]] == (
        "a2 claimed PASS for refund_reconciled, which Warden could not evaluate (the claim was not accepted)")
