"""Approval obligations: role, count, expiry, founder for L3, two-person rules."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dsl.model import DEFAULT_APPROVAL_EXPIRY, Autonomy, Risk

A0, A1, A2, A3, A4 = Autonomy
L0, L1, L2, L3 = Risk
H = timedelta(hours=1)


def _obligation(build, risk: Risk, approvals, autonomy: Autonomy = A2):
    policies = build.policy_set(build.policy(risk=risk, approvals=approvals))
    decision = build.decide(policies, build.packet(params={"amount": 10}), autonomy)
    assert decision.status == "pending_approval"
    assert decision.approval is not None
    assert decision.approval.approvals == []
    return decision.approval


def test_rule_forces_approval_below_the_matrix(build) -> None:
    """An L0 action that A2 would execute waits once a `require approval` rule fires."""
    approval = _obligation(build, L0, [("approver", 1, "params.amount > 5", None)])
    assert (approval.required_role, approval.count) == ("approver", 1)


def test_rule_not_firing_leaves_matrix_alone(build) -> None:
    policies = build.policy_set(build.policy(risk=L0,
                                             approvals=[("approver", 1, "params.amount > 50", None)]))
    decision = build.decide(policies, build.packet(params={"amount": 10}), A2)
    assert decision.status == "executed" and decision.approval is None


def test_unconditional_rule_always_fires(build) -> None:
    approval = _obligation(build, L1, [("finance", 1, None, None)])
    assert approval.required_role == "finance"


def test_default_expiry_is_24h(build) -> None:
    approval = _obligation(build, L2, [])
    assert approval.expires_at == build.now + DEFAULT_APPROVAL_EXPIRY
    assert (approval.required_role, approval.count) == ("approver", 1)


def test_expiry_is_the_shortest_of_fired_rules(build) -> None:
    approval = _obligation(build, L1, [
        ("approver", 1, None, 4 * H),
        ("approver", 1, None, 2 * H),
        ("approver", 1, "params.amount > 1000", 1 * H),  # not fired: does not count
    ])
    assert approval.expires_at == build.now + 2 * H


def test_rule_without_expiry_counts_as_default(build) -> None:
    approval = _obligation(build, L1, [("approver", 1, None, None), ("approver", 1, None, 48 * H)])
    assert approval.expires_at == build.now + DEFAULT_APPROVAL_EXPIRY


def test_expiry_is_utc(build) -> None:
    assert _obligation(build, L2, []).expires_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("autonomy", [A1, A2, A3, A4])
def test_l3_always_needs_a_founder(build, autonomy: Autonomy) -> None:
    approval = _obligation(build, L3, [("approver", 1, None, None)], autonomy)
    assert approval.required_role == "founder"


def test_founder_rule_wins_below_l3(build) -> None:
    approval = _obligation(build, L1, [("finance", 3, None, None), ("founder", 1, None, None)])
    assert (approval.required_role, approval.count) == ("founder", 3)


def test_two_person_rule(build) -> None:
    approval = _obligation(build, L3, [("founder", 2, "params.amount > 5", None)])
    assert (approval.required_role, approval.count) == ("founder", 2)


def test_role_of_the_rule_with_highest_count(build) -> None:
    approval = _obligation(build, L2, [("approver", 1, None, None), ("finance", 2, None, None)])
    assert (approval.required_role, approval.count) == ("finance", 2)


def test_role_tie_goes_to_the_first_rule(build) -> None:
    approval = _obligation(build, L2, [("finance", 2, None, None), ("approver", 2, None, None)])
    assert (approval.required_role, approval.count) == ("finance", 2)


def test_rules_from_several_policies_combine(build) -> None:
    policies = build.policy_set(
        build.policy("a", risk=L1, approvals=[("finance", 1, None, 3 * H)]),
        build.policy("b", risk=None, approvals=[("approver", 2, None, 6 * H)]),
    )
    approval = build.decide(policies, build.packet(), A2).approval
    assert approval is not None
    assert (approval.required_role, approval.count) == ("approver", 2)
    assert approval.expires_at == build.now + 3 * H


def test_matrix_approval_for_a1_on_l1(build) -> None:
    approval = _obligation(build, L1, [], A1)
    assert (approval.required_role, approval.count) == ("approver", 1)


def test_shadow_approval_rule_neither_forces_nor_shapes_approval(build) -> None:
    policies = build.policy_set(
        build.policy("a", risk=L2),
        build.policy("s", mode="shadow", risk=None, approvals=[("founder", 3, None, H)]),
    )
    decision = build.decide(policies, build.packet(), A2)
    assert decision.approval is not None
    assert (decision.approval.required_role, decision.approval.count) == ("approver", 1)
    assert decision.approval.expires_at == build.now + DEFAULT_APPROVAL_EXPIRY
    policies = build.policy_set(
        build.policy("a", risk=L0),
        build.policy("s", mode="shadow", risk=None, approvals=[("founder", 3, None, H)]),
    )
    assert build.decide(policies, build.packet(), A2).status == "executed"


def test_approval_reason_names_rule_and_role(build) -> None:
    policies = build.policy_set(build.policy(risk=L1, approvals=[("finance", 2, None, None)]))
    decision = build.decide(policies, build.packet(), A2)
    [reason] = decision.reasons
    assert (reason.policy, reason.rule, reason.effect) == ("p", "approval_1", "approval")
    assert "finance" in reason.message and "2" in reason.message


def test_naive_now_is_taken_as_utc(build) -> None:
    from gateway.engine.decider import Decider

    policies = build.policy_set(build.policy(risk=L2))
    naive = build.now.replace(tzinfo=None)
    decision = Decider(policies).decide(build.packet(), build.agent(A2), now=naive)
    assert decision.approval is not None
    assert decision.approval.expires_at == build.now + DEFAULT_APPROVAL_EXPIRY
