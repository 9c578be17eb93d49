"""What the rules of the applicable policies add up to for one packet (steps 4-6 of `Decider`).

`Evaluation.evaluate(policy, act)` runs one policy's rules against a packet's activation, in a
fixed order (invariants, deny rules, escalations, approval rules, min_autonomy), checking the
agent's proof claims on the way. Each rule that fires becomes a `reasons` entry named by policy
and rule. Shadow policies go through the same code, so their entries say exactly what they would
have done, with `enforced: false`.

Errors fail closed here: a condition that cannot be evaluated (missing field, type mismatch,
non-boolean result, or a program that raises) is a violation of its own, reported as `error`.
"""

from __future__ import annotations

from collections.abc import Mapping

from dsl.model import ApprovalRule, Autonomy, Delegation, Expr, Policy, Risk
from gateway.engine.delegation import Delegated, read_answer
from gateway.engine.models import InvariantCheck, Verdict

PROOF_MISMATCH = "proof_mismatch"


class Evaluation:
    """The running result for one packet: reasons, invariant verdicts, risk, obligations.

    Shadow policies land in `reasons` / `invariants` with `enforced=False`, but never touch
    `violated`, `risk`, `approval_rules` or `flags`. `claimed` collects the proof claims that
    matched an applicable invariant; the others are the decision's `unknown_claims`.
    """

    __slots__ = ("autonomy", "risk", "claims", "claimed", "violated", "reasons", "invariants",
                 "approval_rules", "flags")

    def __init__(self, autonomy: Autonomy, base: Risk, claims: dict[str, InvariantCheck]) -> None:
        self.autonomy = autonomy
        self.risk = base
        self.claims = claims
        self.claimed: set[str] = set()
        self.violated = False
        # Plain dicts, validated once with the Decision: one pass through pydantic-core.
        self.reasons: list[dict[str, object]] = []
        self.invariants: list[dict[str, object]] = []
        self.approval_rules: list[ApprovalRule] = []
        self.flags: list[str] = []

    def _fire(self, policy: Policy, rule: str, effect: str, message: str, *,
              violation: bool = False) -> None:
        enforced = policy.mode == "enforce"
        self.reasons.append({"policy": policy.name, "rule": rule, "effect": effect,
                             "message": message, "enforced": enforced})
        if violation and enforced:
            self.violated = True

    def _error(self, policy: Policy, rule: str, kind: str, error: str) -> None:
        self._fire(policy, rule, "error", f"could not evaluate {kind} {rule}: {error}",
                   violation=True)

    def evaluate(self, policy: Policy, act: object,
                 delegated: Mapping[str, Delegated] | None = None) -> None:
        """Run every rule of `policy` against the activation `act` and record what fired;
        `delegated` holds OPA's answers by path (a delegation without one denies)."""
        enforced = policy.mode == "enforce"
        for invariant in policy.invariants:
            verdict, error = _verdict(invariant.expr, act)
            self._invariant(policy, invariant.name, invariant.description, verdict, error)
        for delegation in policy.delegations:
            self._delegation(policy, delegation, (delegated or {}).get(delegation.path))
        for deny in policy.denies:
            holds, error = _condition(deny.when, act)
            if error is not None:
                self._error(policy, deny.name, "deny rule", error)
            elif holds:
                self._fire(policy, deny.name, "deny", deny.because, violation=True)
        for escalation in policy.escalations:
            holds, error = _condition(escalation.when, act)
            if error is not None:
                self._error(policy, escalation.name, "escalation", error)
            elif holds:
                self._fire(policy, escalation.name, "escalate",
                           f"{escalation.because} (risk {escalation.tier.name})")
                if enforced and escalation.tier > self.risk:
                    self.risk = escalation.tier
        for rule in policy.approvals:
            holds, error = (True, None) if rule.when is None else _condition(rule.when, act)
            if error is not None:
                self._error(policy, rule.name, "approval rule", error)
            elif holds:
                who = f"{rule.count} x {rule.role!r}" if rule.count > 1 else repr(rule.role)
                self._fire(policy, rule.name, "approval", f"needs approval from {who}")
                if enforced:
                    self.approval_rules.append(rule)
        for floor in policy.autonomy_rules:
            if self.autonomy >= floor.level:
                continue  # the rule cannot deny this agent, so its condition is irrelevant
            holds, error = (True, None) if floor.when is None else _condition(floor.when, act)
            if error is not None:
                self._error(policy, floor.name, "min_autonomy rule", error)
            elif holds:
                message = floor.because or (
                    f"needs autonomy {floor.level.name} or above; the agent has "
                    f"{self.autonomy.name}"
                )
                self._fire(policy, floor.name, "min_autonomy", message, violation=True)

    def _delegation(self, policy: Policy, delegation: Delegation, delegated: Delegated | None) -> None:
        """OPA's answer, like an invariant's verdict: FAIL and ERROR deny, whatever approves;
        an answer's `risk` raises the tier like an escalation."""
        reading = read_answer(delegated)
        given = delegated or Delegated.failed("missing")
        self.invariants.append({
            "id": delegation.id, "policy": policy.name, "verified": reading.verdict,
            "error": reading.message if reading.verdict != "PASS" else None,
            "enforced": policy.mode == "enforce", "path": delegation.path,
            "answer": given.answer, "failure": given.failure, "detail": given.detail})
        where = f"{delegation.name} ({delegation.path})"
        if reading.verdict == "FAIL":
            self._fire(policy, delegation.name, "invariant", f"{reading.message} [{where}]",
                       violation=True)
        elif reading.verdict == "ERROR":
            self._fire(policy, delegation.name, "error", f"{reading.message} [{where}]",
                       violation=True)
        if reading.risk is not None and reading.verdict != "ERROR":
            self._fire(policy, delegation.name, "escalate",
                       f"OPA raised the risk to {reading.risk.name} [{where}]")
            if policy.mode == "enforce" and reading.risk > self.risk:
                self.risk = reading.risk

    def _invariant(self, policy: Policy, name: str, description: str | None,
                   verdict: Verdict, error: str | None) -> None:
        enforced = policy.mode == "enforce"
        claim = self.claims.get(name)
        claimed: Verdict | None = None
        mismatch = None
        if claim is not None:
            self.claimed.add(name)
            claimed = claim.status
            if claimed == "PASS" and verdict != "PASS":
                mismatch = "claimed_pass_verified_fail"
            elif claimed != "PASS" and verdict == "PASS":
                mismatch = "claimed_fail_verified_pass"
        self.invariants.append({
            "id": name, "policy": policy.name, "verified": verdict, "claimed": claimed,
            "error": error, "mismatch": mismatch, "enforced": enforced})
        if verdict == "FAIL":
            self._fire(policy, name, "invariant", f"invariant does not hold: {description or name}",
                       violation=True)
        elif verdict == "ERROR":
            self._fire(policy, name, "invariant", f"invariant could not be evaluated: {error}",
                       violation=True)
        if mismatch is not None:
            self._fire(policy, name, PROOF_MISMATCH, _mismatch_message(claimed, verdict, error))
            if enforced and PROOF_MISMATCH not in self.flags:
                self.flags.append(PROOF_MISMATCH)


def _mismatch_message(claimed: Verdict | None, verdict: Verdict, error: str | None) -> str:
    """Why the agent's claim about an invariant was not taken, in plain words."""
    if claimed == "PASS" and verdict == "ERROR":
        return (f"the agent claimed PASS, but Warden could not evaluate the invariant ({error}); "
                "the claim was not accepted")
    if claimed == "PASS":
        return "the agent claimed PASS, but the invariant does not hold: the claim is false"
    return f"the agent claimed {claimed}, Warden verified PASS; the decision follows Warden's verdict"


def _verdict(expr: Expr, act: object) -> tuple[Verdict, str | None]:
    """PASS / FAIL / ERROR of an invariant, with the error message when there is one."""
    try:
        outcome = expr.program.evaluate(act)
    except Exception as exc:  # the invariants API promises not to raise; be sure anyway
        return "ERROR", f"{type(exc).__name__}: {exc}"
    verdict: Verdict = outcome.verdict
    if verdict == "ERROR":
        return verdict, outcome.error or f"the expression is not a boolean: {outcome.value!r}"
    return verdict, None


def _condition(expr: Expr, act: object) -> tuple[bool, str | None]:
    """Whether a rule's condition holds, or the reason it could not be decided."""
    try:
        outcome = expr.program.evaluate(act)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    holds = outcome.holds
    if holds is None:
        return False, outcome.error or f"the condition is not a boolean: {outcome.value!r}"
    return holds, None
