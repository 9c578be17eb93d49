"""The autonomy x risk matrix of DESIGN.md, cell by cell, reached by base tier and by escalation."""

from __future__ import annotations

import pytest

from dsl.model import Autonomy, Risk

A0, A1, A2, A3, A4 = Autonomy
L0, L1, L2, L3 = Risk
EXECUTE, APPROVAL, FOUNDER, DRAFT = "execute", "approval", "founder", "draft"

# DESIGN.md, "Risk tiers and autonomy levels", as written there.
MATRIX = {
    A0: {L0: DRAFT, L1: DRAFT, L2: DRAFT, L3: DRAFT},
    A1: {L0: EXECUTE, L1: APPROVAL, L2: APPROVAL, L3: FOUNDER},
    A2: {L0: EXECUTE, L1: EXECUTE, L2: APPROVAL, L3: FOUNDER},
    A3: {L0: EXECUTE, L1: EXECUTE, L2: APPROVAL, L3: FOUNDER},
    A4: {L0: EXECUTE, L1: EXECUTE, L2: APPROVAL, L3: FOUNDER},
}
CELLS = [(a, r) for a in Autonomy for r in Risk]


def _expected_status(cell: str, dry_run: bool) -> str:
    return {
        EXECUTE: "allowed" if dry_run else "executed",
        APPROVAL: "pending_approval",
        FOUNDER: "pending_approval",
        DRAFT: "drafted",
    }[cell]


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry_run"])
@pytest.mark.parametrize(("autonomy", "risk"), CELLS, ids=[f"{a}-{r}" for a, r in CELLS])
def test_base_tier_cell(build, autonomy: Autonomy, risk: Risk, dry_run: bool) -> None:
    policies = build.policy_set(build.policy(risk=risk))
    decision = build.decide(policies, build.packet(), autonomy, dry_run=dry_run)
    cell = MATRIX[autonomy][risk]
    assert decision.status == _expected_status(cell, dry_run)
    assert decision.risk == risk
    assert decision.autonomy == autonomy
    if cell in (APPROVAL, FOUNDER):
        assert decision.approval is not None
        assert decision.approval.required_role == ("founder" if cell == FOUNDER else "approver")
        assert decision.approval.count == 1
        assert [r.rule for r in decision.reasons] == ["autonomy_matrix"]
    else:
        assert decision.approval is None
        assert decision.reasons == []


@pytest.mark.parametrize(("autonomy", "risk"), CELLS, ids=[f"{a}-{r}" for a, r in CELLS])
def test_escalated_cell(build, autonomy: Autonomy, risk: Risk) -> None:
    """An escalation lands in the same cell as a base tier: risk is the max of both."""
    policies = build.policy_set(
        build.policy(risk=L0, escalations=[(risk, "params.amount > 100")])
    )
    decision = build.decide(policies, build.packet(params={"amount": 101}), autonomy)
    assert decision.risk == risk
    assert decision.status == _expected_status(MATRIX[autonomy][risk], dry_run=False)
    assert ("p", "escalate_1", "escalate") in [(r.policy, r.rule, r.effect)
                                               for r in decision.reasons]


def test_escalation_not_firing_keeps_base(build) -> None:
    policies = build.policy_set(build.policy(risk=L1, escalations=[(L3, "params.amount > 100")]))
    decision = build.decide(policies, build.packet(params={"amount": 100}), A2)
    assert (decision.risk, decision.status, decision.reasons) == (L1, "executed", [])


def test_escalation_never_lowers_risk(build) -> None:
    policies = build.policy_set(build.policy(risk=L2, escalations=[(L1, "true")]))
    decision = build.decide(policies, build.packet(), A2)
    assert decision.risk == L2
    assert decision.status == "pending_approval"


def test_risk_is_max_of_enforced_base_tiers(build) -> None:
    policies = build.policy_set(
        build.policy("a", risk=L1),
        build.policy("b", risk=L2, tools=["stripe.*"]),
        build.policy("c", risk=None),
    )
    assert build.decide(policies, build.packet(), A3).risk == L2


def test_dry_run_only_changes_executed(build) -> None:
    policies = build.policy_set(build.policy(risk=L2))
    real = build.decide(policies, build.packet(), A2)
    dry = build.decide(policies, build.packet(), A2, dry_run=True)
    assert real == dry
