"""Lint warnings: policies that compile but cannot do what their author meant."""

from __future__ import annotations

import pytest

from dsl import compile_sources

HEAD = 'policy p {\n  applies to tool "stripe.refund"\n  risk L1\n'


def _warnings(body: str, *, known_tools: list[str] | None = None,
              head: str = HEAD) -> list[tuple[str, int]]:
    policy_set = compile_sources({"w.policy": head + body + "}\n"}, known_tools=known_tools)
    return [(w.code, w.span.line) for w in policy_set.warnings]


def test_a_clean_policy_has_no_warnings() -> None:
    assert _warnings('  escalate L2 when params.amount > 1 because "big"\n') == []


def test_policy_with_no_rules_and_no_risk() -> None:
    head = 'policy p {\n  applies to tool "stripe.refund"\n'
    assert ("no_rules", 1) in _warnings("", head=head)


def test_a_risk_tier_alone_is_not_a_warning() -> None:
    assert _warnings("") == []


@pytest.mark.parametrize("condition", ["false", "(false)", "1 > 2", "!true", "[1, 2].all(x, x > 5)"])
def test_when_false_never_applies(condition: str) -> None:
    assert _warnings(f'  escalate L2 when {condition} because "x"\n') == [("never_applies", 4)]


def test_approval_and_min_autonomy_when_false() -> None:
    body = ('  require approval from role "approver" when false\n'
            "  min_autonomy A3 when 1 == 2\n")
    assert _warnings(body) == [("never_applies", 4), ("never_applies", 5)]


def test_deny_when_true_denies_everything() -> None:
    assert _warnings('  deny when true because "x"\n') == [("always_applies", 4)]


def test_invariant_constant_false() -> None:
    assert _warnings("  invariant nope : 1 == 2\n") == [("always_applies", 4)]


def test_condition_that_can_never_be_evaluated() -> None:
    assert _warnings('  escalate L2 when 1 / 0 == 1 because "x"\n') == [("always_applies", 4)]


@pytest.mark.parametrize("tier", ["L0", "L1"])
def test_escalation_not_above_base_risk(tier: str) -> None:
    body = f'  escalate {tier} when params.amount > 1 because "x"\n'
    assert _warnings(body) == [("escalation_not_above_base", 4)]


def test_min_autonomy_a0_never_applies() -> None:
    assert _warnings("  min_autonomy A0\n") == [("never_applies", 4)]


def test_implausible_tool_name() -> None:
    head = 'policy p {\n  applies to tool "Stripe Refund"\n  risk L1\n'
    assert _warnings("", head=head) == [("implausible_tool", 1)]


def test_unknown_tool_and_glob_matching_nothing_with_a_tool_list() -> None:
    known = ["stripe.refund", "stripe.payout"]
    assert _warnings("", known_tools=known) == []
    head = 'policy p {\n  applies to tool in ["stripe.refnd", "shopify.*", "stripe.*"]\n  risk L1\n'
    assert _warnings("", head=head, known_tools=known) == [
        ("unknown_tool", 1), ("glob_matches_nothing", 1)]


def test_duplicate_tool_in_a_list() -> None:
    head = 'policy p {\n  applies to tool in ["stripe.refund", "stripe.refund"]\n  risk L1\n'
    assert _warnings("", head=head) == [("duplicate_tool", 1)]


def test_tool_without_base_risk_from_an_enforced_policy() -> None:
    head = 'policy p {\n  applies to tool "stripe.refund"\n'
    body = '  deny when params.amount > 1 because "x"\n'
    assert _warnings(body, head=head) == [("tool_without_risk", 1)]
    shadow_rated = 'policy p mode shadow {\n  applies to tool "stripe.refund"\n  risk L1\n'
    assert ("tool_without_risk", 1) in _warnings(body, head=shadow_rated)


def test_a_glob_policy_with_risk_covers_exact_tools() -> None:
    text = ('policy all {\n  applies to tool matching "stripe.*"\n  risk L2\n}\n'
            'policy p {\n  applies to tool "stripe.refund"\n'
            '  deny when params.amount > 1 because "x"\n}\n')
    assert compile_sources({"w.policy": text}).warnings == ()


def test_warnings_render_with_a_caret() -> None:
    policy_set = compile_sources({"w.policy": HEAD + '  deny when true because "x"\n}\n'})
    (warning,) = policy_set.warnings
    assert warning.render().splitlines() == [
        "w.policy:4:13: warning: deny rule `deny_1` denies every action on these tools "
        "[always_applies]",
        '      deny when true because "x"',
        "                ^",
    ]
