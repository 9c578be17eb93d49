"""Compensation over HTTP: `POST /v1/actions/{id}/compensate` undoes an executed, reversible
action with the catalog's compensating action, as a packet decided and recorded like any other,
once however often it is asked for; everything else is refused with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gateway_server import Server, audit, module_server, packet


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory, "compensate")


def _executed(server: Server, tool: str, params: dict[str, Any], evidence: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = server.client("a3").post("/v1/actions", json=packet("a3", tool, params, evidence=evidence))
    assert answer.status_code == 200, answer.text
    decision = answer.json()
    assert decision["status"] == "executed", decision
    return dict(decision)


def _compensations_of(server: Server, decision_id: str) -> list[dict[str, Any]]:
    return [e for e in audit(server, "decision") if e["data"]["packet"]["packet_id"] == f"compensate.{decision_id}"]


def test_a_price_change_is_undone_by_restoring_the_price_once(server: Server) -> None:
    _executed(server, "shopify.update_price", {"product_id": "1001", "variant_id": "2001", "old_price": 3900,
                                               "new_price": 4000, "currency": "usd"},
              evidence={"projected_margin": 0.3})  # the price is $40.00, whatever it was
    original = _executed(server, "shopify.update_price", {"product_id": "1001", "variant_id": "2001", "old_price": 4000,
                                                          "new_price": 3600, "currency": "usd"},
                         evidence={"projected_margin": 0.3})
    path = f"/v1/actions/{original['decision_id']}/compensate"
    answer = server.client("approver").post(path)
    assert answer.status_code == 200, answer.text
    compensation = answer.json()
    assert compensation["status"] == "executed", (compensation["reasons"], compensation["execution"])
    assert compensation["packet_id"] == f"compensate.{original['decision_id']}"
    assert compensation["execution"]["summary"]["price"] == "40.00"
    # asked again, by someone else: the same compensating decision, not a second action
    again = server.client("founder").post(path)
    assert again.status_code == 200 and again.json()["decision_id"] == compensation["decision_id"]
    [entry] = audit(server, "decision", compensation["decision_id"])
    recorded = entry["data"]["packet"]
    assert recorded["agent"] == "a3"
    assert recorded["action"] == {"tool": "shopify.update_price", "params": {
        "product_id": "1001", "variant_id": "2001", "old_price": 3600, "new_price": 4000, "currency": "usd"}}
    assert recorded["context"]["compensation"] == {"of": original["decision_id"], "tool": "shopify.update_price"}
    assert recorded["evidence"]["compensates"]["decision_id"] == original["decision_id"]


def test_a_note_is_undone_by_deleting_it(server: Server) -> None:
    original = _executed(server, "crm.log_note", {"record_id": "c_7", "body": "Asked for a call back."})
    answer = server.client("founder").post(f"/v1/actions/{original['decision_id']}/compensate")
    assert answer.status_code == 200, answer.text
    compensation = answer.json()
    assert compensation["status"] == "executed"
    [entry] = audit(server, "decision", compensation["decision_id"])
    assert entry["data"]["packet"]["action"] == {
        "tool": "crm.delete_note", "params": {"note_id": original["execution"]["summary"]["note_id"]}}


def test_an_irreversible_action_is_refused_with_the_reason(server: Server) -> None:
    original = _executed(server, "stripe.refund", {"charge": "ch_1", "amount": 500, "currency": "usd"},
                         evidence={"reconciled": True, "order_total": 500})
    answer = server.client("approver").post(f"/v1/actions/{original['decision_id']}/compensate")
    assert answer.status_code == 409
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert problem["code"] == "not_reversible" and "refund" in problem["detail"]
    assert not _compensations_of(server, original["decision_id"])


def test_only_an_executed_action_can_be_compensated(server: Server) -> None:
    pending = server.client("a1").post("/v1/actions", json=packet(
        "a1", "crm.update_deal_stage", {"deal_id": "d_9", "stage": "closedwon"})).json()
    assert pending["status"] == "pending_approval", pending
    answer = server.client("approver").post(f"/v1/actions/{pending['decision_id']}/compensate")
    assert answer.status_code == 409 and answer.json()["code"] == "not_compensable"
    missing = server.client("approver").post("/v1/actions/dec_00000000000000000000000000/compensate")
    assert missing.status_code == 404 and missing.json()["code"] == "decision_not_found"


@pytest.mark.parametrize("who", ["a3", "auditor", "viewer", None])
def test_only_founders_and_approvers_may_ask(server: Server, who: str | None) -> None:
    original = _executed(server, "crm.log_note", {"record_id": "c_8", "body": "Sent the quote."})
    answer = server.client(who).post(f"/v1/actions/{original['decision_id']}/compensate")
    assert answer.status_code == (401 if who is None else 403)
    assert not _compensations_of(server, original["decision_id"])


@pytest.mark.parametrize("field", ["packet_id", "context"])
def test_an_agent_cannot_forge_a_compensation(server: Server, field: str) -> None:
    forged = packet("a3", "shopify.update_price", {"product_id": "p_1", "variant_id": "v_1", "old_price": 1000,
                                                   "new_price": 1100, "currency": "usd"})
    if field == "packet_id":
        forged["packet_id"] = "compensate.dec_0000"
    else:
        forged["context"] = {"compensation": {"of": "dec_0000", "tool": "shopify.update_price"}}
    answer = server.client("a3").post("/v1/actions", json=forged)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "reserved_name"
