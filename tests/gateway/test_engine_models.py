"""The packet and decision models: the JSON of DESIGN.md, strict input, the packet hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from dsl.model import Autonomy, Risk
from gateway.engine.agents import Agent
from gateway.engine.models import Approval, Decision, Packet, Reason, packet_hash

DESIGN_PACKET: dict[str, Any] = {
    "packet_id": "01J9Z4ABC",
    "agent": "refund-bot",
    "action": {"tool": "stripe.refund",
               "params": {"charge": "ch_123", "amount": 60000, "currency": "usd"}},
    "evidence": {"order_total": 60000, "reconciled": True, "risk_score": 0.12},
    "proof": {"invariant_checks": [{"id": "refund_reconciled", "status": "PASS", "value": True}]},
    "context": {"goal_id": "g-42", "task_id": "t-7", "reasoning": "customer received damaged item"},
}


def _with(**changes: Any) -> dict[str, Any]:
    return {**DESIGN_PACKET, **changes}


def test_design_packet_round_trips() -> None:
    packet = Packet.model_validate_json(json.dumps(DESIGN_PACKET))
    assert packet.tool == "stripe.refund"
    assert packet.model_dump(mode="json") == DESIGN_PACKET


def test_optional_sections_default_to_empty() -> None:
    packet = Packet.model_validate({"packet_id": "p", "agent": "a",
                                    "action": {"tool": "crm.log_note"}})
    assert (packet.action.params, packet.evidence, packet.context) == ({}, {}, {})
    assert packet.proof.invariant_checks == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (_with(extra=1), "extra"),
        (_with(action={"tool": "stripe.refund", "params": {}, "dry": True}), "dry"),
        (_with(proof={"invariant_checks": [], "signature": "x"}), "signature"),
        (_with(packet_id=""), "packet_id"),
        (_with(packet_id="a" * 129), "packet_id"),
        (_with(packet_id="has space"), "packet_id"),
        (_with(packet_id="slash/no"), "packet_id"),
        (_with(agent=""), "agent"),
        (_with(action={"tool": "Stripe.refund"}), "tool"),
        (_with(action={"tool": "stripe"}), "tool"),
        (_with(action={"tool": "stripe.refund.now"}), "tool"),
        (_with(action={"tool": "stripe.refund", "params": []}), "params"),
        (_with(evidence=[1]), "evidence"),
        (_with(proof={"invariant_checks": [{"id": "x", "status": "MAYBE"}]}), "status"),
        (_with(proof={"invariant_checks": [{"id": "x", "status": "PASS"},
                                           {"id": "x", "status": "FAIL"}]}), "more than once"),
        (_with(action={"tool": "stripe.refund", "params": {"amount": 2**53}}), "2\\*\\*53"),
        (_with(evidence={"x": float("nan")}), "not a JSON number"),
        (_with(context={"x": [float("inf")]}), "not a JSON number"),
        (_with(evidence={"x": {1, 2}}), "not a JSON value"),
        (_with(evidence={"x": {1: "a"}}), "keys must be strings"),
    ],
)
def test_bad_packets_are_refused_with_a_clear_error(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Packet.model_validate(body)


def test_packet_is_immutable() -> None:
    packet = Packet.model_validate(DESIGN_PACKET)
    with pytest.raises(ValidationError):
        packet.packet_id = "other"  # type: ignore[misc]


def test_packet_hash_is_sha256_of_canonical_json() -> None:
    packet = Packet.model_validate(DESIGN_PACKET)
    digest = packet_hash(packet)
    assert digest.startswith("sha256:") and len(digest) == 7 + 64
    reordered = json.loads(json.dumps(DESIGN_PACKET, sort_keys=True))
    assert packet_hash(Packet.model_validate(reordered)) == digest


def test_packet_hash_ignores_spelling_of_defaults() -> None:
    short = {"packet_id": "p", "agent": "a", "action": {"tool": "crm.log_note"}}
    long = {**short, "evidence": {}, "context": {}, "proof": {"invariant_checks": []},
            "action": {"tool": "crm.log_note", "params": {}}}
    assert packet_hash(Packet.model_validate(short)) == packet_hash(Packet.model_validate(long))


@pytest.mark.parametrize(
    "change",
    [
        {"packet_id": "01J9Z4ABD"},
        {"action": {"tool": "stripe.refund", "params": {"charge": "ch_123", "amount": 60001,
                                                        "currency": "usd"}}},
        {"evidence": {}},
        {"proof": {"invariant_checks": []}},
        {"context": {}},
    ],
)
def test_packet_hash_changes_with_any_field(change: dict[str, Any]) -> None:
    assert packet_hash(Packet.model_validate(_with(**change))) != packet_hash(
        Packet.model_validate(DESIGN_PACKET))


def test_decision_json_matches_design() -> None:
    decision = Decision(
        packet_id="01J9Z4", status="pending_approval", risk=Risk.L2, autonomy=Autonomy.A2,
        policy_digest="sha256:00",
        reasons=[Reason(policy="refunds", rule="large_refund", effect="escalate",
                        message="refunds over $500 need an approver")],
        approval=Approval(required_role="approver", count=1,
                          expires_at=datetime(2025, 1, 1, tzinfo=UTC)),
    )
    data = json.loads(decision.model_dump_json())
    assert data["risk"] == "L2" and data["autonomy"] == "A2"
    assert set(data) == {"decision_id", "packet_id", "status", "risk", "autonomy",
                         "policy_digest", "reasons", "invariants", "approval", "flags",
                         "unknown_claims", "execution", "audit"}
    assert data["reasons"][0] == {"policy": "refunds", "rule": "large_refund",
                                  "effect": "escalate",
                                  "message": "refunds over $500 need an approver",
                                  "enforced": True}
    assert data["approval"] == {"required_role": "approver", "count": 1,
                                "expires_at": "2025-01-01T00:00:00Z", "approvals": []}
    assert Decision.model_validate_json(decision.model_dump_json()) == decision


@pytest.mark.parametrize("value", [2, "L9", "l2", None])
def test_decision_risk_accepts_only_tier_names(value: object) -> None:
    with pytest.raises(ValidationError, match="L0, L1, L2, L3"):
        Decision(packet_id="p", status="denied", risk=value, autonomy="A1",  # type: ignore[arg-type]
                 policy_digest="d")


def test_decision_json_schema_names_tiers() -> None:
    schema = Decision.model_json_schema(mode="serialization")
    assert schema["properties"]["risk"] == {"type": "string", "enum": ["L0", "L1", "L2", "L3"]}


def test_agent_tools_are_globs() -> None:
    agent = Agent(name="refund-bot", autonomy="A2", tools=("stripe.refund", "crm.*"))
    assert agent.autonomy is Autonomy.A2
    assert agent.may_use("stripe.refund") and agent.may_use("crm.log_note")
    assert not agent.may_use("stripe.payout")
    assert not Agent(name="x", autonomy=Autonomy.A4).may_use("crm.log_note")
    assert agent.cel_view() == {"name": "refund-bot", "autonomy": "A2", "owner": None}


def test_agent_refuses_unknown_fields_and_levels() -> None:
    with pytest.raises(ValidationError):
        Agent(name="x", autonomy="A5")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Agent(name="x", autonomy="A1", level=3)  # type: ignore[call-arg]
