"""The decision pipeline of DESIGN.md, behind the HTTP API.

    packet ─► authenticate agent (app) ─► validate: agent, tool known, tool allowed, params
           ─► idempotency: same agent + packet_id → the stored decision; other body → 409
           ─► evaluate: kill switch, policies, invariants, proof, autonomy × risk
           ─► record: decision row + `decision` audit entry (+ outbox row, + incidents), one commit
           ─► execute: the outbox runs the connector with the decision id as idempotency key
           ─► respond

Every write happens in one transaction with the audit entry that records it: a unit of work of
the gateway's `Writer`, through the group committer when there is one, so many requests share one
durable commit. Whatever the gateway cannot record, it does not execute: an exception before the
commit leaves no decision, no entry and no outbox row, and the request gets a problem response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select
from sqlalchemy.exc import IntegrityError

from connectors.registry import ParamsError, Registry
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.store.killswitch import read_kill_switch
from gateway.engine.models import Decision, Packet, packet_hash
from gateway.execution.outbox import Claim, Outbox, enqueue
from gateway.pipeline.errors import (
    AgentMismatch, DecisionNotFound, InvalidParams, PacketIdReused, ToolNotAllowed, UnknownTool, shown,
)
from gateway.store.records import audit_ref, dumps, load_decision, new_decision_id, record_incident
from gateway.store.schema import decisions, incidents
from gateway.store.writer import Writer
from ledger.database import read_only

log = logging.getLogger("warden.gateway")

_INSERT_DECISION = insert(decisions)

#: Statuses after which a decision never changes again.
FINAL = frozenset({"executed", "denied", "drafted", "rejected", "expired", "failed"})


@dataclass(frozen=True)
class Limits:
    repeated_denials_threshold: int = 5
    repeated_denials_window: float = 300.0


class Gateway:
    """The pipeline and every state change of a decision, over one database.

    `policies()` returns the decision engine for the policy set active now (it changes on
    reload); `clock()` returns UNIX seconds.
    """

    def __init__(
        self,
        writer: Writer,
        *,
        policies: Callable[[], Decider],
        registry: Registry,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
        limits: Limits = Limits(),
        on_decision: Callable[[Decision, str, float], None] | None = None,
    ) -> None:
        self.writer = writer
        self.db = writer.engine
        self.ledger = writer.ledger
        self.policies = policies
        self.registry = registry
        self.outbox = outbox
        self.clock = clock
        self.limits = limits
        self.on_decision = on_decision

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ---------------------------------------------------------------- validation

    def check_packet(self, agent: Agent, packet: Packet, *, record: bool = True) -> dict[str, Any]:
        """Refuse what no policy should even see; returns the validated params. An agent naming
        another agent, or a tool outside its allowlist, is refused and, unless `record` is false
        (a dry run), recorded (`refusal`)."""
        tool = packet.action.tool
        if packet.agent != agent.name:
            if record:
                self._refuse(agent, packet, "agent_mismatch")
            raise AgentMismatch(
                f"the packet names agent {shown(packet.agent)} but the token belongs to {shown(agent.name)}"
            )
        spec = self.registry.spec(tool)
        if spec is None:
            raise UnknownTool(f"no tool {shown(tool)}; GET /v1/tools lists the tools")
        if not agent.may_use(tool):
            if record:
                self._refuse(agent, packet, "tool_not_allowed")
            raise ToolNotAllowed(
                f"agent {shown(agent.name)} may not use {shown(tool)} (its allowlist: "
                f"{', '.join(agent.tools) or 'none'})"
            )
        try:
            return self.registry.validate(tool, packet.action.params)
        except ParamsError as exc:
            raise InvalidParams(f"the params do not match {tool}", exc.errors) from exc

    def _refuse(self, agent: Agent, packet: Packet, code: str) -> None:
        self.writer.run(
            lambda conn: self.ledger.append(
                conn, "refusal", agent.name, packet.packet_id,
                {"code": code, "packet_agent": packet.agent, "tool": packet.action.tool,
                 "packet_hash": packet_hash(packet)},
            )
        )

    # ---------------------------------------------------------------- submit

    def evaluate(self, agent: Agent, packet: Packet) -> Decision:
        """Dry run: the decision a real run would get; nothing recorded or executed."""
        self.check_packet(agent, packet, record=False)
        with read_only(self.db.connect()) as conn:
            kill = read_kill_switch(conn).engaged
        return self.policies().decide(packet, agent, now=self.now(), kill_switch=kill, dry_run=True)

    def submit(self, agent: Agent, packet: Packet) -> Decision:
        """The whole pipeline for one packet; returns the decision as stored (and executed)."""
        self.check_packet(agent, packet)
        digest = packet_hash(packet)
        started = time.perf_counter()
        engine = self.policies()
        try:
            decision, claim = self.writer.run(lambda conn: self._record(conn, engine, agent, packet, digest))
        except IntegrityError:
            # The same agent + packet_id was recorded before (a retry, or a concurrent twin that
            # committed first): answer with the stored decision, or 409 for another body.
            stored = self._stored(agent.name, packet, digest)
            if stored is None:
                raise
            return stored
        if claim is not None:
            decision = self.outbox.run_now(claim) or decision
        if self.on_decision is not None:  # with the outcome: executed, failed or still executing
            self.on_decision(decision, packet.action.tool, time.perf_counter() - started)
        return decision

    def _stored(self, agent: str, packet: Packet, digest: str) -> Decision | None:
        with read_only(self.db.connect()) as conn:
            row = conn.execute(
                select(decisions.c.packet_hash, decisions.c.decision).where(
                    and_(decisions.c.agent == agent, decisions.c.packet_id == packet.packet_id)
                )
            ).one_or_none()
        if row is None:
            return None
        if row.packet_hash != digest:
            raise PacketIdReused(
                f"packet_id {shown(packet.packet_id)} was already used by {shown(agent)} with a "
                "different packet; use a new packet_id for a new action",
            )
        return Decision.model_validate_json(row.decision)

    def _record(
        self, conn: Connection, engine: Decider, agent: Agent, packet: Packet, digest: str
    ) -> tuple[Decision, Claim | None]:
        """Decide and record, in the caller's transaction. Returns the decision and, when it is
        to be executed, the claim on its outbox row (this process runs it right after commit)."""
        now = self.clock()
        kill = read_kill_switch(conn).engaged
        decision = engine.decide(packet, agent, now=datetime.fromtimestamp(now, UTC), kill_switch=kill)
        decision.decision_id = new_decision_id()
        queued = decision.status == "executed"
        if queued:
            decision.status = "executing"  # executed once the connector confirms
        expires = decision.approval.expires_at.timestamp() if decision.approval else None
        packet_json = packet.model_dump(mode="json")
        entry = self.ledger.append(
            conn, "decision", agent.name, decision.decision_id,
            {"decision": decision.model_dump(mode="json", exclude={"audit", "execution"}),
             "packet": packet_json, "packet_hash": digest},
        )
        decision.audit = audit_ref(entry)
        # A duplicate agent + packet_id fails here (unique key); the caller's transaction (or
        # savepoint) rolls back, the entry above with it, leaving no gap in the log.
        conn.execute(_INSERT_DECISION, {
            "decision_id": decision.decision_id, "agent": agent.name, "packet_id": packet.packet_id,
            "packet_hash": digest, "tool": packet.action.tool, "status": decision.status,
            "risk": int(decision.risk), "policy_digest": decision.policy_digest,
            "packet": dumps(packet_json), "decision": decision.model_dump_json(),
            "created_at": now, "updated_at": now, "expires_at": expires,
        })
        claim = None
        if queued:
            claim = enqueue(conn, decision_id=decision.decision_id, tool=packet.action.tool,
                            params=packet.action.params, now=now,
                            lease_until=now + self.outbox.lease_seconds)
        self._incidents_for(conn, decision, agent, now)
        return decision, claim

    def _incidents_for(self, conn: Connection, decision: Decision, agent: Agent, now: float) -> None:
        """Proof mismatches (claimed PASS, verified FAIL) and repeated denials open incidents."""
        false_claims = [i for i in decision.invariants if i.mismatch == "claimed_pass_verified_fail"]
        if false_claims:
            failed = [i.id for i in false_claims if i.verified == "FAIL"]
            unverifiable = [i.id for i in false_claims if i.verified != "FAIL"]
            said = [f"{', '.join(failed)}, which Warden verified as FAIL"] if failed else []
            if unverifiable:
                said.append(f"{', '.join(unverifiable)}, which Warden could not evaluate "
                            "(the claim was not accepted)")
            record_incident(
                conn, self.ledger, kind="proof_mismatch", agent=agent.name,
                decision_id=decision.decision_id, now=now,
                summary=f"{agent.name} claimed PASS for {'; and for '.join(said)}",
                detail={"invariants": [i.id for i in false_claims], "packet_id": decision.packet_id},
            )
        if decision.status != "denied":
            return
        since = now - self.limits.repeated_denials_window
        denials = conn.execute(
            select(func.count()).select_from(decisions).where(
                and_(decisions.c.agent == agent.name, decisions.c.status == "denied",
                     decisions.c.created_at >= since)
            )
        ).scalar_one()
        if denials < self.limits.repeated_denials_threshold:
            return
        open_already = conn.execute(
            select(func.count()).select_from(incidents).where(
                and_(incidents.c.kind == "repeated_denials", incidents.c.agent == agent.name,
                     incidents.c.created_at >= since)
            )
        ).scalar_one()
        if not open_already:
            record_incident(
                conn, self.ledger, kind="repeated_denials", agent=agent.name,
                decision_id=decision.decision_id, now=now,
                summary=f"{agent.name} had {denials} actions denied in the last "
                f"{int(self.limits.repeated_denials_window)} s",
                detail={"denials": int(denials), "window_seconds": self.limits.repeated_denials_window},
            )

    # ---------------------------------------------------------------- reads

    def get(self, decision_id: str) -> Decision:
        with read_only(self.db.connect()) as conn:
            found = load_decision(conn, decision_id)
        if found is None:
            raise DecisionNotFound(f"no decision {shown(decision_id)}")
        return found

    def decision_agent(self, decision_id: str) -> str | None:
        with read_only(self.db.connect()) as conn:
            return conn.execute(
                select(decisions.c.agent).where(decisions.c.decision_id == decision_id)
            ).scalar_one_or_none()

    def list_incidents(self, *, limit: int = 100, kind: str | None = None) -> list[Mapping[str, Any]]:
        query = select(incidents).order_by(incidents.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(incidents.c.kind == kind)
        with read_only(self.db.connect()) as conn:
            return [dict(row._mapping) for row in conn.execute(query)]
