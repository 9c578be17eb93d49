"""Pruned activations in the engine: per-tool needs, and decisions identical to whole packets."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import compile_policy_dir
from dsl.model import Autonomy, Risk
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.models import Packet
from gateway.config import SHIPPED_POLICY_DIR

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
SHIPPED = compile_policy_dir(SHIPPED_POLICY_DIR)
PRUNED, WHOLE = Decider(SHIPPED), Decider(SHIPPED, prune=False)

TOOLS = sorted({t for p in SHIPPED.policies for t in p.applies_to.patterns if "*" not in t})
#: Every top-level field a shipped expression reads, so random packets reach the thresholds.
FIELDS = sorted({field for tool in TOOLS for fields in PRUNED.needs_for(tool).reads.values()
                 if fields is not None for field in fields})
INVARIANTS = sorted({i.name for p in SHIPPED.policies for i in p.invariants})


def test_needs_are_the_union_over_enforced_and_shadow_policies(build: Any) -> None:
    enforced = build.policy(invariants={"ok": "evidence.reconciled == true"},
                            denies=["params.amount > 10"])
    shadow = build.policy("trial", mode="shadow", risk=None,
                          escalations=[(Risk.L2, "params.currency != 'usd'")],
                          floors=[(Autonomy.A4, "has(context.goal)")])
    engine = Decider(build.policy_set(enforced, shadow))
    needs = engine.needs_for("stripe.refund")
    assert needs is not None
    assert needs.reads == {"evidence": frozenset({"reconciled"}),
                           "params": frozenset({"amount", "currency"}),
                           "context": frozenset({"goal"})}
    assert engine.needs_for("stripe.refund") is needs  # worked out once per tool
    assert Decider(build.policy_set(enforced), prune=False).needs_for("stripe.refund") is None


def test_a_shadow_policy_sees_the_fields_it_reads(build: Any) -> None:
    shadow = build.policy("trial", mode="shadow", risk=None, denies=["params.currency == 'eur'"])
    policy_set = build.policy_set(build.policy(denies=["params.amount > 10"]), shadow)
    packet = build.packet(params={"amount": 1, "currency": "eur"})
    decision = Decider(policy_set).decide(packet, build.agent(), now=NOW, dry_run=True)
    assert decision.status == "allowed"
    assert [(r.policy, r.rule, r.enforced) for r in decision.reasons] == [("trial", "deny_1", False)]


def test_limits_still_cover_fields_no_policy_reads(build: Any) -> None:
    policy_set = build.policy_set(build.policy(denies=["params.amount > 10"]))
    packet = build.packet(params={"amount": 1}, context={"unread": list(range(1001))})
    decision = Decider(policy_set).decide(packet, build.agent(), now=NOW)
    assert decision.status == "denied"
    assert [r.rule for r in decision.reasons] == ["packet_limits"]


SCALARS = (
    st.none() | st.booleans()
    | st.integers(-10, 2_000_000) | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(-1, 400, allow_nan=False) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "usd", "matched", "pending", "policy", "cures guaranteed results",
                       "card 4111 1111 1111 1111", "2024-01-01T00:00:00Z", "1h"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["status", "amount", "a"]), inner, max_size=1),
    max_leaves=12,
)
OBJECTS = st.dictionaries(st.sampled_from([*FIELDS, "extra", "note"]), VALUES, max_size=8)


#: Realistic packets across the catalog, from the decision benchmark, to mutate.
BENCH_PACKETS = [entry["packet"] for entry in json.loads(
    (Path(__file__).resolve().parents[2] / "bench" / "packets" / "decide.json").read_text())]


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A benchmark packet with a few fields replaced, added or removed."""
    document = copy.deepcopy(draw(st.sampled_from(BENCH_PACKETS)))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["params", "evidence", "context"]))
        target = document["action"]["params"] if where == "params" else document.setdefault(where, {})
        if target and draw(st.booleans()):
            target.pop(draw(st.sampled_from(sorted(target))))
        else:
            target[draw(st.sampled_from([*FIELDS, "extra"]))] = draw(VALUES)
    return document


@st.composite
def packets(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return draw(mutated())
    claims = draw(st.dictionaries(st.sampled_from([*INVARIANTS, "not_an_invariant"]),
                                  st.sampled_from(["PASS", "FAIL", "ERROR"]), max_size=3))
    return {
        "packet_id": "pkt-1",
        "agent": "bot",
        "action": {"tool": draw(st.sampled_from([*TOOLS, "unknown.tool"])),
                   "params": draw(OBJECTS)},
        "evidence": draw(OBJECTS),
        "proof": {"invariant_checks": [{"id": k, "status": v} for k, v in claims.items()]},
        "context": draw(OBJECTS),
    }


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(document=packets(), autonomy=st.sampled_from(list(Autonomy)), dry_run=st.booleans())
def test_pruned_decisions_equal_whole_packet_decisions(
    document: dict[str, Any], autonomy: Autonomy, dry_run: bool
) -> None:
    packet = Packet.model_validate(document)
    agent = Agent(name="bot", autonomy=autonomy, owner="owner@x", tools=("*",))
    pruned = PRUNED.decide(packet, agent, now=NOW, dry_run=dry_run)
    whole = WHOLE.decide(packet, agent, now=NOW, dry_run=dry_run)
    assert pruned.model_dump(mode="json") == whole.model_dump(mode="json")
    assert not any(r.rule == "internal_error" for r in pruned.reasons)


def test_the_shipped_needs_are_field_by_field() -> None:
    """Every shipped policy reads fields, never a whole root: pruning applies to all tools."""
    for tool in TOOLS:
        needs = PRUNED.needs_for(tool)
        assert needs is not None
        assert all(fields is not None for fields in needs.reads.values()), (tool, needs)
