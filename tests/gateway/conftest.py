"""Builders for engine tests: policy sets straight from the `dsl.model` dataclasses.

The engine is tested independently of the DSL parser: each test writes the policies it needs as
data, with CEL conditions compiled by `invariants.compile_expression` exactly as the compiler
would. Exposed through the session-scoped `build` fixture (hypothesis-friendly).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dsl.model import (
    BUILTIN_ROLES,
    ApprovalRule,
    Autonomy,
    AutonomyRule,
    DenyRule,
    Escalation,
    Expr,
    Invariant,
    Policy,
    PolicySet,
    Risk,
    Span,
    ToolSelector,
)
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.models import Decision, Packet
from invariants import compile_expression

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
SPAN = Span("test.policy", 1, 1)


class Build:
    """Small constructors with defaults, so each test states only what it is about."""

    now = NOW

    def __init__(self) -> None:
        self._programs: dict[str, Any] = {}  # compiled programs are immutable: share them

    def expr(self, source: str) -> Expr:
        program = self._programs.get(source)
        if program is None:
            program = self._programs[source] = compile_expression(source)
        return Expr(source=source, span=SPAN, program=program)

    def policy(
        self,
        name: str = "p",
        *,
        tools: Iterable[str] = ("stripe.refund",),
        risk: Risk | None = Risk.L1,
        mode: str = "enforce",
        invariants: Mapping[str, str] | None = None,
        escalations: Iterable[tuple[Risk, str]] = (),
        denies: Iterable[str] = (),
        approvals: Iterable[tuple[str, int, str | None, timedelta | None]] = (),
        floors: Iterable[tuple[Autonomy, str | None]] = (),
    ) -> Policy:
        tools = tuple(tools)
        kind = "tool" if len(tools) == 1 and "*" not in tools[0] else "list"
        return Policy(
            name=name,
            description=None,
            mode=mode,  # type: ignore[arg-type]
            applies_to=ToolSelector(kind=kind, patterns=tools),  # type: ignore[arg-type]
            risk=risk,
            invariants=tuple(
                Invariant(name=n, description=f"{n} holds", expr=self.expr(src), span=SPAN)
                for n, src in (invariants or {}).items()
            ),
            escalations=tuple(
                Escalation(name=f"escalate_{i}", tier=tier, when=self.expr(src),
                           because=f"escalation {i}", span=SPAN)
                for i, (tier, src) in enumerate(escalations, 1)
            ),
            denies=tuple(
                DenyRule(name=f"deny_{i}", when=self.expr(src), because=f"deny {i}", span=SPAN)
                for i, src in enumerate(denies, 1)
            ),
            approvals=tuple(
                ApprovalRule(name=f"approval_{i}", role=role, count=count,
                             when=None if src is None else self.expr(src),
                             expires_in=expires, span=SPAN)
                for i, (role, count, src, expires) in enumerate(approvals, 1)
            ),
            autonomy_rules=tuple(
                AutonomyRule(name=f"min_autonomy_{i}", level=level,
                             when=None if src is None else self.expr(src), because=None,
                             span=SPAN)
                for i, (level, src) in enumerate(floors, 1)
            ),
            span=SPAN,
        )

    def policy_set(self, *policies: Policy) -> PolicySet:
        return PolicySet(policies=tuple(policies), roles=BUILTIN_ROLES | {"finance"},
                         digest="sha256:" + "ab" * 32, files=("test.policy",))

    def packet(
        self,
        tool: str = "stripe.refund",
        params: Mapping[str, Any] | None = None,
        *,
        evidence: Mapping[str, Any] | None = None,
        claims: Mapping[str, str] | None = None,
        context: Mapping[str, Any] | None = None,
        packet_id: str = "pkt-1",
    ) -> Packet:
        return Packet.model_validate({
            "packet_id": packet_id,
            "agent": "bot",
            "action": {"tool": tool, "params": dict(params or {})},
            "evidence": dict(evidence or {}),
            "proof": {"invariant_checks": [{"id": k, "status": v} for k, v in
                                           (claims or {}).items()]},
            "context": dict(context or {}),
        })

    def agent(self, autonomy: Autonomy = Autonomy.A2, owner: str | None = "owner@x") -> Agent:
        return Agent(name="bot", autonomy=autonomy, owner=owner, tools=("*",))

    def decide(self, policy_set: PolicySet, packet: Packet, autonomy: Autonomy = Autonomy.A2,
               **kwargs: Any) -> Decision:
        return Decider(policy_set).decide(packet, self.agent(autonomy), now=NOW, **kwargs)


@pytest.fixture(scope="session")
def build() -> Build:
    return Build()
