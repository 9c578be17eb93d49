"""Packets and small bodies are I-JSON (RFC 7493): a lone surrogate escape or a key named twice
is a 422 with its own code on the real and the dry-run endpoint alike, and nothing is recorded
or executed. Each test is named after the hole it closes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway_server import Server, footprint, module_server, note, refund

LONE_SURROGATES = (rb"\ud800", rb"\udfff", rb"a\udc00b", rb"\ud83d x")  # high, low, inside, unpaired
PATHS = ("/v1/actions", "/v1/actions/evaluate")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory, "ijson")


def with_raw(body: dict[str, Any], raw: bytes, placeholder: str = "@@") -> bytes:
    """`body` as JSON with the string `"@@"` replaced by the JSON text `"<raw>"`."""
    text = json.dumps(body).encode()
    assert text.count(f'"{placeholder}"'.encode()) == 1
    return text.replace(f'"{placeholder}"'.encode(), b'"' + raw + b'"')


def post(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def surrogate_packets(raw: bytes) -> dict[str, bytes]:
    """A valid refund packet with the lone surrogate in each place an agent writes text."""
    def base() -> dict[str, Any]:
        return refund("a2", 2500)

    evidence, context, proof, key = base(), base(), base(), base()
    evidence["evidence"]["note"] = "@@"
    context["context"]["reasoning"] = "@@"
    proof["proof"]["invariant_checks"] = [{"id": "refund_reconciled", "status": "PASS", "value": "@@"}]
    key["evidence"]["@@"] = 1
    return {"evidence": with_raw(evidence, raw), "context": with_raw(context, raw),
            "proof value": with_raw(proof, raw), "evidence key": with_raw(key, raw)}


def test_lone_surrogate_in_evidence_context_or_proof_is_422_not_500(server: Server) -> None:
    agent = server.client("a2")
    before = footprint(server)
    for raw in LONE_SURROGATES:
        for where, body in surrogate_packets(raw).items():
            for path in PATHS:
                found = problem(post(agent, path, body), 422, "invalid_unicode")
                assert "surrogate" in found["detail"], (raw, where, path)
    assert footprint(server) == before


def test_lone_surrogate_keys_do_not_collide_into_a_stored_decision(server: Server) -> None:
    """Two packets with one packet_id whose evidence keys are different lone surrogates: neither
    is decided (once replaced, the keys would be equal and the second answered as a replay)."""
    agent = server.client("a2")
    before = footprint(server)
    first = refund("a2", 2500, packet_id="p-surrogate-key")
    first["evidence"]["@@"] = 1
    for raw in (rb"\ud800", rb"\udbff"):
        problem(post(agent, "/v1/actions", with_raw(first, raw)), 422, "invalid_unicode")
    assert footprint(server) == before
    clean = refund("a2", 2500, packet_id="p-surrogate-key")
    assert agent.post("/v1/actions", json=clean).status_code in (200, 202)  # the packet_id is unused


def test_surrogate_pairs_are_unicode_text_and_accepted(server: Server) -> None:
    agent = server.client("a2")
    sent = note("a2")
    sent["context"]["reasoning"] = "@@"
    for path in PATHS:
        body = with_raw({**sent, "packet_id": f"p-pair-{path.count('/')}"}, rb"smile \ud83d\ude00")
        answered = post(agent, path, body)
        assert answered.status_code in (200, 202), answered.text
    decision = answered.json()
    assert decision["status"] == "allowed"


def test_duplicate_keys_are_refused_not_last_one_wins(server: Server) -> None:
    """`"amount": 600000, …, "amount": 100`: a proxy keeping the first key sees 600000 while a
    parser keeping the last would execute 100; the packet is refused instead."""
    agent = server.client("a2")
    before = footprint(server)
    twice = (b'{"packet_id": "p-dup", "agent": "a2", "action": {"tool": "stripe.refund", "params": '
             b'{"charge": "ch_1", "amount": 600000, "currency": "usd", "amount": 100}}, '
             b'"evidence": {"reconciled": true}}')
    for path in PATHS:
        found = problem(post(agent, path, twice), 422, "duplicate_key")
        assert "'amount'" in found["detail"]
    top = b'{"packet_id": "p-dup", "agent": "a3", "agent": "a2", "action": {"tool": "crm.log_note", "params": {}}}'
    nested = b'{"packet_id": "p-dup", "agent": "a2", "action": {"tool": "crm.log_note", "params": {}}, ' \
             b'"evidence": {"checks": [{"ok": true, "ok": false}]}}'
    for body in (top, nested):
        for path in PATHS:
            problem(post(agent, path, body), 422, "duplicate_key")
    assert footprint(server) == before


def test_small_bodies_are_i_json_too(server: Server) -> None:
    """Approve, reject and the kill switch read their bodies like packets."""
    pending = server.client("a2").post("/v1/actions", json=refund("a2", 60_000))
    assert pending.status_code == 202, pending.text
    decision_id = pending.json()["decision_id"]
    approver, founder = server.client("approver"), server.client("founder")
    before = footprint(server)
    for action, field in (("approve", "comment"), ("reject", "reason")):
        url = f"/v1/approvals/{decision_id}/{action}"
        problem(post(approver, url, f'{{"{field}": "a", "{field}": "b"}}'.encode()), 422, "duplicate_key")
        for raw in LONE_SURROGATES:
            problem(post(approver, url, with_raw({field: "@@"}, raw)), 422, "invalid_unicode")
    problem(post(founder, "/v1/kill-switch", b'{"engaged": false, "reason": "x", "engaged": true}'), 422, "duplicate_key")
    problem(post(founder, "/v1/kill-switch", with_raw({"engaged": True, "reason": "@@"}, rb"\udc00")), 422,
            "invalid_unicode")
    assert footprint(server) == before
    assert server.client("a2").get(f"/v1/actions/{decision_id}").json()["status"] == "pending_approval"
    assert founder.get("/v1/kill-switch").json()["engaged"] is False
