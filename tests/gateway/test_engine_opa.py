"""The engine and `opa` statements: OPA's answers, given, read like an invariant's verdict.

The engine never asks OPA; these tests hand it answers (`delegated=`) and check what it decides,
what it records in `invariants`, and that `delegated_answers` gives back exactly what decides the
same packet the same way again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dsl import compile_sources
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated, delegated_answers, opa_input
from gateway.engine.models import Decision, InvariantResult, Packet

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
PATH = "warden/refunds/decision"
POLICIES = f"""
policy refunds {{
  applies to tool "stripe.refund"
  risk L1
  invariant reconciled : evidence.reconciled == true
  opa finance "{PATH}" reads params, evidence.risk_score
}}

policy watch mode shadow {{
  applies to tool "stripe.refund"
  opa "warden/refunds/shadow"
}}
"""


@pytest.fixture(scope="module")
def engine() -> Decider:
    return Decider(compile_sources({"refunds.policy": POLICIES}))


AGENT = Agent(name="bot", autonomy="A2", owner="owner@test.local")


def refund(amount: int = 1000, **evidence: Any) -> Packet:
    return Packet.model_validate({
        "packet_id": "p-1", "agent": "bot",
        "action": {"tool": "stripe.refund", "params": {"charge": "ch_1", "amount": amount}},
        "evidence": {"reconciled": True, "order_total": amount, "risk_score": 12, **evidence},
        "context": {"task_id": "t-1", "customer_email": "someone@example.com"},
    })


def decide(engine: Decider, answer: Delegated | None, *, packet: Packet | None = None,
           shadow: Delegated | None = None, kill_switch: bool = False) -> Decision:
    delegated = {} if answer is None else {PATH: answer}
    if shadow is not None:
        delegated["warden/refunds/shadow"] = shadow
    return engine.decide(packet or refund(), AGENT, now=NOW, delegated=delegated, kill_switch=kill_switch)


def opa_entry(decision: Decision, path: str = PATH) -> InvariantResult:
    return next(i for i in decision.invariants if i.path == path)


def test_the_engine_lists_one_delegation_per_path_for_a_tool_and_none_for_others(engine: Decider) -> None:
    assert [d.path for d in engine.delegations_for("stripe.refund")] == [PATH, "warden/refunds/shadow"]
    assert engine.delegations_for("crm.log_note") == ()


def test_the_input_holds_the_tool_and_only_what_the_statement_reads(engine: Decider) -> None:
    finance, shadow = engine.delegations_for("stripe.refund")
    assert opa_input(finance, refund(), AGENT) == {
        "tool": "stripe.refund", "params": {"charge": "ch_1", "amount": 1000}, "evidence": {"risk_score": 12}}
    # without `reads`: the params and the agent, never evidence or context
    assert opa_input(shadow, refund(), AGENT) == {
        "tool": "stripe.refund", "params": {"charge": "ch_1", "amount": 1000},
        "agent": {"name": "bot", "autonomy": "A2", "owner": "owner@test.local"}}


def test_a_field_the_packet_lacks_is_left_out(engine: Decider) -> None:
    finance = engine.delegations_for("stripe.refund")[0]
    bare = Packet.model_validate({"packet_id": "p", "agent": "bot",
                                  "action": {"tool": "stripe.refund", "params": {}}})
    assert opa_input(finance, bare, AGENT) == {"tool": "stripe.refund", "params": {}}


@pytest.mark.parametrize("answer", [True, {"allow": True}, {"allow": True, "reasons": []}])
def test_an_allow_passes(engine: Decider, answer: Any) -> None:
    decision = decide(engine, Delegated(answer))
    assert decision.status == "executed"
    entry = opa_entry(decision)
    assert (entry.id, entry.verified, entry.answer, entry.error) == (f"opa:{PATH}", "PASS", answer, None)


def test_a_deny_with_reasons_is_a_violation_that_shows_them(engine: Decider) -> None:
    decision = decide(engine, Delegated({"allow": False, "reasons": ["risk too high", "over the cap"]}))
    assert decision.status == "denied" and decision.approval is None
    assert opa_entry(decision).verified == "FAIL"
    [reason] = [r for r in decision.violations if r.rule == "finance"]
    assert reason.effect == "invariant"
    assert reason.message.startswith("OPA denied: risk too high; over the cap")


def test_false_is_a_deny(engine: Decider) -> None:
    assert decide(engine, Delegated(False)).status == "denied"


def test_a_deny_is_not_lifted_by_an_agent_high_enough_to_act_alone(engine: Decider) -> None:
    a4 = Agent(name="bot", autonomy="A4")
    decision = engine.decide(refund(), a4, now=NOW, delegated={PATH: Delegated(False)})
    assert decision.status == "denied"


def test_a_risk_in_the_answer_escalates_like_a_rule(engine: Decider) -> None:
    decision = decide(engine, Delegated({"allow": True, "risk": "L2"}))
    assert decision.status == "pending_approval" and decision.risk.name == "L2"
    assert any(r.effect == "escalate" and "L2" in r.message for r in decision.reasons)


def test_an_undefined_rule_denies_and_says_so(engine: Decider) -> None:
    decision = decide(engine, Delegated.failed("undefined", PATH))
    assert decision.status == "denied"
    assert opa_entry(decision).verified == "FAIL"
    assert "undefined" in (opa_entry(decision).error or "")


@pytest.mark.parametrize("failure, words", [
    ("not_configured", "no OPA server is configured"),
    ("unreachable", "OPA was unreachable"),
    ("timeout", "OPA did not answer in time"),
    ("status", "OPA answered with an error"),
    ("malformed", "OPA's answer could not be read"),
])
def test_no_answer_denies_with_a_reason_that_says_why(engine: Decider, failure: str, words: str) -> None:
    decision = decide(engine, Delegated.failed(failure, "detail"))
    assert decision.status == "denied"
    entry = opa_entry(decision)
    assert (entry.verified, entry.failure, entry.detail) == ("ERROR", failure, "detail")
    [reason] = [r for r in decision.violations if r.rule == "finance"]
    assert reason.effect == "error" and words in reason.message


@pytest.mark.parametrize("answer", [
    None, "allow", 1, [], {}, {"allow": "yes"}, {"allow": True, "reasons": "one"},
    {"allow": True, "reasons": [1]}, {"allow": True, "risk": "L9"}, {"allow": True, "extra": 1},
])
def test_the_wrong_shape_denies(engine: Decider, answer: Any) -> None:
    decision = decide(engine, Delegated(answer))
    assert decision.status == "denied"
    assert opa_entry(decision).verified == "ERROR"
    assert "wrong shape" in (opa_entry(decision).error or "")


def test_no_answer_at_all_denies(engine: Decider) -> None:
    decision = engine.decide(refund(), AGENT, now=NOW)
    assert decision.status == "denied"
    assert opa_entry(decision).failure == "missing"
    assert "no answer from OPA" in (opa_entry(decision).error or "")


def test_a_shadow_delegation_is_recorded_and_never_enforced(engine: Decider) -> None:
    decision = decide(engine, Delegated(True), shadow=Delegated(False))
    assert decision.status == "executed"
    shadow = opa_entry(decision, "warden/refunds/shadow")
    assert shadow.verified == "FAIL" and shadow.enforced is False


def test_other_invariants_keep_their_json(engine: Decider) -> None:
    decision = decide(engine, Delegated(True))
    plain = next(i for i in decision.model_dump(mode="json")["invariants"] if i["id"] == "reconciled")
    assert set(plain) == {"id", "policy", "verified", "claimed", "error", "mismatch", "enforced"}
    delegated = next(i for i in decision.model_dump(mode="json")["invariants"] if i["id"] == f"opa:{PATH}")
    assert (delegated["path"], delegated["answer"]) == (PATH, True)
    assert "failure" not in delegated and "detail" not in delegated  # null keys are left out
    failed = decide(engine, Delegated.failed("timeout", "slow")).model_dump(mode="json")["invariants"]
    assert next(i for i in failed if i["id"] == f"opa:{PATH}")["failure"] == "timeout"


ANSWERS = [
    Delegated(True), Delegated(False), Delegated({"allow": False, "reasons": ["no"]}),
    Delegated({"allow": True, "risk": "L3"}), Delegated({"allow": "maybe"}),
    Delegated.failed("timeout", "no answer within 0.5 s"), Delegated.failed("undefined", PATH),
    Delegated.failed("status", "500 internal_error: boom"), None,
]


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("kill_switch", [False, True])
def test_the_recorded_answers_decide_the_same_packet_the_same_way_again(
        engine: Decider, answer: Delegated | None, kill_switch: bool) -> None:
    first = decide(engine, answer, shadow=Delegated({"allow": True}), kill_switch=kill_switch)
    # what the audit log keeps is the JSON: go through it, as a replay would
    recorded = Decision.model_validate_json(first.model_dump_json())
    again = engine.decide(refund(), AGENT, now=NOW, kill_switch=kill_switch,
                          delegated=delegated_answers(recorded))
    assert again.model_dump(mode="json") == first.model_dump(mode="json")


def test_a_decision_without_delegations_gives_no_answers(engine: Decider) -> None:
    plain = Decider(compile_sources({"a.policy": 'policy a {\n applies to tool "crm.log_note"\n risk L0\n}\n'}))
    packet = Packet.model_validate({"packet_id": "p", "agent": "bot",
                                    "action": {"tool": "crm.log_note", "params": {}}})
    assert delegated_answers(plain.decide(packet, AGENT, now=NOW)) == {}
