"""What must hold for every policy set, packet and agent (hypothesis).

Policy sets are generated as data (`dsl.model` dataclasses) with simple CEL conditions over
`params.x`, `params.y` and `evidence.e`; a few read a field no packet has or are not boolean,
so evaluation errors are part of the search space.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.model import (
    ApprovalRule,
    Autonomy,
    AutonomyRule,
    DenyRule,
    Escalation,
    Invariant,
    Policy,
    Risk,
)

TOOL = "t.act"
EXECUTES = frozenset({"executed", "allowed"})

numbers = st.integers(-5, 5)
sound_conditions = st.one_of(
    st.builds("params.x > {}".format, numbers),
    st.builds("params.y < {}".format, numbers),
    st.builds("evidence.e != {}".format, numbers),
    st.sampled_from(["true", "false"]),
)
# A missing field, a non-boolean value: rare, so that most examples get past evaluation.
broken_conditions = st.sampled_from(["params.missing > 0", "params.x", "evidence.nope == 1"])
conditions = st.integers(0, 19).flatmap(
    lambda k: broken_conditions if k == 0 else sound_conditions
)
tiers = st.sampled_from(list(Risk))
levels = st.sampled_from(list(Autonomy))
expiries = st.none() | st.sampled_from([timedelta(hours=h) for h in (1, 4, 24, 48)])

rule_specs = st.one_of(
    st.tuples(st.just("invariant"), conditions),
    st.tuples(st.just("deny"), conditions),
    st.tuples(st.just("escalate"), tiers, conditions),
    st.tuples(st.just("approval"), st.sampled_from(["approver", "founder", "finance"]),
              st.integers(1, 3), st.none() | conditions, expiries),
    st.tuples(st.just("floor"), levels, st.none() | conditions),
)
policy_specs = st.fixed_dictionaries({
    "mode": st.sampled_from(["enforce", "enforce", "shadow"]),
    "risk": st.none() | tiers,
    "tool": st.sampled_from([TOOL, TOOL, "t.other"]),
    "rules": st.lists(rule_specs, max_size=4),
})
# The first policy is usually an enforced one giving the tool a tier, so that most examples
# reach the rules instead of stopping at `unknown_tool`.
anchor_specs = st.fixed_dictionaries({
    "mode": st.just("enforce"),
    "risk": st.integers(0, 9).flatmap(lambda k: st.none() if k == 0 else tiers),
    "tool": st.just(TOOL),
    "rules": st.lists(rule_specs, max_size=4),
})
set_specs = st.builds(lambda first, rest: [first, *rest], anchor_specs,
                      st.lists(policy_specs, max_size=3))
packets = st.fixed_dictionaries(
    {"x": numbers, "y": numbers, "e": numbers},
    optional={"claims": st.dictionaries(
        st.sampled_from(["inv_0_0", "inv_0_1", "inv_1_0", "nope"]),
        st.sampled_from(["PASS", "FAIL", "ERROR"]), max_size=3)},
)


def _with_rule(build: Any, policy: Policy, spec: tuple, tag: str) -> Policy:
    """`policy` with one more rule, made from a generated spec; names are unique via `tag`."""
    kind = spec[0]
    span = policy.span
    if kind == "invariant":
        rule = Invariant(f"inv_{tag}", None, build.expr(spec[1]), span)
        return replace(policy, invariants=policy.invariants + (rule,))
    if kind == "deny":
        deny = DenyRule(f"deny_{tag}", build.expr(spec[1]), "generated", span)
        return replace(policy, denies=policy.denies + (deny,))
    if kind == "escalate":
        esc = Escalation(f"escalate_{tag}", spec[1], build.expr(spec[2]), "generated", span)
        return replace(policy, escalations=policy.escalations + (esc,))
    if kind == "approval":
        _, role, count, cond, expiry = spec
        approval = ApprovalRule(f"approval_{tag}", role, count,
                                None if cond is None else build.expr(cond), expiry, span)
        return replace(policy, approvals=policy.approvals + (approval,))
    _, level, cond = spec
    floor = AutonomyRule(f"min_autonomy_{tag}", level,
                         None if cond is None else build.expr(cond), None, span)
    return replace(policy, autonomy_rules=policy.autonomy_rules + (floor,))


def _policy(build: Any, index: int, spec: dict[str, Any]) -> Policy:
    policy = build.policy(f"p{index}", tools=[spec["tool"]], risk=spec["risk"], mode=spec["mode"])
    for n, rule in enumerate(spec["rules"]):
        policy = _with_rule(build, policy, rule, f"{index}_{n}")
    return policy


def _policies(build: Any, specs: list[dict[str, Any]]) -> list[Policy]:
    return [_policy(build, i, spec) for i, spec in enumerate(specs)]


def _decide(build: Any, policies: list[Policy], data: dict[str, Any], autonomy: Autonomy,
            dry_run: bool = False):
    packet = build.packet(TOOL, {"x": data["x"], "y": data["y"]}, evidence={"e": data["e"]},
                          claims=data.get("claims"))
    return build.decide(build.policy_set(*policies), packet, autonomy, dry_run=dry_run)


@settings(max_examples=300)
@given(specs=set_specs, data=packets, autonomy=levels, dry_run=st.booleans())
def test_never_executes_l2_or_l3_nor_at_a0(build, specs, data, autonomy, dry_run) -> None:
    decision = _decide(build, _policies(build, specs), data, autonomy, dry_run)
    if decision.status in EXECUTES:
        assert decision.risk <= Risk.L1
        assert autonomy >= Autonomy.A1
        assert decision.approval is None and not decision.violations
        assert autonomy >= Autonomy.A2 or decision.risk == Risk.L0
    if decision.risk >= Risk.L2:
        assert decision.status not in EXECUTES


@given(specs=set_specs, data=packets, autonomy=levels)
def test_status_is_consistent_with_reasons(build, specs, data, autonomy) -> None:
    decision = _decide(build, _policies(build, specs), data, autonomy)
    assert (decision.status == "denied") == bool(decision.violations)
    assert (decision.status == "pending_approval") == (decision.approval is not None)
    if decision.approval is not None and decision.risk == Risk.L3:
        assert decision.approval.required_role == "founder"


@given(specs=set_specs, data=packets, autonomy=levels)
def test_dry_run_differs_only_in_executed(build, specs, data, autonomy) -> None:
    policies = _policies(build, specs)
    real = _decide(build, policies, data, autonomy)
    dry = _decide(build, policies, data, autonomy, dry_run=True)
    assert real.model_copy(update={"status": dry.status}) == dry
    assert (real.status, dry.status) in {("executed", "allowed")} or real.status == dry.status


@given(specs=set_specs, data=packets, autonomy=levels, target=st.integers(0, 4),
       rule=st.one_of(st.tuples(st.just("deny"), conditions),
                      st.tuples(st.just("invariant"), conditions)))
def test_deny_or_invariant_never_allows_more(build, specs, data, autonomy, target, rule) -> None:
    policies = _policies(build, specs)
    before = _decide(build, policies, data, autonomy)
    policies[target % len(policies)] = _with_rule(build, policies[target % len(policies)], rule,
                                                  "added")
    after = _decide(build, policies, data, autonomy)
    if before.status not in EXECUTES:
        assert after.status not in EXECUTES
    if before.status == "denied":
        assert after.status == "denied"


@given(specs=set_specs, data=packets, autonomy=levels, target=st.integers(0, 4), rule=rule_specs)
def test_adding_a_rule_never_lowers_risk_or_lifts_a_denial(build, specs, data, autonomy, target,
                                                          rule) -> None:
    policies = _policies(build, specs)
    before = _decide(build, policies, data, autonomy)
    policies[target % len(policies)] = _with_rule(build, policies[target % len(policies)], rule,
                                                  "added")
    after = _decide(build, policies, data, autonomy)
    assert after.risk >= before.risk
    if before.status == "denied":
        assert after.status == "denied"


@given(specs=set_specs, data=packets, autonomy=levels, target=st.integers(0, 4),
       kind=st.sampled_from(["invariant", "deny", "escalate", "approval", "floor"]))
def test_any_evaluation_error_denies(build, specs, data, autonomy, target, kind) -> None:
    policies = _policies(build, specs)
    index = target % len(policies)
    policies[index] = replace(policies[index], mode="enforce")
    broken = "params.missing > 0"
    rule = {
        "invariant": ("invariant", broken),
        "deny": ("deny", broken),
        "escalate": ("escalate", Risk.L1, broken),
        "approval": ("approval", "approver", 1, broken, None),
        "floor": ("floor", Autonomy.A4, broken),
    }[kind]
    policies[index] = _with_rule(build, policies[index], rule, "broken")
    decision = _decide(build, policies, data, autonomy)
    if policies[index].applies_to.matches(TOOL) and (kind != "floor" or autonomy < Autonomy.A4):
        assert decision.status == "denied"
        assert decision.violations


@settings(max_examples=150)
@given(specs=set_specs, shadow=policy_specs, data=packets, autonomy=levels,
       position=st.integers(0, 4))
def test_shadow_policy_changes_neither_status_nor_risk(build, specs, shadow, data, autonomy,
                                                      position) -> None:
    policies = _policies(build, specs)
    before = _decide(build, policies, data, autonomy)
    extra = _policy(build, 9, {**shadow, "mode": "shadow", "tool": TOOL})
    policies.insert(position % (len(policies) + 1), extra)
    after = _decide(build, policies, data, autonomy)
    assert (after.status, after.risk, after.approval) == (before.status, before.risk,
                                                          before.approval)
    assert after.flags == before.flags
    enforced_after = [r for r in after.reasons if r.enforced]
    assert enforced_after == [r for r in before.reasons if r.enforced]
