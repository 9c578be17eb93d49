"""The decision engine: one packet, one agent, one compiled policy set in; one Decision out.

Pure and in-process: no I/O, no clock unless `now` is omitted, no state between calls beyond
the policy set's per-tool index. The gateway records, executes and long-polls around it; the
CLI's `warden policy explain` and `warden policy test` call it directly.

The steps (SPEC.md, "Decision semantics"), numbered as in `Engine._decide`:

    (1) kill switch       (2) applicable policies, unknown tool     (3) one activation per packet
    (4) every applicable policy's rules, shadow ones recorded only  (5) proof check
    (6) risk tier         (7) status from violations and autonomy x risk   (8) approval obligation

Fail closed: a rule whose condition cannot be evaluated is a violation, and an unexpected
exception anywhere in evaluation yields `denied` with an `error` reason; nothing propagates and
nothing is ever allowed by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from dsl.model import (
    DEFAULT_APPROVAL_EXPIRY,
    ApprovalRule,
    Autonomy,
    Expr,
    Policy,
    PolicySet,
    Risk,
)
from gateway.agents import Agent
from gateway.models import (
    Approval,
    Decision,
    InvariantCheck,
    InvariantResult,
    Packet,
    Reason,
    Status,
    Verdict,
)
from invariants import DEFAULT_LIMITS, Limits, PacketLimitError, activation

#: The policy name Warden's own gates report under (kill switch, unknown tool, limits, errors).
WARDEN = "warden"
FOUNDER = "founder"
DEFAULT_ROLE = "approver"
PROOF_MISMATCH = "proof_mismatch"


class Engine:
    """Decides packets against one compiled policy set (swap the engine to swap the set)."""

    def __init__(self, policy_set: PolicySet, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.policy_set = policy_set
        self.limits = limits

    def decide(
        self,
        packet: Packet,
        agent: Agent,
        *,
        now: datetime | None = None,
        kill_switch: bool = False,
        dry_run: bool = False,
    ) -> Decision:
        """The decision for `packet` sent by `agent` at `now` (default: the current UTC time).

        `dry_run` reports `allowed` where a real run would be `executed`; nothing else differs.
        Never raises for anything inside evaluation: an unexpected error denies.
        """
        moment = _utc(now)
        try:
            return self._decide(packet, agent, moment, kill_switch, dry_run)
        except Exception as exc:  # fail closed: whatever went wrong, this action is not allowed
            return _internal_error(packet, agent, self.policy_set.digest, exc)

    def _decide(
        self, packet: Packet, agent: Agent, now: datetime, kill_switch: bool, dry_run: bool
    ) -> Decision:
        digest = self.policy_set.digest
        tool = packet.action.tool
        # (2) first, for the base tier every early denial still reports.
        policies = self.policy_set.policies_for(tool)
        base = _base_risk(policies)
        # (1) the kill switch stops everything, whatever the policies say.
        if kill_switch:
            return _gate(packet, agent, digest, base, "kill_switch", "kill_switch",
                         "the kill switch is engaged: no action runs until a founder resumes")
        # (2) a tool that no enforced policy gives a base tier is one Warden knows nothing about.
        if base is None:
            return _gate(packet, agent, digest, None, "unknown_tool", "unknown_tool",
                         f"no enforced policy gives tool {tool!r} a risk tier")
        # (3) the evaluation context, built once and shared by every expression.
        try:
            act = activation(
                params=packet.action.params,
                evidence=packet.evidence,
                agent=agent.cel_view(),
                context=packet.context,
                now=now,
                limits=self.limits,
            )
        except PacketLimitError as exc:
            return _gate(packet, agent, digest, base, "packet_limits", "error",
                         f"the packet is over Warden's limits: {exc}")
        # (4) + (5) every applicable policy, with the agent's claims checked on the way.
        tally = _Tally(agent.autonomy, base, {c.id: c for c in packet.proof.invariant_checks})
        for policy in policies:
            tally.evaluate(policy, act)
        unknown_claims = [c.id for c in packet.proof.invariant_checks if c.id not in tally.claimed]
        # (6) risk = max(base tiers, fired escalations) is kept up to date by the tally.
        risk = tally.risk
        # (7) violations deny; A0 drafts; otherwise the autonomy x risk matrix (or a rule) decides.
        approval: Approval | None = None
        status: Status
        if tally.violated:
            status = "denied"
        elif agent.autonomy == Autonomy.A0:
            status = "drafted"
        elif _matrix_needs_approval(agent.autonomy, risk) or tally.approval_rules:
            status = "pending_approval"
            if _matrix_needs_approval(agent.autonomy, risk):
                tally.reasons.append(_matrix_reason(agent.autonomy, risk))
            # (8) who must approve, how many of them, until when.
            approval = approval_obligation(risk, tally.approval_rules, now)
        else:
            status = "allowed" if dry_run else "executed"
        return Decision.model_validate({
            "packet_id": packet.packet_id,
            "status": status,
            "risk": risk,
            "autonomy": agent.autonomy,
            "policy_digest": digest,
            "reasons": tally.reasons,
            "invariants": tally.invariants,
            "approval": approval,
            "flags": tally.flags,
            "unknown_claims": unknown_claims,
        })


def decide(
    policy_set: PolicySet,
    packet: Packet,
    agent: Agent,
    *,
    now: datetime | None = None,
    kill_switch: bool = False,
    dry_run: bool = False,
) -> Decision:
    """One-off decision (the CLI's `explain`); long-lived callers keep an `Engine`."""
    return Engine(policy_set).decide(
        packet, agent, now=now, kill_switch=kill_switch, dry_run=dry_run
    )


class _Tally:
    """What the rules of the applicable policies add up to for one packet.

    Shadow policies go through the same code and land in `reasons` / `invariants` with
    `enforced=False`, but never touch `violated`, `risk`, `approval_rules` or `flags`.
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

    def evaluate(self, policy: Policy, act: object) -> None:
        enforced = policy.mode == "enforce"
        for invariant in policy.invariants:
            verdict, error = _verdict(invariant.expr, act)
            self._invariant(policy, invariant.name, invariant.description, verdict, error)
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
            self._fire(policy, name, PROOF_MISMATCH,
                       f"the agent claimed {claimed}, Warden verified {verdict} ({mismatch})")
            if enforced and PROOF_MISMATCH not in self.flags:
                self.flags.append(PROOF_MISMATCH)


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


def _base_risk(policies: Sequence[Policy]) -> Risk | None:
    """The highest base tier the enforced policies give; None when none gives one."""
    tiers = [p.risk for p in policies if p.mode == "enforce" and p.risk is not None]
    return max(tiers) if tiers else None


def _matrix_needs_approval(autonomy: Autonomy, risk: Risk) -> bool:
    """DESIGN.md's autonomy x risk matrix (A0 is handled before: it only drafts)."""
    if risk >= Risk.L2:
        return True
    return autonomy == Autonomy.A1 and risk >= Risk.L1


def _matrix_reason(autonomy: Autonomy, risk: Risk) -> dict[str, object]:
    if risk == Risk.L3:
        message = "risk L3 always needs a founder's approval"
    else:
        message = f"risk {risk.name} needs approval at autonomy {autonomy.name}"
    return {"policy": WARDEN, "rule": "autonomy_matrix", "effect": "approval",
            "message": message, "enforced": True}


def approval_obligation(risk: Risk, rules: Sequence[ApprovalRule], now: datetime) -> Approval:
    """Who must approve, how many distinct people and by when, from the risk and fired rules.

    Founder for L3 or when any rule asks for one (a founder may approve any role's request);
    otherwise the role of the fired rule with the highest count (the first on a tie), default
    `approver`. Count: the highest of the rules' counts. Expiry: the shortest of their expiries.
    """
    if risk == Risk.L3 or any(r.role == FOUNDER for r in rules):
        role = FOUNDER
    elif rules:
        role = max(rules, key=lambda r: r.count).role  # max() keeps the first of equals
    else:
        role = DEFAULT_ROLE
    count = max((r.count for r in rules), default=1)
    expiry = min((r.expires_in or DEFAULT_APPROVAL_EXPIRY for r in rules),
                 default=DEFAULT_APPROVAL_EXPIRY)
    return Approval(required_role=role, count=count, expires_at=now + expiry)


def _gate(packet: Packet, agent: Agent, digest: str, risk: Risk | None, rule: str, effect: str,
          message: str) -> Decision:
    """A denial by one of Warden's own gates, before any policy rule ran.

    The risk reported is the base tier when known, else L3: an action Warden cannot assess is
    treated as the riskiest kind.
    """
    return Decision(
        packet_id=packet.packet_id,
        status="denied",
        risk=risk if risk is not None else Risk.L3,
        autonomy=agent.autonomy,
        policy_digest=digest,
        reasons=[Reason(policy=WARDEN, rule=rule, effect=effect,  # type: ignore[arg-type]
                        message=message)],
    )


def _internal_error(packet: object, agent: object, digest: str, exc: Exception) -> Decision:
    """The denial for an exception nobody expected; built from whatever can still be read."""
    autonomy = getattr(agent, "autonomy", Autonomy.A0)
    return Decision(
        packet_id=str(getattr(packet, "packet_id", "unknown")),
        status="denied",
        risk=Risk.L3,
        autonomy=autonomy if isinstance(autonomy, Autonomy) else Autonomy.A0,
        policy_digest=digest,
        reasons=[Reason(policy=WARDEN, rule="internal_error", effect="error",
                        message=f"evaluation failed ({type(exc).__name__}): {exc}")],
    )


def _utc(now: datetime | None) -> datetime:
    """`now` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)
