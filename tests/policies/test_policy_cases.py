"""Every shipped policy test case, run through the engine: one pytest case per policy case.

Beside the cases themselves, the suite checks that they cover what they must: every rule of
every shipped policy fires in some case, and every status, risk tier and autonomy level occurs.
"""

from __future__ import annotations

from collections import Counter

import pytest

from dsl.model import Autonomy, PolicySet, Risk
from gateway.engine.decider import Decider
from gateway.engine.cases import PolicyCase, load_cases, run_case
from gateway.config import SHIPPED_POLICY_DIR

CASES = load_cases(SHIPPED_POLICY_DIR / "tests")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_shipped_policy_case(shipped_engine: Decider, case: PolicyCase) -> None:
    result = run_case(shipped_engine, case)
    assert result.passed, f"{case.file.name}: {case.name}\n" + "\n".join(result.failures)


def test_there_are_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50
    assert len({c.name for c in CASES}) == len(CASES)


def _fired(shipped_engine: Decider) -> set[str]:
    fired: set[str] = set()
    for case in CASES:
        decision = run_case(shipped_engine, case).decision
        fired |= {f"{r.policy}.{r.rule}" for r in decision.reasons}
    return fired


def test_every_rule_of_every_shipped_policy_fires_in_some_case(
    shipped_policy_set: PolicySet, shipped_engine: Decider
) -> None:
    rules = {
        f"{p.name}.{rule.name}"
        for p in shipped_policy_set.policies
        for rule in (*p.invariants, *p.escalations, *p.denies, *p.approvals, *p.autonomy_rules)
    }
    assert rules, "the shipped policies have no rules"
    never_fired = rules - _fired(shipped_engine)
    assert not never_fired, f"rules no policy test exercises: {sorted(never_fired)}"


def test_every_catalog_tool_is_covered(shipped_policy_set: PolicySet) -> None:
    catalog = {
        "stripe.refund": Risk.L1, "stripe.transfer": Risk.L2, "stripe.payout": Risk.L3,
        "shopify.update_price": Risk.L1, "shopify.publish_listing": Risk.L1,
        "shopify.create_discount": Risk.L1, "shopify.adjust_inventory": Risk.L1,
        "crm.log_note": Risk.L0, "crm.upsert_contact": Risk.L1, "crm.update_deal_stage": Risk.L1,
        "crm.delete_contact": Risk.L2, "crm.send_business_case": Risk.L1,
    }
    for tool, tier in catalog.items():
        tiers = [p.risk for p in shipped_policy_set.policies_for(tool)
                 if p.enforced and p.risk is not None]
        assert tiers and max(tiers) == tier, tool
    tested = {c.packet.action.tool for c in CASES}
    assert set(catalog) <= tested


def test_cases_span_statuses_tiers_and_autonomy_levels() -> None:
    statuses = Counter(c.expect.status for c in CASES)
    assert {"allowed", "pending_approval", "denied", "drafted"} <= set(statuses)
    assert {c.expect.risk for c in CASES if c.expect.risk is not None} == set(Risk)
    assert {c.agent.autonomy for c in CASES} == set(Autonomy)
    assert any(c.expect.shadow for c in CASES), "no case checks a shadow policy"
    flagged = [c for c in CASES if c.expect.flags and "proof_mismatch" in c.expect.flags]
    claims = {ch.status for c in flagged for ch in c.packet.proof.invariant_checks}
    assert {"PASS", "FAIL"} <= claims, "both proof-mismatch directions must be tested"
