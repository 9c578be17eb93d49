"""The decision engine: one packet, one agent, one compiled policy set in; one Decision out.

Pure and in-process: no I/O, no clock unless `now` is omitted, no state between calls beyond
the policy set's per-tool index. The gateway records, executes and long-polls around it; the
CLI's `warden policy explain` and `warden policy test` call it directly.

The steps (DESIGN.md, "The pipeline": evaluate), numbered as in `Decider._decide`:

    (1) kill switch       (2) applicable policies, unknown tool     (3) one activation per packet
    (4) every applicable policy's rules, shadow ones recorded only  (5) proof check
    (6) risk tier         (7) status from violations and autonomy x risk   (8) approval obligation

Fail closed: a rule whose condition cannot be evaluated is a violation, and an unexpected
exception anywhere in evaluation yields `denied` with an `error` reason; nothing propagates and
nothing is ever allowed by accident.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from dsl.model import DEFAULT_APPROVAL_EXPIRY, Autonomy, Delegation, Policy, PolicySet, Risk
from gateway.engine.agents import Agent
from gateway.engine.delegation import Delegated, delegations
from gateway.engine.evaluation import Evaluation
from gateway.engine.matrix import WARDEN, approval_obligation, matrix_reason, needs_approval
from gateway.engine.models import Approval, Decision, Packet, Reason, Status
from invariants import DEFAULT_LIMITS, Limits, Needs, PacketLimitError, Program, activation


class Decider:
    """Decides packets against one compiled policy set (swap the engine to swap the set).

    Per tool it keeps, once worked out, the applicable policies, their base tier and what their
    expressions read (`Needs`): each packet's activation then converts only those fields, which
    is most of the cost of a decision. `prune=False` converts whole packets instead; decisions
    are the same either way (the test suite compares them).
    """

    def __init__(
        self,
        policy_set: PolicySet,
        *,
        limits: Limits = DEFAULT_LIMITS,
        prune: bool = True,
        approval_expiry: timedelta = DEFAULT_APPROVAL_EXPIRY,
    ) -> None:
        self.policy_set = policy_set
        self.approval_expiry = approval_expiry
        self.limits = limits
        self.prune = prune
        self._plans: dict[str, _ToolPlan] = {}

    def needs_for(self, tool: str) -> Needs | None:
        """What the policies applying to `tool` read (None: whole packets, `prune=False`)."""
        return self._plan(tool).needs

    def delegations_for(self, tool: str) -> tuple[Delegation, ...]:
        """The OPA paths to ask before deciding a packet for `tool`, one delegation per path
        (shadow policies' too: they are recorded). Empty for most tools."""
        return self._plan(tool).delegations

    def _plan(self, tool: str) -> _ToolPlan:
        """The applicable policies for `tool`, their base tier and needs, worked out once."""
        plan = self._plans.get(tool)
        if plan is None:
            policies = self.policy_set.policies_for(tool)
            programs = list(_programs(policies))
            compiled = [p for p in programs if isinstance(p, Program)]
            prunable = self.prune and len(compiled) == len(programs)
            needs = Needs.of(compiled) if prunable else None
            plan = _ToolPlan(policies, _base_risk(policies), needs, delegations(policies))
            if len(self._plans) < _MAX_PLANS:  # bounded: tool names come from packets
                self._plans[tool] = plan
        return plan

    def decide(
        self,
        packet: Packet,
        agent: Agent,
        *,
        now: datetime | None = None,
        kill_switch: bool = False,
        dry_run: bool = False,
        delegated: Mapping[str, Delegated] | None = None,
    ) -> Decision:
        """The decision for `packet` sent by `agent` at `now` (default: the current UTC time).

        `dry_run` reports `allowed` where a real run would be `executed`; nothing else differs.
        `delegated`: OPA's answers by path for `delegations_for(tool)`, asked by the caller; a
        delegation without one denies. Never raises for anything inside evaluation: an
        unexpected error denies.
        """
        try:
            return self._decide(packet, agent, _utc(now), kill_switch, dry_run, delegated or {})
        except Exception as exc:  # fail closed: whatever went wrong, this action is not allowed
            return _internal_error(packet, agent, self.policy_set.digest, exc)

    def _decide(
        self, packet: Packet, agent: Agent, now: datetime, kill_switch: bool, dry_run: bool,
        delegated: Mapping[str, Delegated],
    ) -> Decision:
        # (1) the kill switch stops everything, whatever the policies say; the packet is still
        # assessed, so the denial reports the risk and the reasons it would have had.
        if kill_switch:
            return _under_kill_switch(self._decide(packet, agent, now, False, dry_run, delegated))
        digest = self.policy_set.digest
        tool = packet.action.tool
        policies, base, needs, _ = self._plan(tool)
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
                needs=needs,
            )
        except PacketLimitError as exc:
            return _gate(packet, agent, digest, base, "packet_limits", "error",
                         f"the packet is over Warden's limits: {exc}")
        # (4) + (5) every applicable policy, with the agent's claims checked on the way.
        claims = packet.proof.invariant_checks
        evaluation = Evaluation(agent.autonomy, base, {c.id: c for c in claims})
        for policy in policies:
            evaluation.evaluate(policy, act, delegated)
        unknown_claims = [c.id for c in claims if c.id not in evaluation.claimed]
        # (6) risk = max(base tiers, fired escalations), kept up to date during evaluation.
        risk = evaluation.risk
        # (7) violations deny; A0 drafts; otherwise the autonomy x risk matrix (or a rule) decides.
        approval: Approval | None = None
        status: Status
        if evaluation.violated:
            status = "denied"
        elif agent.autonomy == Autonomy.A0:
            status = "drafted"
        elif (by_matrix := needs_approval(agent.autonomy, risk)) or evaluation.approval_rules:
            status = "pending_approval"
            if by_matrix:
                evaluation.reasons.append(matrix_reason(agent.autonomy, risk))
            # (8) who must approve, how many of them, until when.
            approval = approval_obligation(
                risk, evaluation.approval_rules, now, self.approval_expiry
            )
        else:
            status = "allowed" if dry_run else "executed"
        return Decision.model_validate({
            "packet_id": packet.packet_id,
            "status": status,
            "risk": risk,
            "autonomy": agent.autonomy,
            "policy_digest": digest,
            "reasons": evaluation.reasons,
            "invariants": evaluation.invariants,
            "approval": approval,
            "flags": evaluation.flags,
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
    delegated: Mapping[str, Delegated] | None = None,
) -> Decision:
    """One-off decision (the CLI's `explain`); long-lived callers keep a `Decider`."""
    return Decider(policy_set).decide(
        packet, agent, now=now, kill_switch=kill_switch, dry_run=dry_run, delegated=delegated
    )


class _ToolPlan(NamedTuple):
    policies: tuple[Policy, ...]
    base: Risk | None
    needs: Needs | None
    delegations: tuple[Delegation, ...]


_MAX_PLANS = 10_000


def _programs(policies: Sequence[Policy]) -> Iterator[object]:
    """Every compiled expression the policies' rules may evaluate."""
    for policy in policies:
        for invariant in policy.invariants:
            yield invariant.expr.program
        conditions = chain((d.when for d in policy.denies), (e.when for e in policy.escalations),
                           (a.when for a in policy.approvals), (m.when for m in policy.autonomy_rules))
        for when in conditions:
            if when is not None:
                yield when.program


def _base_risk(policies: Sequence[Policy]) -> Risk | None:
    """The highest base tier the enforced policies give; None when none gives one."""
    tiers = [p.risk for p in policies if p.mode == "enforce" and p.risk is not None]
    return max(tiers) if tiers else None


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


def _under_kill_switch(assessed: Decision) -> Decision:
    """`assessed` denied by the kill switch: its risk, reasons and invariants stay as worked out,
    the kill switch comes first among the reasons, and nothing is left to approve."""
    unassessed = bool(assessed.reasons) and assessed.reasons[0].rule in _GATES
    assessment = ("the risk could not be assessed" if unassessed
                  else f"the action was assessed as {assessed.risk.name}")
    stop = Reason(policy=WARDEN, rule="kill_switch", effect="kill_switch",
                  message=f"the kill switch is engaged: no action runs until a founder resumes ({assessment})")
    return assessed.model_copy(update={"status": "denied", "approval": None,
                                       "reasons": [stop, *assessed.reasons]})


#: Warden's own denials before any policy rule runs: after one, the risk is not an assessment.
_GATES = frozenset({"unknown_tool", "packet_limits", "internal_error"})


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
