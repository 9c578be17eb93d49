"""Bounds a hostile client runs into: dry runs that would have written refusals, decision ids
longer than any decision's, oversized small bodies, 405s without `Allow`. Each test is named
after what it reproduces; none records or executes anything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.pipeline.approvals import Person
from gateway.pipeline.errors import DecisionNotFound
from gateway_server import Server, audit_log, footprint, module_server, note, refund

LONG_ID = "dec_" + "9" * 4_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory, "bounds")


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def test_dry_run_refusals_write_nothing_to_the_log(server: Server) -> None:
    """An agent naming another agent, or a tool outside its allowlist: the dry run answers as a
    real run would, and records no `refusal`."""
    before = footprint(server)
    refusals = [e for e in audit_log(server) if e["entry"]["kind"] == "refusal"]
    other = note("a3")
    found = problem(server.client("a2").post("/v1/actions/evaluate", json=other), 403, "agent_mismatch")
    assert "'a3'" in found["detail"]
    problem(server.client("narrow").post("/v1/actions/evaluate", json=refund("narrow", 2500)), 403, "tool_not_allowed")
    assert footprint(server) == before
    assert [e for e in audit_log(server) if e["entry"]["kind"] == "refusal"] == refusals


def test_decision_ids_longer_than_64_are_refused_on_approve_and_reject(server: Server) -> None:
    approver = server.client("approver")
    before = footprint(server)
    for action in ("approve", "reject"):
        for decision_id in ("dec_" + "x" * 61, LONG_ID):
            found = problem(approver.post(f"/v1/approvals/{decision_id}/{action}"), 422, "invalid_request")
            assert decision_id not in found["detail"] and decision_id not in json.dumps(found)
        problem(approver.post(f"/v1/approvals/{'dec_' + 'x' * 60}/{action}"), 404, "decision_not_found")
    assert footprint(server) == before


def test_long_ids_are_cut_in_messages(server: Server) -> None:
    """A caller below HTTP (the command line) may pass any id: the message does not echo it whole."""
    with pytest.raises(DecisionNotFound) as raised:
        server.runtime.approvals.approve(Person("approver@test.local", "approver"), LONG_ID, None)
    assert LONG_ID not in str(raised.value) and len(str(raised.value)) < 200
    with pytest.raises(DecisionNotFound, match="no decision 'dec_9"):
        server.runtime.gateway.get(LONG_ID)

    agent = server.client("a2")
    packet_id = "p" * 128
    assert agent.post("/v1/actions", json=note("a2", packet_id=packet_id)).status_code in (200, 202)
    changed = note("a2", packet_id=packet_id)
    changed["context"]["task_id"] = "t-other"
    found = problem(agent.post("/v1/actions", json=changed), 409, "packet_id_reused")
    assert packet_id not in found["detail"] and "p" * 64 in found["detail"]


def test_oversized_approval_rejection_and_kill_switch_bodies_are_413(server: Server) -> None:
    approver, founder = server.client("approver"), server.client("founder")
    before = footprint(server)
    big = "x" * 20_000
    cases = [(approver, "/v1/approvals/dec_x/approve", {"comment": big}),
             (approver, "/v1/approvals/dec_x/reject", {"reason": big}),
             (founder, "/v1/kill-switch", {"engaged": True, "reason": big})]
    for client, path, body in cases:
        problem(client.post(path, json=body), 413, "body_too_large")
        data = json.dumps(body).encode()
        chunks = iter([data[i:i + 4096] for i in range(0, len(data), 4096)])
        request = client.build_request("POST", path, content=chunks, headers={"content-type": "application/json"})
        assert "content-length" not in request.headers
        problem(client.send(request), 413, "body_too_large")
    assert founder.get("/v1/kill-switch").json()["engaged"] is False
    assert footprint(server) == before


def test_405_answers_name_the_allowed_methods(server: Server) -> None:
    founder = server.client("founder")
    for method, path, allowed in (("PUT", "/v1/kill-switch", "GET, POST"), ("DELETE", "/v1/actions", "POST"),
                                  ("GET", "/v1/approvals/dec_x/reject", "POST"), ("POST", "/healthz", "GET"),
                                  ("PATCH", "/v1/approvals/dec_x/approve", "POST"),
                                  ("POST", "/docs/assets/favicon.png", "GET, HEAD")):
        response = founder.request(method, path)
        problem(response, 405, "method_not_allowed")
        assert response.headers["allow"] == allowed, (method, path)


def test_a_nul_character_the_database_cannot_hold_is_a_client_error(server: Server) -> None:
    """PostgreSQL refuses NUL in text columns: that is the request's fault, never a 503 that says
    the database is down; a refused request records nothing and the connection stays usable."""
    pending = server.client("a2").post("/v1/actions", json=refund("a2", 60_000)).json()
    assert pending["status"] == "pending_approval"
    before = footprint(server)
    approver = server.client("approver")
    for answer in (server.client("a2").get("/v1/actions/dec_%00"),
                   approver.post("/v1/approvals/dec_%00/approve", json={})):
        if answer.status_code == 404:  # SQLite looks the id up and finds nothing
            problem(answer, 404, "decision_not_found")
        else:  # PostgreSQL cannot even compare with it
            problem(answer, 422, "invalid_request")
    assert server.client("auditor").get("/v1/incidents", params={"kind": "\x00"}).status_code < 500
    assert footprint(server) == before
    answer = approver.post(f"/v1/approvals/{pending['decision_id']}/approve", json={"comment": "a\x00b"})
    if answer.status_code != 200:  # PostgreSQL cannot hold the comment: refused, nothing recorded
        problem(answer, 422, "invalid_request")
        assert footprint(server) == before
        assert server.client("a2").get(f"/v1/actions/{pending['decision_id']}").json()["status"] == "pending_approval"
