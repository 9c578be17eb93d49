"""Every construct of the policy language compiles into the model it describes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dsl import PolicyCompileError, compile_sources
from dsl.model import Autonomy, Policy, PolicySet, Risk, Span

FULL = '''\
# roles other than the built-in ones are declared at top level
role finance "Finance team"
role legal

policy refunds "Refunds back to customers" {
  applies to tool "stripe.refund"
  risk L1
  mode shadow

  invariant refund_reconciled "the order is reconciled before any refund"
    : evidence.reconciled == true
  invariant has_amount : has(params.amount)

  escalate large_refund L2 when params.amount > 50000 because "refunds over $500 need an approver"
  escalate L3 when params.amount > 400000 because "founder"
  deny hard_cap when params.amount > 500000 because "refunds over $5,000 are never automated"
  deny when params.currency != "usd" because "usd only"
  require approval from role "approver" when params.amount > 50000 expires in 4h
  require approval big_one from role "founder" count 2 when params.amount > 1000000
  require approval from role "finance" expires in 15m count 3
  min_autonomy A3
  min_autonomy self_opt A4 when params.kind == "policy" because "only A4 agents may propose"
}

policy margin_floor mode shadow {
  applies to tool in ["shopify.update_price", "ads.*",]
  invariant margin_floor "contribution margin stays at or above 15%"
    : evidence.projected_margin >= 0.15
}

policy stripe_all {
  applies to tool matching "stripe.*"
  risk L2
  require approval from role "legal" expires in 7d
}
'''


@pytest.fixture(scope="module")
def full() -> PolicySet:
    return compile_sources({"full.policy": FULL})


def _policy(policy_set: PolicySet, name: str) -> Policy:
    return next(p for p in policy_set.policies if p.name == name)


def test_policies_in_file_order_with_roles(full: PolicySet) -> None:
    assert [p.name for p in full.policies] == ["refunds", "margin_floor", "stripe_all"]
    assert {"finance", "legal", "founder", "approver", "auditor", "viewer"} == set(full.roles)
    assert full.files == ("full.policy",)
    assert full.digest.startswith("sha256:") and len(full.digest) == 7 + 64


def test_policy_header_and_settings(full: PolicySet) -> None:
    refunds = _policy(full, "refunds")
    assert refunds.description == "Refunds back to customers"
    assert refunds.mode == "shadow" and not refunds.enforced
    assert refunds.risk is Risk.L1
    assert refunds.applies_to.kind == "tool"
    assert refunds.applies_to.patterns == ("stripe.refund",)
    assert refunds.span == Span("full.policy", 5, 1)


def test_header_mode_and_tool_list(full: PolicySet) -> None:
    margin = _policy(full, "margin_floor")
    assert margin.mode == "shadow" and margin.description is None and margin.risk is None
    assert margin.applies_to.kind == "list"
    assert margin.applies_to.patterns == ("shopify.update_price", "ads.*")
    assert margin.applies_to.matches("ads.scale_budget")
    assert not margin.applies_to.matches("stripe.refund")


def test_glob_selector_and_default_mode(full: PolicySet) -> None:
    stripe = _policy(full, "stripe_all")
    assert stripe.mode == "enforce" and stripe.enforced
    assert stripe.applies_to.kind == "glob"
    assert stripe.applies_to.matches("stripe.payout")
    assert full.policies_for("stripe.refund") == (_policy(full, "refunds"), stripe)


def test_invariants(full: PolicySet) -> None:
    first, second = _policy(full, "refunds").invariants
    assert first.name == "refund_reconciled"
    assert first.description == "the order is reconciled before any refund"
    assert first.expr.source == "evidence.reconciled == true"
    assert first.expr.span == Span("full.policy", 11, 7)
    assert first.expr.program is not None
    assert second.name == "has_amount" and second.description is None


def test_escalations_named_and_derived(full: PolicySet) -> None:
    named, unnamed = _policy(full, "refunds").escalations
    assert (named.name, named.tier, named.because) == (
        "large_refund", Risk.L2, "refunds over $500 need an approver")
    assert named.when.source == "params.amount > 50000"
    assert named.span == Span("full.policy", 14, 3)
    assert (unnamed.name, unnamed.tier) == ("escalate_1", Risk.L3)


def test_denies(full: PolicySet) -> None:
    named, unnamed = _policy(full, "refunds").denies
    assert named.name == "hard_cap" and named.because == "refunds over $5,000 are never automated"
    assert unnamed.name == "deny_1" and unnamed.when.source == 'params.currency != "usd"'


def test_approvals_with_clauses_in_any_order(full: PolicySet) -> None:
    first, second, third = _policy(full, "refunds").approvals
    assert (first.name, first.role, first.count) == ("approval_1", "approver", 1)
    assert first.when is not None and first.when.source == "params.amount > 50000"
    assert first.expires_in == timedelta(hours=4)
    assert (second.name, second.role, second.count, second.expires_in) == (
        "big_one", "founder", 2, None)
    assert (third.name, third.role, third.count, third.when) == ("approval_2", "finance", 3, None)
    assert third.expires_in == timedelta(minutes=15)
    legal = _policy(full, "stripe_all").approvals[0]
    assert legal.role == "legal" and legal.expires_in == timedelta(days=7)


def test_min_autonomy(full: PolicySet) -> None:
    wide, named = _policy(full, "refunds").autonomy_rules
    assert (wide.name, wide.level, wide.when, wide.because) == (
        "min_autonomy_1", Autonomy.A3, None, None)
    assert (named.name, named.level) == ("self_opt", Autonomy.A4)
    assert named.when is not None and named.when.source == 'params.kind == "policy"'
    assert named.because == "only A4 agents may propose"


def test_lowest_tier_and_level_are_kept() -> None:
    # L0 and A0 are the enums' zero values: they must not be mistaken for "missing".
    text = ('policy p {\n applies to tool "a.b"\n risk L0\n'
            ' escalate L0 when params.x > 1 because "r"\n min_autonomy A0\n}')
    policy = compile_sources({"z.policy": text}).policies[0]
    assert policy.risk is Risk.L0
    assert policy.escalations[0].tier is Risk.L0
    assert policy.autonomy_rules[0].level is Autonomy.A0


def test_durations_in_seconds() -> None:
    text = 'policy p {\n applies to tool "a.b"\n require approval from role "approver" expires in 30s\n}'
    rule = compile_sources({"d.policy": text}).policies[0].approvals[0]
    assert rule.expires_in == timedelta(seconds=30)


def test_string_escapes() -> None:
    text = 'policy p "say \\"hi\\" \\\\ bye" {\n applies to tool "a.b"\n risk L0\n}'
    assert compile_sources({"e.policy": text}).policies[0].description == 'say "hi" \\ bye'


def test_comments_everywhere() -> None:
    text = (
        "# head\npolicy p # after the name\n{ # brace\n"
        '  applies to tool "a.b" # trailing\n'
        "  # a whole line\n"
        '  deny when params.x > 1 # in a condition\n'
        '    because "x # not a comment"\n}\n'
    )
    policy = compile_sources({"c.policy": text}).policies[0]
    assert policy.denies[0].when.source == "params.x > 1"
    assert policy.denies[0].because == "x # not a comment"


def test_empty_file_and_roles_only_are_fine_with_other_files() -> None:
    policy_set = compile_sources(
        {"a.policy": "", "roles.policy": 'role finance "F"\n',
         "p.policy": 'policy p {\n applies to tool "a.b"\n require approval from role "finance"\n}'}
    )
    assert policy_set.policies[0].approvals[0].role == "finance"
    assert policy_set.files == ("a.policy", "p.policy", "roles.policy")


def test_crlf_line_endings() -> None:
    text = 'policy p {\r\n  applies to tool "a.b"\r\n  deny when params.x > 1 &&\r\n    params.y < 2 because "no"\r\n}\r\n'
    deny = compile_sources({"w.policy": text}).policies[0].denies[0]
    assert deny.when.program is not None


def test_byte_order_mark_is_ignored() -> None:
    text = '\ufeffpolicy p {\n  applies to tool "a.b"\n  risk L0\n}\n'
    assert compile_sources({"b.policy": text.encode("utf-8")}).policies[0].span.column == 1


def test_no_files_is_an_error() -> None:
    with pytest.raises(PolicyCompileError, match="no policy files"):
        compile_sources({})
