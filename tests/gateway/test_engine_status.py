"""Each status and each gate the engine can produce, and every rule kind's effect."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dsl.model import Autonomy, Risk
from gateway.engine.decider import Decider, decide
from gateway.engine.models import Packet

A0, A1, A2, A3, A4 = Autonomy
L0, L1, L2, L3 = Risk


def _rules(decision) -> list[tuple[str, str, str, bool]]:
    return [(r.policy, r.rule, r.effect, r.enforced) for r in decision.reasons]


def test_executed(build) -> None:
    decision = build.decide(build.policy_set(build.policy(risk=L1)), build.packet(), A2)
    assert decision.status == "executed"
    assert decision.decision_id is None and decision.execution is None and decision.audit is None
    assert decision.policy_digest == "sha256:" + "ab" * 32
    assert decision.packet_id == "pkt-1"


def test_allowed_on_dry_run(build) -> None:
    policies = build.policy_set(build.policy(risk=L0))
    assert build.decide(policies, build.packet(), A1, dry_run=True).status == "allowed"


def test_drafted_for_a0_even_with_a_firing_approval_rule(build) -> None:
    policies = build.policy_set(build.policy(approvals=[("approver", 1, None, None)]))
    decision = build.decide(policies, build.packet(), A0)
    assert decision.status == "drafted"
    assert decision.approval is None


def test_module_level_decide_matches_engine(build) -> None:
    policies = build.policy_set(build.policy(risk=L2))
    packet, agent = build.packet(), build.agent(A2)
    assert decide(policies, packet, agent, now=build.now) == Decider(policies).decide(
        packet, agent, now=build.now)


# -- Warden's own gates ---------------------------------------------------------------------


@pytest.mark.parametrize("autonomy", list(Autonomy))
def test_kill_switch_denies_everything(build, autonomy: Autonomy) -> None:
    policies = build.policy_set(build.policy(risk=L0))
    decision = build.decide(policies, build.packet(), autonomy, kill_switch=True)
    assert decision.status == "denied"
    assert _rules(decision) == [("warden", "kill_switch", "kill_switch", True)]
    assert decision.risk == L0


def test_kill_switch_reports_the_assessed_risk_and_reasons(build) -> None:
    policies = build.policy_set(build.policy(risk=L1, escalations=[(L2, "params.amount > 50000")]))
    decision = build.decide(policies, build.packet(params={"amount": 60000}), A2, kill_switch=True)
    assert (decision.status, decision.risk, decision.approval) == ("denied", L2, None)
    assert [r.effect for r in decision.reasons][:2] == ["kill_switch", "escalate"]
    assert decision.reasons[0].message.endswith("(the action was assessed as L2)")


def test_kill_switch_says_when_no_risk_was_assessed(build) -> None:
    decision = build.decide(build.policy_set(), build.packet(), A2, kill_switch=True)
    assert [r.rule for r in decision.reasons] == ["kill_switch", "unknown_tool"]
    assert decision.reasons[0].message.endswith("(the risk could not be assessed)")


def test_kill_switch_wins_over_dry_run(build) -> None:
    policies = build.policy_set(build.policy(risk=L0))
    decision = build.decide(policies, build.packet(), A4, kill_switch=True, dry_run=True)
    assert decision.status == "denied"


@pytest.mark.parametrize(
    "policies",
    [
        [],
        [("other", "crm.log_note", "enforce", L0)],  # a policy for another tool
        [("shadowed", "stripe.refund", "shadow", L0)],  # only a shadow policy gives a tier
        [("tierless", "stripe.refund", "enforce", None)],  # enforced, but gives no tier
    ],
    ids=["no_policies", "other_tool", "shadow_only", "no_tier"],
)
def test_unknown_tool_is_denied(build, policies) -> None:
    policy_set = build.policy_set(*(build.policy(name, tools=[tool], mode=mode, risk=risk)
                                    for name, tool, mode, risk in policies))
    decision = build.decide(policy_set, build.packet("stripe.refund"), A4)
    assert decision.status == "denied"
    assert _rules(decision) == [("warden", "unknown_tool", "unknown_tool", True)]
    assert decision.risk == L3
    assert "stripe.refund" in decision.reasons[0].message


def test_glob_policy_makes_a_tool_known(build) -> None:
    policies = build.policy_set(build.policy(tools=["stripe.*"], risk=L0))
    assert build.decide(policies, build.packet("stripe.payout"), A2).status == "executed"


def test_packet_over_depth_limit_is_denied(build) -> None:
    deep: dict = {}
    node = deep
    for _ in range(200):
        node["x"] = {}
        node = node["x"]
    policies = build.policy_set(build.policy(risk=L0))
    decision = build.decide(policies, build.packet(evidence={"deep": deep}), A4)
    assert decision.status == "denied"
    assert _rules(decision) == [("warden", "packet_limits", "error", True)]


def test_packet_over_size_limit_is_denied(build) -> None:
    policies = build.policy_set(build.policy(risk=L0))
    decision = build.decide(policies, build.packet(params={"body": "x" * 70_000}), A4)
    assert decision.status == "denied"
    assert decision.reasons[0].rule == "packet_limits"


def test_unexpected_exception_denies_with_error_reason(build) -> None:
    """A broken rule object (no tier) makes evaluation raise: denied, never propagated."""
    policy = build.policy(risk=L0, escalations=[(L2, "true")])
    broken = replace(policy, escalations=(replace(policy.escalations[0], tier=None),))
    decision = build.decide(build.policy_set(broken), build.packet(), A4)
    assert decision.status == "denied"
    assert _rules(decision) == [("warden", "internal_error", "error", True)]
    assert decision.reasons[0].message.startswith("evaluation failed")


def test_raising_program_is_an_error_not_a_crash(build) -> None:
    class Exploding:
        source = "boom"

        def evaluate(self, act: object) -> object:
            raise RuntimeError("engine fell over")

    policy = build.policy(risk=L0, denies=["false"])
    rule = policy.denies[0]
    broken = replace(policy, denies=(replace(rule, when=replace(rule.when, program=Exploding())),))
    decision = build.decide(build.policy_set(broken), build.packet(), A4)
    assert decision.status == "denied"
    assert _rules(decision) == [("p", "deny_1", "error", True)]
    assert "engine fell over" in decision.reasons[0].message


def test_packet_not_validated_still_fails_closed(build) -> None:
    """Even a packet that bypassed validation (model_construct) cannot crash the engine."""
    bogus = Packet.model_construct(packet_id="x", agent="bot", action=None, evidence={},
                                   proof=None, context={})
    decision = build.decide(build.policy_set(build.policy(risk=L0)), bogus, A4)
    assert decision.status == "denied"
    assert decision.reasons[0].rule == "internal_error"


# -- rule kinds -----------------------------------------------------------------------------


def test_deny_rule_fires(build) -> None:
    policies = build.policy_set(build.policy(denies=["params.amount > 500000"]))
    decision = build.decide(policies, build.packet(params={"amount": 500001}), A4)
    assert decision.status == "denied"
    assert _rules(decision) == [("p", "deny_1", "deny", True)]
    assert decision.reasons[0].message == "deny 1"


def test_deny_rule_not_firing(build) -> None:
    policies = build.policy_set(build.policy(denies=["params.amount > 500000"]))
    assert build.decide(policies, build.packet(params={"amount": 5}), A4).status == "executed"


@pytest.mark.parametrize("kind", ["deny", "escalation", "approval", "floor"])
def test_condition_error_denies(build, kind: str) -> None:
    cond = "params.missing > 1"
    policy = {
        "deny": build.policy(denies=[cond]),
        "escalation": build.policy(escalations=[(L2, cond)]),
        "approval": build.policy(approvals=[("approver", 1, cond, None)]),
        "floor": build.policy(floors=[(A3, cond)]),
    }[kind]
    decision = build.decide(build.policy_set(policy), build.packet(params={"amount": 1}), A2)
    assert decision.status == "denied"
    assert [r.effect for r in decision.reasons] == ["error"]
    assert "could not evaluate" in decision.reasons[0].message


def test_non_boolean_condition_denies(build) -> None:
    policies = build.policy_set(build.policy(denies=["params.amount"]))
    decision = build.decide(policies, build.packet(params={"amount": 3}), A4)
    assert decision.status == "denied"
    assert decision.reasons[0].effect == "error"


@pytest.mark.parametrize(
    ("evidence", "verdict"),
    [({"score": 0.5}, "FAIL"), ({}, "ERROR"), ({"score": "low"}, "ERROR")],
    ids=["fail", "missing_field", "type_mismatch"],
)
def test_invariant_not_passing_denies(build, evidence, verdict) -> None:
    policies = build.policy_set(build.policy(invariants={"rec": "evidence.score < 0.3"}))
    decision = build.decide(policies, build.packet(evidence=evidence), A4)
    assert decision.status == "denied"
    assert _rules(decision) == [("p", "rec", "invariant", True)]
    [result] = decision.invariants
    assert (result.id, result.policy, result.verified) == ("rec", "p", verdict)
    assert (result.error is None) == (verdict == "FAIL")


def test_invariant_passing(build) -> None:
    policies = build.policy_set(build.policy(invariants={"rec": "evidence.reconciled == true"}))
    decision = build.decide(policies, build.packet(evidence={"reconciled": True}), A2)
    assert decision.status == "executed"
    assert [(i.id, i.verified, i.claimed) for i in decision.invariants] == [("rec", "PASS", None)]


@pytest.mark.parametrize(
    ("autonomy", "status"), [(A0, "denied"), (A2, "denied"), (A3, "executed"), (A4, "executed")]
)
def test_policy_wide_min_autonomy(build, autonomy: Autonomy, status: str) -> None:
    policies = build.policy_set(build.policy(risk=L1, floors=[(A3, None)]))
    decision = build.decide(policies, build.packet(), autonomy)
    assert decision.status == status
    if status == "denied":
        assert _rules(decision) == [("p", "min_autonomy_1", "min_autonomy", True)]
        assert "A3" in decision.reasons[0].message


@pytest.mark.parametrize(("kind", "status"), [("policy", "denied"), ("copy", "executed")])
def test_conditional_min_autonomy(build, kind: str, status: str) -> None:
    policies = build.policy_set(build.policy(risk=L1, floors=[(A4, 'params.kind == "policy"')]))
    decision = build.decide(policies, build.packet(params={"kind": kind}), A3)
    assert decision.status == status


def test_min_autonomy_condition_not_evaluated_when_agent_is_high_enough(build) -> None:
    policies = build.policy_set(build.policy(risk=L1, floors=[(A3, "params.missing == 1")]))
    assert build.decide(policies, build.packet(), A4).status == "executed"


def test_violation_beats_approval_and_reports_every_rule(build) -> None:
    policies = build.policy_set(build.policy(
        risk=L1,
        invariants={"small": "params.amount < 10"},
        escalations=[(L2, "params.amount > 5")],
        denies=["params.amount > 50"],
        approvals=[("approver", 1, "params.amount > 5", None)],
    ))
    decision = build.decide(policies, build.packet(params={"amount": 100}), A2)
    assert decision.status == "denied"
    assert decision.approval is None
    assert decision.risk == L2
    assert [r.effect for r in decision.reasons] == ["invariant", "deny", "escalate", "approval"]


# -- shadow policies ------------------------------------------------------------------------


def test_shadow_policy_recorded_but_not_enforced(build) -> None:
    shadow = build.policy(
        "margin", mode="shadow", risk=L3,
        invariants={"margin_floor": "evidence.margin >= 0.15"},
        escalations=[(L3, "true")], denies=["true"],
        approvals=[("founder", 2, None, None)], floors=[(A4, None)],
    )
    policies = build.policy_set(build.policy("base", risk=L1), shadow)
    decision = build.decide(policies, build.packet(evidence={"margin": 0.1}), A2)
    assert decision.status == "executed"
    assert decision.risk == L1
    assert decision.approval is None
    assert _rules(decision) == [
        ("margin", "margin_floor", "invariant", False),
        ("margin", "deny_1", "deny", False),
        ("margin", "escalate_1", "escalate", False),
        ("margin", "approval_1", "approval", False),
        ("margin", "min_autonomy_1", "min_autonomy", False),
    ]
    assert [(i.id, i.verified, i.enforced) for i in decision.invariants] == [
        ("margin_floor", "FAIL", False)]


def test_shadow_evaluation_error_does_not_deny(build) -> None:
    shadow = build.policy("s", mode="shadow", denies=["params.missing > 1"])
    decision = build.decide(build.policy_set(build.policy(risk=L0), shadow), build.packet(), A2)
    assert decision.status == "executed"
    assert _rules(decision) == [("s", "deny_1", "error", False)]


def test_reasons_follow_policy_order(build) -> None:
    policies = build.policy_set(
        build.policy("first", risk=L1, escalations=[(L2, "true")]),
        build.policy("second", risk=None, approvals=[("finance", 1, None, None)]),
    )
    decision = build.decide(policies, build.packet(), A2)
    assert [(r.policy, r.rule) for r in decision.reasons] == [
        ("first", "escalate_1"), ("second", "approval_1"), ("warden", "autonomy_matrix")]
