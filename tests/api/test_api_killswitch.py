"""The kill switch through real HTTP: only founders pull it; while engaged new packets are denied,
approvals are recorded but nothing executes (not even executions queued before it was engaged);
releasing it settles the fully approved decisions. Every change is in the audit log and in
/metrics (`warden_kill_switch_engaged`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_server import Server, audit, module_server, refund, server_config, start_server

SMALL, LARGE = 2_500, 60_000  # cents: an L1 refund, an L2 one (an approver)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One gateway per database for the tests below; each leaves the switch released."""
    yield from module_server(request, tmp_path_factory, "killswitch")


@pytest.fixture
def gateway(shared_server: Server) -> Iterator[Server]:
    assert state(shared_server)["engaged"] is False
    try:
        yield shared_server
    finally:
        switch(shared_server, engaged=False, reason="test over")


# ---------------------------------------------------------------------------------- helpers


def switch(server: Server, *, engaged: bool, reason: str, who: str = "founder") -> httpx.Response:
    return server.client(who).post("/v1/kill-switch", json={"engaged": engaged, "reason": reason})


def state(server: Server) -> dict[str, Any]:
    response = server.client("viewer").get("/v1/kill-switch")
    assert response.status_code == 200, response.text
    return dict(response.json())


def metric(server: Server, name: str, **labels: str) -> float | None:
    text = server.client().get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def executions(server: Server, decision_id: str) -> int:
    return server.calls.executed(decision_id)


def follow(server: Server, decision_id: str, *, until: str, timeout: float = 15) -> dict[str, Any]:
    """Long-poll the decision until it reaches `until` (or the time runs out)."""
    client = server.client("approver")
    decision = client.get(f"/v1/actions/{decision_id}").json()
    for _ in range(int(timeout)):
        if decision["status"] == until:
            break
        decision = client.get(f"/v1/actions/{decision_id}", params={"wait": 1}).json()
    return dict(decision)


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


# ---------------------------------------------------------------------------------- tests


def test_only_a_founder_pulls_the_switch(gateway: Server) -> None:
    before = len(audit(gateway, "kill_switch"))
    for who in ("approver", "owner", "auditor", "viewer"):
        problem(switch(gateway, engaged=True, reason="not mine to pull", who=who), 403, "forbidden_role")
    problem(gateway.client("a4").post("/v1/kill-switch", json={"engaged": True, "reason": "agents neither"}),
            403, "forbidden_role")
    problem(gateway.client("founder").post("/v1/kill-switch", json={"engaged": True}), 422, "invalid_request")
    assert state(gateway)["engaged"] is False
    assert len(audit(gateway, "kill_switch")) == before
    assert metric(gateway, "warden_kill_switch_engaged") == 0


def test_engaged_switch_denies_new_packets_until_released(gateway: Server) -> None:
    before = len(audit(gateway, "kill_switch"))
    engaged = switch(gateway, engaged=True, reason="refund storm under investigation")
    assert engaged.status_code == 200, engaged.text
    assert engaged.json()["engaged"] is True
    seen = state(gateway)
    assert (seen["engaged"], seen["reason"], seen["by"]) == (True, "refund storm under investigation", "founder@test.local")
    assert metric(gateway, "warden_kill_switch_engaged") == 1
    [entry] = audit(gateway, "kill_switch")[before:]
    assert entry["actor"] == "founder@test.local"
    assert entry["data"] == {"engaged": True, "reason": "refund storm under investigation"}

    response = gateway.client("a2").post("/v1/actions", json=refund("a2", SMALL))
    assert response.status_code == 200, response.text
    denied = response.json()
    assert denied["status"] == "denied"
    assert [r["rule"] for r in denied["reasons"]] == ["kill_switch"]
    assert denied["execution"] is None
    assert executions(gateway, denied["decision_id"]) == 0

    released = switch(gateway, engaged=False, reason="all clear")
    assert released.status_code == 200, released.text
    assert state(gateway)["engaged"] is False
    assert metric(gateway, "warden_kill_switch_engaged") == 0
    assert [e["data"] for e in audit(gateway, "kill_switch")[before:]] == [
        {"engaged": True, "reason": "refund storm under investigation"},
        {"engaged": False, "reason": "all clear"},
    ]
    assert gateway.client("a2").get(f"/v1/actions/{denied['decision_id']}").json()["status"] == "denied"
    after = gateway.client("a2").post("/v1/actions", json=refund("a2", SMALL))
    assert after.json()["status"] in {"executing", "executed"}
    assert follow(gateway, after.json()["decision_id"], until="executed")["status"] == "executed"


def test_approval_while_engaged_is_recorded_and_executes_on_release(gateway: Server) -> None:
    submitted = gateway.client("a2").post("/v1/actions", json=refund("a2", LARGE))
    assert submitted.status_code == 202, submitted.text
    decision_id = submitted.json()["decision_id"]
    assert switch(gateway, engaged=True, reason="audit in progress").status_code == 200

    approved = gateway.client("approver").post(f"/v1/approvals/{decision_id}/approve", json={"comment": "fine"})
    assert approved.status_code == 202, approved.text
    assert approved.json()["status"] == "pending_approval"
    assert [g["approver"] for g in approved.json()["approval"]["approvals"]] == ["approver@test.local"]
    [entry] = audit(gateway, "approval", decision_id)
    assert entry["data"]["approver"] == "approver@test.local"
    assert gateway.client("a2").get(f"/v1/actions/{decision_id}").json()["status"] == "pending_approval"
    assert executions(gateway, decision_id) == 0

    assert switch(gateway, engaged=False, reason="audit done").status_code == 200
    done = follow(gateway, decision_id, until="executed")
    assert done["status"] == "executed"
    assert executions(gateway, decision_id) == 1
    assert audit(gateway, "kill_switch")[-1]["data"] == {"engaged": False, "reason": "audit done"}
    [again] = audit(gateway, "reevaluation", decision_id)
    assert again["data"]["outcome"] == "executing"


def test_execution_queued_before_engaging_waits_for_release(db_url: str, tmp_path: Path) -> None:
    # The first call fails with Retry-After: 1.5 s, so the execution sits in the outbox meanwhile.
    server, stop = start_server(server_config(db_url, tmp_path, sandbox_faults="stripe.refund=transient*1@1.5"))
    try:
        if server.fakes is not None:  # live: Stripe itself answers 503 once, with Retry-After
            server.fakes.stripe.fail("POST /v1/refunds", status=503, headers={"Retry-After": "1.5"}, body={
                "error": {"type": "api_error", "message": "Stripe is temporarily unavailable."}})
        submitted = server.client("a2").post("/v1/actions", json=refund("a2", SMALL))
        assert submitted.status_code == 202, submitted.text
        queued = submitted.json()
        assert (queued["status"], queued["execution"]["state"]) == ("executing", "retrying")
        decision_id = queued["decision_id"]
        assert switch(server, engaged=True, reason="stop everything").status_code == 200

        # Wait past the retry time: the execution was due, and still nothing ran.
        due = datetime.fromisoformat(queued["execution"]["next_attempt_at"]).timestamp()
        held = server.client("a2").get(f"/v1/actions/{decision_id}",
                                       params={"wait": max(0.0, due + 1.2 - time.time())}).json()
        assert time.time() > due + 1  # the worker polls every 0.2 s
        assert held["status"] == "executing"
        assert executions(server, decision_id) == 0
        assert metric(server, "warden_outbox_pending") == 1

        assert switch(server, engaged=False, reason="resume").status_code == 200
        done = follow(server, decision_id, until="executed")
        assert done["status"] == "executed"
        assert executions(server, decision_id) == 1
    finally:
        stop()


def test_engaged_must_be_a_json_boolean(gateway: Server) -> None:
    before = len(audit(gateway, "kill_switch"))
    founder = gateway.client("founder")
    for value in ("yes", "true", 0, 1, None, [], {}):
        response = founder.post("/v1/kill-switch", json={"engaged": value, "reason": "not a boolean"})
        problem(response, 422, "invalid_request")
        assert response.json()["errors"][0]["loc"] == ["engaged"], (value, response.text)
    assert state(gateway)["engaged"] is False
    assert len(audit(gateway, "kill_switch")) == before


def test_releasing_needs_no_reason_but_engaging_says_it_does(gateway: Server) -> None:
    founder = gateway.client("founder")
    for body in ({"engaged": True}, {"engaged": True, "reason": None}):
        response = founder.post("/v1/kill-switch", json=body)
        problem(response, 422, "invalid_request")
        assert "a reason is required to engage the kill switch" in response.json()["detail"]
        assert [e["loc"] for e in response.json()["errors"]] == [["reason"]]
    assert state(gateway)["engaged"] is False

    assert switch(gateway, engaged=True, reason="card testing attack").status_code == 200
    released = founder.post("/v1/kill-switch", json={"engaged": False})
    assert released.status_code == 200, released.text
    assert (released.json()["engaged"], released.json()["reason"]) == (False, None)
    assert state(gateway)["engaged"] is False
    assert audit(gateway, "kill_switch")[-1]["data"] == {"engaged": False, "reason": None}


def test_a_blank_reason_is_refused(gateway: Server) -> None:
    for body in ({"engaged": True, "reason": "   "}, {"engaged": False, "reason": "\n\t"}):
        response = gateway.client("founder").post("/v1/kill-switch", json=body)
        problem(response, 422, "invalid_request")
        assert "a reason must say something" in response.json()["detail"]
    assert state(gateway)["engaged"] is False
