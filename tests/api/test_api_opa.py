"""Delegation to OPA through real HTTP: the refunds policy delegates to an OPA server (the fake of
tests/fakes/opa.py, evaluating tests/fakes/rego/refunds.rego with regopy), and every way that
query can end gives the right decision, is counted in /metrics and shows in /readyz."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fakes.opa import FakeOpa
from gateway.engine.agents import Agent
from gateway.engine.delegation import delegated_answers
from gateway.engine.models import Decision, Packet
from gateway_server import OWNER, Server, audit, packet, policies_with, server_config, start_server

PATH = "warden/refunds/decision"
STATEMENT = f'  opa finance "{PATH}" reads params.amount, evidence.risk_score\n'
BUDGET = 0.3


def policy_dir(tmp: Path) -> Path:
    return policies_with(tmp, {"payments.policy": ("  risk L1\n\n  # Refunding", f"  risk L1\n{STATEMENT}\n  # Refunding")})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           opa: FakeOpa) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("opa")
    url = f"sqlite:///{tmp / 'warden.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("postgres_server").create_database()
    handle, stop = start_server(server_config(url, tmp, policy_dir=policy_dir(tmp), opa_url=opa.base_url,
                                              opa_timeout_seconds=BUDGET))
    try:
        yield handle
    finally:
        stop()


@pytest.fixture(autouse=True)
def no_faults(opa: FakeOpa) -> None:
    opa.clear_faults()


def refund(amount: int, risk_score: int = 10) -> dict[str, Any]:
    return packet("a2", "stripe.refund", {"charge": "ch_test", "amount": amount, "currency": "usd"},
                  evidence={"reconciled": True, "order_total": amount, "risk_score": risk_score,
                            "customer_notes": "asked twice, polite"})


def submit(server: Server, body: dict[str, Any]) -> dict[str, Any]:
    response = server.client("a2").post("/v1/actions", json=body, params={"wait": 5})
    assert response.status_code in (200, 202), response.text
    decision = dict(response.json())
    deadline = time.monotonic() + 15
    while decision["status"] == "executing" and time.monotonic() < deadline:
        decision = server.client("a2").get(f"/v1/actions/{decision['decision_id']}", params={"wait": 5}).json()
    return decision


def opa_entry(decision: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in decision["invariants"] if i.get("path") == PATH)


def opa_counts(server: Server) -> dict[str, float]:
    text = server.client().get("/metrics").text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "warden_opa_requests":
            for sample in family.samples:
                if sample.name == "warden_opa_requests_total":
                    counts[sample.labels["outcome"]] = sample.value
    return counts


def finance_reason(decision: dict[str, Any]) -> str:
    """Every message of the `opa finance` statement's reasons, one per line."""
    return "\n".join(r["message"] for r in decision["reasons"] if r["rule"] == "finance")


def sent(opa: FakeOpa, amount: int) -> list[Any]:
    """What OPA was sent for refunds of `amount` (each test its own amount: a query a previous
    test gave up on may still reach the fake late)."""
    return [i for i in opa.inputs(PATH) if i.get("params", {}).get("amount") == amount]


def test_an_allow_executes_and_records_opas_answer(server: Server, opa: FakeOpa) -> None:
    before = len(sent(opa, 1001))
    decision = submit(server, refund(1001))
    assert decision["status"] == "executed"
    entry = opa_entry(decision)
    assert (entry["id"], entry["verified"], entry["answer"]) == (f"opa:{PATH}", "PASS", {"allow": True})
    # OPA got the amount and the risk score: no charge id, no customer notes, no context
    assert sent(opa, 1001)[before:] == [
        {"tool": "stripe.refund", "params": {"amount": 1001}, "evidence": {"risk_score": 10}}]


def test_a_deny_shows_opas_reasons_and_no_approval_lifts_it(server: Server) -> None:
    # 600 dollars: Warden's own rules want an approver; OPA says no, and that wins
    decision = submit(server, refund(60000, risk_score=95))
    assert decision["status"] == "denied" and decision["approval"] is None
    assert "risk score is too high" in finance_reason(decision)
    assert opa_entry(decision)["verified"] == "FAIL"
    approve = server.client("approver").post(f"/v1/approvals/{decision['decision_id']}/approve", json={})
    assert approve.status_code == 409 and approve.json()["code"] == "not_pending"


def test_a_risk_escalation_waits_for_an_approver_and_opa_is_asked_again(server: Server, opa: FakeOpa) -> None:
    decision = submit(server, refund(41000))
    assert decision["status"] == "pending_approval" and decision["risk"] == "L2"
    asked = len(sent(opa, 41000))
    approved = server.client("approver").post(f"/v1/approvals/{decision['decision_id']}/approve", json={})
    assert approved.status_code in (200, 202), approved.text
    assert len(sent(opa, 41000)) == asked + 1
    final = server.client("a2").get(f"/v1/actions/{decision['decision_id']}", params={"wait": 5}).json()
    assert final["status"] in ("executing", "executed")


def test_opa_denying_at_the_last_approval_denies(server: Server, opa: FakeOpa) -> None:
    decision = submit(server, refund(40000))
    assert decision["status"] == "pending_approval"
    opa.fail(f"POST /v1/data/{PATH}", status=500, body={"code": "internal_error", "message": "boom"})
    approved = server.client("approver").post(f"/v1/approvals/{decision['decision_id']}/approve", json={})
    assert approved.status_code in (200, 202), approved.text
    assert approved.json()["status"] == "denied"
    assert "OPA answered with an error: 500 internal_error: boom" in finance_reason(approved.json())
    [note] = [e["data"] for e in audit(server, "reevaluation", decision["decision_id"])]
    assert note["opa"] == {PATH: {"answer": None, "failure": "status", "detail": "500 internal_error: boom"}}


@pytest.mark.parametrize("fault, words", [
    ({"kind": "hang_before", "seconds": 1.5}, "OPA did not answer in time"),
    ({"status": 500, "body": {"code": "internal_error", "message": "eval_conflict_error"}},
     "OPA answered with an error: 500 internal_error: eval_conflict_error"),
    ({"status": 200, "body": {"result": {"allowed": "sure"}}}, "OPA answered the wrong shape"),
    ({"status": 200, "body": b"<html>proxy error</html>"}, "OPA's answer could not be read"),
    ({"status": 200, "body": {"result": {"allow": True, "n": 2**60}}}, "outside ±(2**53 - 1)"),
    ({"status": 200, "body": {}}, "undefined"),
    ({"kind": "drop_before"}, "OPA was unreachable"),
])
def test_every_failure_denies_and_says_why(server: Server, opa: FakeOpa, fault: dict[str, Any], words: str) -> None:
    opa.fail(f"POST /v1/data/{PATH}", **fault)
    started = time.monotonic()
    decision = submit(server, refund(1000))
    assert time.monotonic() - started < 5
    assert decision["status"] == "denied"
    assert words in finance_reason(decision)


def test_a_dry_run_asks_opa_too(server: Server) -> None:
    response = server.client("a2").post("/v1/actions/evaluate", json=refund(300000))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "denied"
    assert "signed off by finance" in finance_reason(response.json())


def test_other_tools_never_ask_opa(server: Server, opa: FakeOpa) -> None:
    body = packet("a2", "crm.log_note", {"record_id": "rec_1", "body": "called the customer"})
    assert submit(server, body)["status"] == "executed"
    assert not [i for _path, i in opa.received if i.get("tool") == "crm.log_note"]


def test_queries_are_counted_by_outcome(server: Server, opa: FakeOpa) -> None:
    before = opa_counts(server)
    submit(server, refund(1000))
    submit(server, refund(1000, risk_score=99))
    opa.fail(f"POST /v1/data/{PATH}", kind="hang_before", seconds=1.5)
    submit(server, refund(1000))
    after = opa_counts(server)
    for outcome in ("allow", "deny", "timeout"):
        assert after.get(outcome, 0) == before.get(outcome, 0) + 1, outcome


def test_readyz_reports_opa(server: Server) -> None:
    body = server.client().get("/readyz").json()
    assert body["status"] == "ready" and body["checks"]["opa"] is True
    assert body["opa"] == {"configured": True, "reachable": True, "delegations": 1}


def test_opa_down_denies_and_makes_a_delegating_gateway_unready(db_url: str, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"
    handle, stop = start_server(server_config(db_url, tmp_path, policy_dir=policy_dir(tmp_path), opa_url=down,
                                              opa_timeout_seconds=BUDGET))
    try:
        decision = submit(handle, refund(1000))
        assert decision["status"] == "denied"
        assert "OPA was unreachable" in finance_reason(decision)
        assert opa_counts(handle).get("unreachable") == 1
        ready = handle.client().get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["opa"] is False
        assert ready.json()["opa"] == {"configured": True, "reachable": False, "delegations": 1}
    finally:
        stop()


def test_opa_down_without_a_delegating_policy_is_reported_and_ready(sqlite_url: str, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"
    handle, stop = start_server(server_config(sqlite_url, tmp_path, opa_url=down, opa_timeout_seconds=BUDGET))
    try:
        ready = handle.client().get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "opa" not in ready.json()["checks"]
        assert ready.json()["opa"] == {"configured": True, "reachable": False, "delegations": 0}
    finally:
        stop()


def _closed_port() -> int:
    """A port nothing listens on (bound and closed again at once)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_without_opa_url_a_delegation_denies(sqlite_url: str, tmp_path: Path) -> None:
    handle, stop = start_server(server_config(sqlite_url, tmp_path, policy_dir=policy_dir(tmp_path)))
    try:
        decision = submit(handle, refund(1000))
        assert decision["status"] == "denied"
        assert "no OPA server is configured" in finance_reason(decision)
        assert handle.client().get("/readyz").json()["opa"]["configured"] is False
    finally:
        stop()




@pytest.mark.parametrize("body", [refund(1000), refund(60000, risk_score=95), refund(300000)],
                         ids=["allowed", "denied", "denied_by_both"])
def test_the_decision_entry_holds_what_decides_the_packet_again(server: Server, opa: FakeOpa,
                                                                body: dict[str, Any]) -> None:
    decision = submit(server, dict(body, packet_id=f"replay-{time.monotonic_ns()}"))
    [entry] = audit(server, "decision", decision["decision_id"])
    recorded = Decision.model_validate(entry["data"]["decision"])
    packet = Packet.model_validate(entry["data"]["packet"])
    agent = Agent(name="a2", autonomy="A2", owner=OWNER, tools=("*",))
    engine = server.runtime.policies.current()[1]
    again = engine.decide(packet, agent, delegated=delegated_answers(recorded))
    again.decision_id = recorded.decision_id
    if again.status == "executed":
        again.status = "executing"  # as recorded: executed once the connector confirms
    assert again.model_dump(mode="json") == recorded.model_dump(mode="json")
    # `warden replay` does the same from the log alone: with OPA now failing every query, the
    # replay is still identical, so it used the recorded answers and asked OPA nothing
    opa.fail(f"POST /v1/data/{PATH}", status=500, times=None, body={"code": "internal_error", "message": "down"})
    replayed = server.client("auditor").get(f"/v1/actions/{decision['decision_id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["verdict"], replayed.json()["differences"]) == ("identical", [])
