"""Properties of the shipped policies that must hold for every input, not just the cases:
the thresholds are exactly where DESIGN.md puts them, and missing evidence never lets an action
through."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.model import Autonomy, Risk
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.models import Decision, Packet

NOW = datetime(2025, 6, 2, 12, tzinfo=UTC)
AUTONOMY = st.sampled_from([Autonomy.A1, Autonomy.A2, Autonomy.A3, Autonomy.A4])


def _decide(engine: Decider, tool: str, params: dict[str, Any], evidence: dict[str, Any],
            autonomy: Autonomy = Autonomy.A2) -> Decision:
    packet = Packet.model_validate({"packet_id": "p1", "agent": "prop",
                                    "action": {"tool": tool, "params": params},
                                    "evidence": evidence})
    return engine.decide(packet, Agent(name="prop", autonomy=autonomy), now=NOW, dry_run=True)


@settings(max_examples=200, deadline=None)
@given(amount=st.integers(min_value=1, max_value=2_000_000), autonomy=AUTONOMY)
def test_refund_thresholds(shipped_engine: Decider, amount: int, autonomy: Autonomy) -> None:
    decision = _decide(shipped_engine, "stripe.refund",
                       {"charge": "ch_1", "amount": amount, "currency": "usd"},
                       {"reconciled": True}, autonomy)
    if amount > 500_000:
        assert decision.status == "denied"
    elif amount > 50_000:
        assert (decision.status, decision.risk) == ("pending_approval", Risk.L2)
    elif autonomy == Autonomy.A1:
        assert (decision.status, decision.risk) == ("pending_approval", Risk.L1)
    else:
        assert (decision.status, decision.risk) == ("allowed", Risk.L1)


@settings(max_examples=300, deadline=None)
@given(old=st.integers(min_value=0, max_value=10_000_000),
       new=st.integers(min_value=1, max_value=10_000_000))
def test_price_change_needs_an_approver_exactly_beyond_20_percent(
    shipped_engine: Decider, old: int, new: int
) -> None:
    decision = _decide(shipped_engine, "shopify.update_price",
                       {"product_id": "p", "variant_id": "v", "old_price": old, "new_price": new,
                        "currency": "usd"}, {"projected_margin": 0.3})
    big = old == 0 or abs(Fraction(new - old, old)) > Fraction(1, 5)  # exact arithmetic
    assert decision.status == ("pending_approval" if big else "allowed")
    assert decision.risk == (Risk.L2 if big else Risk.L1)


@settings(max_examples=100, deadline=None)
@given(percent=st.one_of(st.integers(0, 100), st.floats(0, 100, allow_nan=False)),
       margin=st.floats(0, 1, allow_nan=False))
def test_discounts(shipped_engine: Decider, percent: float, margin: float) -> None:
    decision = _decide(shipped_engine, "shopify.create_discount",
                       {"code": "X", "percent_off": percent}, {"projected_margin": margin})
    allowed = percent <= 40 and margin >= 0.15
    assert decision.status == ("allowed" if allowed else "denied")


EVIDENCE_NEEDED = {
    "stripe.refund": {"charge": "ch_1", "amount": 100, "currency": "usd"},
    "stripe.transfer": {"destination": "acct_1", "amount": 100, "currency": "usd"},
    "stripe.payout": {"amount": 100, "currency": "usd"},
    "shopify.update_price": {"product_id": "p", "variant_id": "v", "old_price": 100,
                             "new_price": 101, "currency": "usd"},
    "shopify.create_discount": {"code": "X", "percent_off": 5},
    "shopify.adjust_inventory": {"variant_id": "v", "delta": 3, "unit_cost": 100,
                                 "currency": "usd"},
    "crm.send_business_case": {"deal_id": "d", "roi_multiple": 1.5, "payback_months": 6,
                               "assumptions": []},
}
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8))


@settings(max_examples=150, deadline=None)
@given(tool=st.sampled_from(sorted(EVIDENCE_NEEDED)), autonomy=AUTONOMY,
       junk=st.dictionaries(st.sampled_from(["unrelated", "notes", "score"]), JSON_SCALARS,
                            max_size=3))
def test_missing_evidence_never_lets_an_action_through(
    shipped_engine: Decider, tool: str, autonomy: Autonomy, junk: dict[str, Any]
) -> None:
    decision = _decide(shipped_engine, tool, EVIDENCE_NEEDED[tool], junk, autonomy)
    assert decision.status == "denied"
    assert any(i.verified == "ERROR" for i in decision.invariants if i.enforced)


@settings(max_examples=100, deadline=None)
@given(count=st.integers(min_value=1, max_value=300),
       autonomy=st.sampled_from(list(Autonomy)))
def test_contact_deletion_tiers(shipped_engine: Decider, count: int, autonomy: Autonomy) -> None:
    ids = [f"c_{i}" for i in range(count)]
    decision = _decide(shipped_engine, "crm.delete_contact", {"contact_ids": ids}, {}, autonomy)
    assert decision.risk == (Risk.L3 if count > 100 else Risk.L2)
    if count > 100 and autonomy < Autonomy.A3:
        assert decision.status == "denied"
    elif autonomy == Autonomy.A0:
        assert decision.status == "drafted"
    else:
        assert decision.status == "pending_approval"
        assert decision.approval is not None
        assert decision.approval.required_role == ("founder" if count > 100 else "approver")
