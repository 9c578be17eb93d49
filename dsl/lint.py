"""Lint: warnings about policies that compile but cannot do what their author meant.

Warnings never stop a policy set from loading (errors do); `warden policy check` prints them.

- `no_rules`: a policy with no rules and no risk tier changes nothing.
- `never_applies`: a rule whose condition is constant false (`when false`), or a `min_autonomy A0`
  (no agent is below A0).
- `always_applies`: a deny whose condition is constant true, an invariant that is constant false
  (every action on those tools is denied), or a condition that cannot be evaluated at all.
- `escalation_not_above_base`: an escalation to a tier not above the policy's own `risk`.
- `implausible_tool`: a tool name or glob that no tool name could look like (`tool.action`).
- `unknown_tool` / `glob_matches_nothing`: with a list of known tools, a name not in it, or a
  glob that matches none of them.
- `tool_without_risk`: a tool a policy names exactly but no enforced policy gives a risk tier:
  the engine denies every action on it as an unknown tool.
- `duplicate_tool`: a tool listed twice in one selector.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection

from invariants import activation

from dsl.errors import DiagnosticBag
from dsl.model import Autonomy, Expr, Policy

_PLAUSIBLE_TOOL = re.compile(r"[A-Za-z0-9_*?\[\]-]+(\.[A-Za-z0-9_*?\[\]!-]+)+|\*")


def _constant(expr: Expr | None) -> tuple[bool, bool | None]:
    """(is constant, value): a condition that reads no variable has one value for every packet."""
    if expr is None or expr.program is None or getattr(expr.program, "roots", None):
        return False, None
    outcome = expr.program.evaluate(activation())
    return True, outcome.holds


def lint_policies(policies: list[Policy], known_tools: Collection[str] | None,
                  bag: DiagnosticBag) -> None:
    for policy in policies:
        _lint_policy(policy, bag)
        _lint_selector(policy, known_tools, bag)
    _lint_base_risk(policies, bag)


def _lint_policy(policy: Policy, bag: DiagnosticBag) -> None:
    rules = (policy.invariants, policy.escalations, policy.denies, policy.approvals,
             policy.autonomy_rules)
    if not any(rules) and policy.risk is None:
        bag.warning("no_rules", f"policy `{policy.name}` has no rules and no risk tier: it "
                    "changes nothing", policy.span)
    for inv in policy.invariants:
        constant, value = _constant(inv.expr)
        if constant and value is not True:
            bag.warning("always_applies", f"invariant `{inv.name}` never holds: every action "
                        "on these tools is denied", inv.expr.span)
    for esc in policy.escalations:
        _conditional(esc.name, esc.when, bag)
        if policy.risk is not None and esc.tier <= policy.risk:
            bag.warning("escalation_not_above_base",
                        f"escalation `{esc.name}` to {esc.tier} never raises the risk: policy "
                        f"`{policy.name}` already puts these tools at {policy.risk}", esc.span)
    for deny in policy.denies:
        constant, value = _constant(deny.when)
        if constant and value is not False:
            bag.warning("always_applies", f"deny rule `{deny.name}` denies every action on "
                        "these tools", deny.when.span)
        _conditional(deny.name, deny.when, bag)
    for approval in policy.approvals:
        _conditional(approval.name, approval.when, bag)
    for rule in policy.autonomy_rules:
        _conditional(rule.name, rule.when, bag)
        if rule.level == Autonomy.A0:
            bag.warning("never_applies", f"`{rule.name}`: no agent is below A0, so this rule "
                        "never applies", rule.span)


def _conditional(name: str, expr: Expr | None, bag: DiagnosticBag) -> None:
    constant, value = _constant(expr)
    if constant and expr is not None and value is False:
        bag.warning("never_applies", f"rule `{name}` never applies: its condition is always "
                    "false", expr.span)
    elif constant and expr is not None and value is None:
        bag.warning("always_applies", f"rule `{name}`: its condition can never be evaluated, "
                    "so every action on these tools is denied", expr.span)


def _lint_selector(policy: Policy, known_tools: Collection[str] | None,
                   bag: DiagnosticBag) -> None:
    seen: set[str] = set()
    for pattern in policy.applies_to.patterns:
        if pattern in seen:
            bag.warning("duplicate_tool", f"`{pattern}` is listed twice in policy "
                        f"`{policy.name}`", policy.span)
        seen.add(pattern)
        is_glob = any(c in pattern for c in "*?[")
        if not _PLAUSIBLE_TOOL.fullmatch(pattern):
            bag.warning("implausible_tool", f"`{pattern}` does not look like a tool name "
                        "(system.action, e.g. stripe.refund): policy "
                        f"`{policy.name}` may apply to nothing", policy.span)
        elif known_tools is not None and is_glob:
            if not any(fnmatch.fnmatchcase(t, pattern) for t in known_tools):
                bag.warning("glob_matches_nothing", f"`{pattern}` matches no known tool: "
                            f"policy `{policy.name}` applies to nothing", policy.span)
        elif known_tools is not None and pattern not in known_tools:
            bag.warning("unknown_tool", f"`{pattern}` is not a known tool: policy "
                        f"`{policy.name}` may apply to nothing", policy.span)


def _lint_base_risk(policies: list[Policy], bag: DiagnosticBag) -> None:
    rated = [p for p in policies if p.enforced and p.risk is not None]
    rated_tools = {t for p in rated for t in p.applies_to.exact_tools}
    rated_globs = [g for p in rated for g in p.applies_to.globs]
    warned: set[str] = set()
    for policy in policies:
        for tool in policy.applies_to.exact_tools:
            if tool in warned or tool in rated_tools:
                continue
            if any(fnmatch.fnmatchcase(tool, g) for g in rated_globs):
                continue
            warned.add(tool)
            bag.warning("tool_without_risk",
                        f"no enforced policy gives `{tool}` a risk tier: every action on it is "
                        "denied as an unknown tool", policy.span)
