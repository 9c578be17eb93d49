"""Compensation: undoing an executed action with the catalog's compensating action.

    compensations.compensate(person, decision_id) -> Decision   (the compensating decision)

The compensation is itself a packet, decided and recorded like any other:

- from the original action's agent (its autonomy and owner; policies see `agent` as for the
  original), allowed the compensating tool for this packet only: a person asked for it, not the
  agent;
- `packet_id` `compensate.<decision_id>` (reserved: no agent's packet may use it, nor
  `context.compensation`), so asking twice (or two people asking) gives the one
  compensating decision: the packet is built from what was recorded only, and is the same
  whoever asks;
- `evidence.compensates` holds the original decision's id, tool, provider id and summary;
  `context.compensation` names the original decision and tool, so policies can tell a
  compensation from an agent's own action (`has(context.compensation)`);
- the tool's `compensator` (`connectors.base.ToolSpec`) builds the action from the recorded
  params, provider id and summary: restore the previous price, delete the discount, delete the
  note, move the deal back, reverse the transfer. An irreversible tool is refused with its
  reason (`NotReversible`), as is an action that has not executed (`NotCompensable`).

Who asked is recorded in the request log and the answer; the decision's own audit entry holds the
packet (and so the original decision's id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import and_, select

from connectors.base import NotReversible as ToolNotReversible
from connectors.registry import Registry
from gateway.engine.agents import Agent
from gateway.engine.models import Action, Decision, Packet
from gateway.pipeline.approvals import APPROVER_ROLES, Person
from gateway.pipeline.errors import (
    DecisionNotFound,
    NotCompensable,
    NotPermitted,
    NotReversible,
    shown,
)
from gateway.pipeline.submit import COMPENSATION_KEY, COMPENSATION_PREFIX, Gateway
from gateway.store.identities import get_agent
from gateway.store.schema import decisions
from ledger.database import read_only

def compensation_packet_id(decision_id: str) -> str:
    return COMPENSATION_PREFIX + decision_id


class Compensations:
    def __init__(self, gateway: Gateway, registry: Registry,
                 on_compensation: Callable[[str, str], None] | None = None) -> None:
        self.gateway = gateway
        self.registry = registry
        self.on_compensation = on_compensation  # (compensating tool, its decision's status)

    def plan(self, decision_id: str) -> tuple[Decision, Agent, Packet]:
        """The executed decision, its agent (allowed the compensating tool) and the compensating
        packet; refuses what cannot be compensated."""
        original = self.gateway.get(decision_id)
        execution = original.execution or {}
        if original.status != "executed" or execution.get("state") != "succeeded":
            raise NotCompensable(
                f"decision {shown(decision_id)} is {original.status}: only an executed action can be compensated",
                decision=original.model_dump(mode="json"))
        row = self._packet_row(decision_id)
        packet = Packet.model_validate_json(row["packet"])
        external_id = str(execution.get("external_id") or "")
        summary = execution.get("summary") or {}
        try:
            action = self.registry.compensation(packet.tool, packet.action.params, external_id, summary)
        except ToolNotReversible as exc:
            raise NotReversible(str(exc)) from None
        with read_only(self.gateway.db.connect()) as conn:
            record = get_agent(conn, row["agent"])
        agent = record.agent.model_copy(update={"tools": (*record.agent.tools, action.tool)})
        compensating = Packet(
            packet_id=compensation_packet_id(decision_id), agent=agent.name,
            action=Action(tool=action.tool, params=action.params),
            evidence={"compensates": {"decision_id": decision_id, "tool": packet.tool,
                                      "external_id": external_id, "summary": summary}},
            context={COMPENSATION_KEY: {"of": decision_id, "tool": packet.tool}},
        )
        return original, agent, compensating

    def compensate(self, person: Person, decision_id: str) -> Decision:
        """Submit the compensating packet (or return the one already submitted)."""
        if person.role not in APPROVER_ROLES:
            raise NotPermitted(f"role {shown(person.role)} cannot ask for a compensation")
        _original, agent, packet = self.plan(decision_id)
        decision = self.gateway.submit(agent, packet, compensation=True)
        if self.on_compensation is not None:
            self.on_compensation(packet.tool, decision.status)
        return decision

    def _packet_row(self, decision_id: str) -> dict[str, Any]:
        with read_only(self.gateway.db.connect()) as conn:
            row = conn.execute(select(decisions.c.agent, decisions.c.packet).where(
                and_(decisions.c.decision_id == decision_id))).one_or_none()
        if row is None:
            raise DecisionNotFound(f"no decision {shown(decision_id)}")
        return {"agent": str(row.agent), "packet": str(row.packet)}
