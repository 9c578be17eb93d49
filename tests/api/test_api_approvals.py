"""Approvals through real HTTP: who may approve what, the two-person rule, expiry, rejection,
re-evaluation under the policies active when the last approval arrives, and long-polling.

Every approval is checked in the hashed audit log (GET /v1/audit/entries as the auditor): the
`approval` entry carries the approver, their role, the packet hash and the policy digest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.store import identities
from gateway_server import (Server, audit, edit_policy, eventually, module_server, packet, policies_with, refund,
                            server_config, start_server)

LARGE = 60_000  # cents: over the $500 line, so an approver is needed (L2)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway with the shipped policies per database for this module's tests that only add
    decisions of their own (each test works on the decisions it submitted); tests that need other
    policies or settings start their own."""
    yield from module_server(request, tmp_path_factory, "approvals")


# ---------------------------------------------------------------------------------- helpers


def executions(server: Server, decision_id: str) -> int:
    """How many times the action took effect (not replays) with this idempotency key."""
    return server.calls.executed(decision_id)


def active_digest(server: Server) -> str:
    text = server.client().get("/metrics").text
    for family in text_string_to_metric_families(text):
        if family.name == "warden_policy_info":
            return str(family.samples[0].labels["digest"])
    raise AssertionError("no warden_policy_info in /metrics")


def submit_pending(server: Server, agent: str = "a2", amount: int = LARGE) -> dict[str, Any]:
    response = server.client(agent).post("/v1/actions", json=refund(agent, amount))
    assert response.status_code == 202, response.text
    pending = response.json()
    assert pending["status"] == "pending_approval"
    return pending


def payout(agent: str) -> dict[str, Any]:
    """An L3 payout whose invariants hold: founder only."""
    return packet(agent, "stripe.payout", {"amount": 250_000, "currency": "usd", "creator_id": "cr_19"},
                  evidence={"reconciliation": {"status": "matched"}, "risk_score": 0.08,
                            "cash_runway_days": 94})


def outcome(server: Server, response: httpx.Response) -> dict[str, Any]:
    """The decision an approval answered with, followed to its end if the outbox worker was
    running it at that moment (202 `executing`)."""
    assert response.status_code in (200, 202), response.text
    decision = response.json()
    deadline = time.monotonic() + 15
    while decision["status"] == "executing" and time.monotonic() < deadline:
        decision = server.client("approver").get(
            f"/v1/actions/{decision['decision_id']}", params={"wait": 5}).json()
    return dict(decision)


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code


# ---------------------------------------------------------------------------------- binding


def test_approval_entry_binds_approver_role_packet_hash_and_policy_digest(shared_server: Server) -> None:
    pending = submit_pending(shared_server)
    decision_id = pending["decision_id"]
    assert pending["approval"]["required_role"] == "approver"  # from large_refund_approval
    approved = shared_server.client("approver").post(
        f"/v1/approvals/{decision_id}/approve", json={"comment": "checked the order"})
    assert outcome(shared_server, approved)["status"] == "executed"
    assert executions(shared_server, decision_id) == 1

    [decided] = audit(shared_server, "decision", decision_id)
    [entry] = audit(shared_server, "approval", decision_id)
    assert entry["actor"] == "approver@test.local"
    data = entry["data"]
    assert data["approver"] == "approver@test.local"
    assert data["role"] == "approver"
    assert data["decision_id"] == decision_id
    assert data["packet_hash"] == decided["data"]["packet_hash"]
    assert data["packet_hash"].startswith("sha256:")
    assert data["policy_digest"] == pending["policy_digest"] == active_digest(shared_server)
    assert data["required"] == {"role": "approver", "count": 1}
    assert data["comment"] == "checked the order"


def test_l3_needs_a_founder_who_may_also_approve_an_approvers_decision(shared_server: Server) -> None:
    response = shared_server.client("a2").post("/v1/actions", json=payout("a2"))
    assert response.status_code == 202, response.text
    l3 = response.json()
    assert (l3["risk"], l3["approval"]["required_role"]) == ("L3", "founder")

    problem(shared_server.client("approver").post(f"/v1/approvals/{l3['decision_id']}/approve"),
            403, "role_not_allowed")
    assert audit(shared_server, "approval", l3["decision_id"]) == []
    founder = shared_server.client("founder").post(f"/v1/approvals/{l3['decision_id']}/approve")
    assert outcome(shared_server, founder)["status"] == "executed"
    [entry] = audit(shared_server, "approval", l3["decision_id"])
    assert (entry["data"]["approver"], entry["data"]["role"]) == ("founder@test.local", "founder")

    l2 = submit_pending(shared_server)
    assert l2["approval"]["required_role"] == "approver"
    by_founder = shared_server.client("founder").post(f"/v1/approvals/{l2['decision_id']}/approve")
    assert outcome(shared_server, by_founder)["status"] == "executed"
    assert executions(shared_server, l3["decision_id"]) == 1
    assert executions(shared_server, l2["decision_id"]) == 1


def test_nobody_approves_or_rejects_an_action_of_their_own_agent(shared_server: Server) -> None:
    pending = submit_pending(shared_server)
    decision_id = pending["decision_id"]
    owner = shared_server.client("owner")  # an approver who owns every test agent
    problem(owner.post(f"/v1/approvals/{decision_id}/approve"), 403, "own_agent")
    problem(owner.post(f"/v1/approvals/{decision_id}/reject", json={"reason": "mine"}), 403, "own_agent")
    still = shared_server.client("approver").get(f"/v1/actions/{decision_id}").json()
    assert still["status"] == "pending_approval"
    assert still["approval"]["approvals"] == []
    assert audit(shared_server, "approval", decision_id) == []
    assert audit(shared_server, "rejection", decision_id) == []


def test_viewers_and_auditors_cannot_approve(shared_server: Server) -> None:
    pending = submit_pending(shared_server)
    for who in ("viewer", "auditor"):
        problem(shared_server.client(who).post(f"/v1/approvals/{pending['decision_id']}/approve"),
                403, "forbidden_role")
    problem(shared_server.client("a2").post(f"/v1/approvals/{pending['decision_id']}/approve"),
            403, "forbidden_role")


# ---------------------------------------------------------------------------------- two people, expiry

TWO_PERSON_RULE = (
    'require approval large_refund_approval from role "approver" when params.amount > 50000',
    'require approval large_refund_approval from role "approver" count 2 when params.amount > 50000',
)
SHORT_EXPIRY = ('require approval deletion_approval from role "approver"',
                'require approval deletion_approval from role "approver" expires in 1s')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tuned_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Shipped policies with two approvers for large refunds and a one-second expiry on deletions."""
    policies = policies_with(tmp_path_factory.mktemp("tuned-policies"),
                             {"payments.policy": TWO_PERSON_RULE, "crm.policy": SHORT_EXPIRY})
    yield from module_server(request, tmp_path_factory, "tuned", policy_dir=policies)


def test_two_person_rule_counts_each_person_once(tuned_server: Server) -> None:
    server = tuned_server
    pending = submit_pending(server)
    decision_id = pending["decision_id"]
    assert (pending["approval"]["required_role"], pending["approval"]["count"]) == ("approver", 2)

    first = server.client("approver").post(f"/v1/approvals/{decision_id}/approve")
    assert first.status_code == 202, first.text
    assert first.json()["status"] == "pending_approval"
    assert [g["approver"] for g in first.json()["approval"]["approvals"]] == ["approver@test.local"]
    problem(server.client("approver").post(f"/v1/approvals/{decision_id}/approve"), 409, "already_approved")
    assert server.client("a2").get(f"/v1/actions/{decision_id}").json()["status"] == "pending_approval"
    assert executions(server, decision_id) == 0

    second = server.client("approver2").post(f"/v1/approvals/{decision_id}/approve")
    assert outcome(server, second)["status"] == "executed"
    assert executions(server, decision_id) == 1
    entries = audit(server, "approval", decision_id)
    assert [e["data"]["approver"] for e in entries] == ["approver@test.local", "approver2@test.local"]
    assert [e["data"]["approvals"] for e in entries] == [1, 2]
    [decided] = audit(server, "decision", decision_id)
    assert {e["data"]["packet_hash"] for e in entries} == {decided["data"]["packet_hash"]}


def test_two_person_rule_with_both_arriving_at_once_executes_once(tuned_server: Server) -> None:
    decision_id = submit_pending(tuned_server)["decision_id"]
    start = threading.Barrier(2)
    answers: dict[str, httpx.Response] = {}

    def approve(who: str) -> None:
        with httpx.Client(base_url=tuned_server.base_url, timeout=30,
                          headers={"Authorization": f"Bearer {tuned_server.tokens[who]}"}) as client:
            start.wait(timeout=10)
            answers[who] = client.post(f"/v1/approvals/{decision_id}/approve")

    threads = [threading.Thread(target=approve, args=(who,)) for who in ("approver", "approver2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(a.status_code for a in answers.values()) in ([200, 202], [202, 202]), \
        [a.text for a in answers.values()]
    assert outcome(tuned_server, max(answers.values(), key=lambda a: len(a.json()["approval"]["approvals"])))[
        "status"] == "executed"
    assert executions(tuned_server, decision_id) == 1
    entries = audit(tuned_server, "approval", decision_id)
    assert sorted(e["data"]["approver"] for e in entries) == ["approver2@test.local", "approver@test.local"]
    assert sorted(e["data"]["approvals"] for e in entries) == [1, 2]


def submit_deletion(server: Server) -> str:
    sent = packet("a2", "crm.delete_contact", {"contact_ids": ["c_1", "c_2"]})
    response = server.client("a2").post("/v1/actions", json=sent)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending_approval"
    return str(response.json()["decision_id"])


def test_expiry_denies_after_the_deadline(tuned_server: Server) -> None:
    server = tuned_server
    decision_id = submit_deletion(server)
    waited = server.client("a2").get(f"/v1/actions/{decision_id}", params={"wait": 10})
    assert waited.status_code == 200
    expired = waited.json()
    assert expired["status"] == "expired"
    assert any(r["rule"] == "approval_expired" for r in expired["reasons"])
    [entry] = audit(server, "expiry", decision_id)
    assert (entry["actor"], entry["data"]["decision_id"], entry["data"]["approvals"]) == ("warden", decision_id, 0)
    problem(server.client("approver").post(f"/v1/approvals/{decision_id}/approve"), 409, "approval_expired")
    assert audit(server, "approval", decision_id) == []
    assert server.client("approver").get(f"/v1/actions/{decision_id}").json()["status"] == "expired"
    assert executions(server, decision_id) == 0
    assert decision_id not in [d["decision_id"] for d in server.client("approver").get("/v1/approvals").json()]


def test_rejection_is_final_and_executes_nothing(shared_server: Server) -> None:
    pending = submit_pending(shared_server)
    decision_id = pending["decision_id"]
    rejected = shared_server.client("approver").post(
        f"/v1/approvals/{decision_id}/reject", json={"reason": "looks like fraud"})
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["execution"] is None
    [entry] = audit(shared_server, "rejection", decision_id)
    assert entry["actor"] == "approver@test.local"
    assert entry["data"]["reason"] == "looks like fraud"
    assert entry["data"]["policy_digest"] == pending["policy_digest"]
    problem(shared_server.client("approver2").post(f"/v1/approvals/{decision_id}/approve"), 409, "not_pending")
    assert shared_server.client("a2").get(f"/v1/actions/{decision_id}").json()["status"] == "rejected"
    assert audit(shared_server, "approval", decision_id) == []
    assert executions(shared_server, decision_id) == 0


# ---------------------------------------------------------------------------------- re-evaluation


def test_last_approval_is_decided_again_under_the_policies_active_now(db_url: str, tmp_path: Path) -> None:
    policies = policies_with(tmp_path)
    server, stop = start_server(server_config(db_url, tmp_path, policy_dir=policies,
                                              policy_reload=True, policy_poll_seconds=0.1))
    try:
        stricter, frozen = submit_pending(server), submit_pending(server)
        first = stricter["policy_digest"]
        assert frozen["policy_digest"] == active_digest(server) == first

        # (1) Large refunds now need two people: one approval no longer settles it.
        edit_policy(policies / "payments.policy", *TWO_PERSON_RULE)
        second = eventually(lambda: (d := active_digest(server)) != first and d, "the two-person rule")
        one = server.client("approver").post(f"/v1/approvals/{stricter['decision_id']}/approve")
        assert one.status_code == 202, one.text
        assert (one.json()["status"], one.json()["approval"]["count"]) == ("pending_approval", 2)
        [still] = audit(server, "reevaluation", stricter["decision_id"])
        assert (still["data"]["reevaluated_under"], still["data"]["outcome"]) == (second, "still_pending")
        two = server.client("approver2").post(f"/v1/approvals/{stricter['decision_id']}/approve")
        assert outcome(server, two)["status"] == "executed"
        assert executions(server, stricter["decision_id"]) == 1

        # (2) A deny rule now matches: the approval cannot lift it.
        edit_policy(policies / "payments.policy",
                    '  deny refund_hard_cap when',
                    '  deny refund_freeze when params.amount > 50000\n'
                    '      because "large refunds are frozen while the books are audited"\n\n'
                    '  deny refund_hard_cap when')
        third = eventually(lambda: (d := active_digest(server)) != second and d, "the refund freeze")
        assert [e["data"]["digest"] for e in audit(server, "policy_activated")][-3:] == [first, second, third]

        decision_id = frozen["decision_id"]
        approved = server.client("founder").post(f"/v1/approvals/{decision_id}/approve")
        assert approved.status_code == 200, approved.text
        decided = approved.json()
        assert decided["status"] == "denied"
        assert any(r["rule"] == "refund_freeze" for r in decided["reasons"])
        assert decided["execution"] is None
        assert executions(server, decision_id) == 0
        [approval] = audit(server, "approval", decision_id)
        assert approval["data"]["policy_digest"] == first  # bound to the digest it was decided under
        [again] = audit(server, "reevaluation", decision_id)
        assert (again["data"]["reevaluated_under"], again["data"]["outcome"]) == (third, "denied")
        assert server.client("a2").get(f"/v1/actions/{decision_id}").json()["status"] == "denied"
    finally:
        stop()


def test_revoked_agent_is_denied_when_the_approval_arrives(shared_server: Server) -> None:
    pending = submit_pending(shared_server, agent="a3")
    decision_id = pending["decision_id"]
    runtime = shared_server.runtime
    runtime.writer.run(lambda conn: identities.revoke_agent(
        conn, runtime.ledger, "a3", time.time(), "founder@test.local"))
    approved = shared_server.client("approver").post(f"/v1/approvals/{decision_id}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "denied"
    assert any(r["rule"] == "agent_revoked" for r in approved.json()["reasons"])
    assert executions(shared_server, decision_id) == 0
    assert shared_server.client("approver").get(f"/v1/actions/{decision_id}").json()["status"] == "denied"


# ---------------------------------------------------------------------------------- long-poll


def test_long_poll_returns_when_an_approver_decides(shared_server: Server) -> None:
    pending = submit_pending(shared_server)
    decision_id = pending["decision_id"]
    answer: dict[str, Any] = {}

    def wait_for_it() -> None:
        started = time.monotonic()
        response = shared_server.client("a2").get(f"/v1/actions/{decision_id}", params={"wait": 10})
        answer.update(response=response, seconds=time.monotonic() - started)

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    # approve only once the request is parked on the decision, so the wake-up is what is tested
    eventually(lambda: decision_id in shared_server.runtime.changes._waiters, "the long-poll to park")
    approved = shared_server.client("approver").post(f"/v1/approvals/{decision_id}/approve")
    assert approved.status_code in (200, 202), approved.text
    waiter.join(timeout=15)
    assert not waiter.is_alive()
    assert answer["response"].status_code == 200
    assert answer["response"].json()["status"] in {"executing", "executed"}
    assert answer["seconds"] < 10  # woke up before the wait ran out
