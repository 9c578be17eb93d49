"""Generated policy sets: the analysis agrees with the engine tried value by value.

Hypothesis writes a refund policy with an escalation band and a cap, each bound strict or not,
at thresholds it picks; the gaps question must find a one-value hole exactly when the engine,
tried at every amount around the thresholds and every autonomy, shows one.
"""

from __future__ import annotations

from analysis_support import NOW_AGENT, check_witness, policies
from hypothesis import event, given, settings
from hypothesis import strategies as st

from dsl.model import Autonomy
from gateway.analysis.questions import Analysis
from gateway.analysis.search import NOW
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.models import Packet

RANK = {"executed": 0, "pending_approval": 1, "denied": 2}


def _decide(engine: Decider, amount: int, autonomy: Autonomy) -> tuple[int, set[str]]:
    packet = Packet.model_validate({
        "packet_id": "p", "agent": NOW_AGENT, "evidence": {},
        "action": {"tool": "stripe.refund",
                   "params": {"charge": "ch_1", "amount": amount, "currency": "usd"}}})
    decision = engine.decide(packet, Agent(name=NOW_AGENT, autonomy=autonomy), now=NOW)
    fired = {f"{r.policy}.{r.rule}" for r in decision.reasons if r.policy != "warden"}
    return RANK[decision.status], fired


def _brute_force_hole(engine: Decider, points: list[int]) -> bool:
    for amount in points:
        if amount < 2:
            continue
        for autonomy in (Autonomy.A1, Autonomy.A2):
            (low, low_rules), (mid, _), (high, high_rules) = (
                _decide(engine, a, autonomy) for a in (amount - 1, amount, amount + 1))
            if mid < low and mid < high and not low_rules & high_rules:
                return True
    return False


@settings(max_examples=30, deadline=None)
@given(band_low=st.integers(1, 1000), width=st.integers(0, 3), cap_gap=st.integers(-2, 3),
       strict=st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_holes_found_are_the_engines(band_low: int, width: int, cap_gap: int,
                                     strict: tuple[bool, bool, bool]) -> None:
    band_high = band_low + width + 2
    cap = band_high + cap_gap
    gt, lt, over = (">" if strict[0] else ">="), ("<" if strict[1] else "<="), (
        ">" if strict[2] else ">=")
    policy_set = policies(f'''
policy refunds {{
  applies to tool "stripe.refund"
  risk L0
  escalate band L2 when params.amount {gt} {band_low} && params.amount {lt} {band_high}
    because "band"
  deny cap when params.amount {over} {cap} because "cap"
}}
''')
    analysis = Analysis(policy_set, catalog_tools=["stripe.refund"])
    answer = analysis.answer("gaps")
    found = [f for f in answer.findings if f.subject == "stripe.refund params.amount"]
    points = sorted({p + d for p in (band_low, band_high, cap) for d in range(-3, 4)})
    event(f"hole: {bool(found)}")
    assert bool(found) == _brute_force_hole(Decider(policy_set), points)
    for finding in found:
        for witness in finding.witnesses:
            check_witness(policy_set, witness)
