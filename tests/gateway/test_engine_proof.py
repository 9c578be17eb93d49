"""The proof check: the agent's claims about invariants against Warden's own verdicts."""

from __future__ import annotations

import pytest

from dsl.model import Autonomy, Risk

A2 = Autonomy.A2
INVARIANT = {"rec": "evidence.reconciled == true"}
HOLDS, FAILS, ERRS = {"reconciled": True}, {"reconciled": False}, {}


def _decide(build, evidence, claims, mode: str = "enforce"):
    policies = build.policy_set(build.policy("base", risk=Risk.L1),
                                build.policy("refunds", risk=None, mode=mode, invariants=INVARIANT))
    return build.decide(policies, build.packet(evidence=evidence, claims=claims), A2)


@pytest.mark.parametrize(("evidence", "verified", "said"), [
    (FAILS, "FAIL", "the invariant does not hold: the claim is false"),
    (ERRS, "ERROR", "Warden could not evaluate the invariant (")])
def test_claimed_pass_verified_not_pass_denies_and_flags(build, evidence, verified, said) -> None:
    decision = _decide(build, evidence, {"rec": "PASS"})
    assert decision.status == "denied"
    assert decision.flags == ["proof_mismatch"]
    [result] = decision.invariants
    assert (result.verified, result.claimed, result.mismatch) == (
        verified, "PASS", "claimed_pass_verified_fail")
    assert [(r.rule, r.effect) for r in decision.reasons] == [
        ("rec", "invariant"), ("rec", "proof_mismatch")]
    assert decision.reasons[1].message.startswith("the agent claimed PASS, but ")
    assert said in decision.reasons[1].message


@pytest.mark.parametrize("claimed", ["FAIL", "ERROR"])
def test_claimed_not_pass_verified_pass_flags_and_follows_warden(build, claimed) -> None:
    decision = _decide(build, HOLDS, {"rec": claimed})
    assert decision.status == "executed"
    assert decision.flags == ["proof_mismatch"]
    [result] = decision.invariants
    assert (result.verified, result.claimed, result.mismatch) == (
        "PASS", claimed, "claimed_fail_verified_pass")
    [reason] = decision.reasons
    assert (reason.rule, reason.effect, reason.enforced) == ("rec", "proof_mismatch", True)


@pytest.mark.parametrize(
    ("evidence", "claimed"),
    [(HOLDS, "PASS"), (FAILS, "FAIL"), (FAILS, "ERROR"), (ERRS, "FAIL"), (ERRS, "ERROR")],
)
def test_agreeing_claims_raise_no_flag(build, evidence, claimed) -> None:
    decision = _decide(build, evidence, {"rec": claimed})
    assert decision.flags == []
    assert decision.invariants[0].mismatch is None
    assert decision.invariants[0].claimed == claimed
    assert "proof_mismatch" not in [r.effect for r in decision.reasons]


def test_unclaimed_invariant_is_still_checked(build) -> None:
    decision = _decide(build, FAILS, {})
    assert decision.status == "denied"
    assert decision.invariants[0].claimed is None
    assert decision.flags == []


def test_unknown_claims_are_recorded_and_ignored(build) -> None:
    decision = _decide(build, HOLDS, {"rec": "PASS", "made_up": "FAIL", "other": "PASS"})
    assert decision.status == "executed"
    assert decision.unknown_claims == ["made_up", "other"]
    assert decision.flags == []
    assert [i.id for i in decision.invariants] == ["rec"]


def test_claim_for_an_invariant_of_another_tool_is_unknown(build) -> None:
    policies = build.policy_set(
        build.policy("refunds", risk=Risk.L1),
        build.policy("payouts", tools=["stripe.payout"], risk=Risk.L3, invariants=INVARIANT),
    )
    decision = build.decide(policies, build.packet(claims={"rec": "PASS"}), A2)
    assert decision.status == "executed"
    assert decision.unknown_claims == ["rec"]


def test_shadow_invariant_mismatch_recorded_without_flag(build) -> None:
    decision = _decide(build, FAILS, {"rec": "PASS"}, mode="shadow")
    assert decision.status == "executed"
    assert decision.flags == []
    assert decision.unknown_claims == []
    assert decision.invariants[0].mismatch == "claimed_pass_verified_fail"
    assert [(r.effect, r.enforced) for r in decision.reasons] == [
        ("invariant", False), ("proof_mismatch", False)]
