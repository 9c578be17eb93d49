"""The decision pipeline of DESIGN.md, behind the HTTP API.

    packet ─► authenticate agent (app) ─► validate: agent, tool known, tool allowed, params
           ─► idempotency: same agent + packet_id → the stored decision; other body → 409
           ─► evaluate: kill switch, policies, invariants, proof, autonomy × risk
           ─► record: decision row + `decision` audit entry (+ outbox row, + incidents), one commit
           ─► execute: the outbox runs the connector with the decision id as idempotency key
           ─► respond

A decision is made and serialised on the caller's thread (`_prepare`: the decision, its entry's
canonical data, its row), then placed by the log writer (`gateway.store.writer`) as staged work in
its next batch: seq, hash, rows, one durable commit shared with whatever else was queued. Over
HTTP (`submit_async`) no thread waits on the request's behalf. Whatever the gateway cannot record,
it does not execute: an exception before the commit leaves no decision, no entry and no outbox
row, and the request gets a problem response.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.exc import IntegrityError

from connectors.registry import ParamsError, Registry
from gateway.delegation.opa import OpaDelegate
from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated
from gateway.engine.inputs import inputs_record
from gateway.store.killswitch import read_kill_switch
from gateway.engine.models import Decision, Packet, packet_hash
from gateway.execution.outbox import Claim, Outbox, stage_enqueue
from gateway.pipeline.errors import (
    AgentMismatch, DecisionNotFound, InvalidParams, PacketIdReused, ReservedName, ToolNotAllowed,
    UnknownTool, shown,
)
from gateway.store.records import INSERT_DECISION, audit_ref, dumps, load_decision, new_decision_id, stage_incident
from gateway.store.schema import decisions, incidents
from gateway.store.writer import Batch, Writer
from ledger.canonical import Canonical
from ledger.database import read_only
from ledger.entry import EntryData

log = logging.getLogger("warden.gateway")

#: Reserved for the compensations people ask for (`gateway.pipeline.compensate`): the packet_id
#: prefix and the context key policies read. An agent's packet may use neither, so a policy can
#: trust `has(context.compensation)`.
COMPENSATION_PREFIX = "compensate."
COMPENSATION_KEY = "compensation"

#: Statuses after which a decision never changes again.
FINAL = frozenset({"executed", "denied", "drafted", "rejected", "expired", "failed"})


_COUNT_DENIALS = (f"SELECT count(*) FROM {decisions.name} WHERE agent = ? AND status = 'denied' "
                  "AND created_at >= ?")
_COUNT_OPEN = f"SELECT count(*) FROM {incidents.name} WHERE kind = 'repeated_denials' AND agent = ? AND created_at >= ?"

#: Refusals recorded as `refusal` entries (the others leave no record): the error's code.
REFUSALS = (AgentMismatch, ToolNotAllowed)


def _refusal(agent: Agent, packet: Packet, error: Exception) -> Callable[[Batch], None]:
    code = "agent_mismatch" if isinstance(error, AgentMismatch) else "tool_not_allowed"
    data = EntryData.of({"code": code, "packet_agent": packet.agent, "tool": packet.action.tool,
                         "packet_hash": packet_hash(packet)})

    def work(batch: Batch) -> None:
        batch.append("refusal", agent.name, packet.packet_id, data)

    return work


@dataclass(frozen=True)
class Limits:
    repeated_denials_threshold: int = 5
    repeated_denials_window: float = 300.0


@dataclass
class _Prepared:
    """A decision made and serialised, waiting for its place in the log."""

    gateway: Gateway
    agent: Agent
    packet: Packet
    engine: Decider
    kill: bool
    now: float
    digest: str
    decision: Decision
    entry: EntryData
    row_head: str  # the decision's JSON for its row, up to its audit reference
    row: tuple[Any, ...]  # the row's other columns, in INSERT_DECISION's order
    params_json: str | None  # to execute: the outbox row's params
    incidents: list[dict[str, Any]]
    delegated: Mapping[str, Delegated]  # OPA's answers the decision was made with

    def work(self, batch: Batch) -> tuple[Decision, Claim | None]:
        return self.gateway._stage(self, batch)


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
        delegate: OpaDelegate | None = None,
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
        self.delegate = delegate if delegate is not None else OpaDelegate()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ---------------------------------------------------------------- validation

    def check_packet(self, agent: Agent, packet: Packet, *, record: bool = True,
                     compensation: bool = False) -> dict[str, Any]:
        """Refuse what no policy should even see; returns the validated params. An agent naming
        another agent, or a tool outside its allowlist, is refused and, unless `record` is false
        (a dry run), recorded (`refusal`). `compensation`: Warden's own compensating packet,
        the only one that may use the names reserved for it."""
        try:
            return self._validate(agent, packet, compensation=compensation)
        except REFUSALS as exc:
            if record:
                self.writer.run_staged(_refusal(agent, packet, exc))
            raise

    async def _check_packet_async(self, agent: Agent, packet: Packet) -> None:
        try:
            self._validate(agent, packet, compensation=False)
        except REFUSALS as exc:
            await self.writer.stage_async(_refusal(agent, packet, exc))
            raise

    def _validate(self, agent: Agent, packet: Packet, *, compensation: bool) -> dict[str, Any]:
        tool = packet.action.tool
        if packet.agent != agent.name:
            raise AgentMismatch(
                f"the packet names agent {shown(packet.agent)} but the token belongs to {shown(agent.name)}"
            )
        if not compensation and (packet.packet_id.startswith(COMPENSATION_PREFIX) or COMPENSATION_KEY in packet.context):
            raise ReservedName(
                f"packet_id {COMPENSATION_PREFIX!r}... and context.{COMPENSATION_KEY} are reserved for the "
                "compensations people ask for (POST /v1/actions/{id}/compensate); policies trust them"
            )
        spec = self.registry.spec(tool)
        if spec is None:
            raise UnknownTool(f"no tool {shown(tool)}; GET /v1/tools lists the tools")
        if not agent.may_use(tool):
            raise ToolNotAllowed(
                f"agent {shown(agent.name)} may not use {shown(tool)} (its allowlist: "
                f"{', '.join(agent.tools) or 'none'})"
            )
        try:
            return self.registry.validate(tool, packet.action.params)
        except ParamsError as exc:
            raise InvalidParams(f"the params do not match {tool}", exc.errors) from exc

    # ---------------------------------------------------------------- delegation

    def ask(self, engine: Decider, agent: Agent, packet: Packet) -> dict[str, Delegated]:
        """OPA's answers for the delegations that apply to the packet's tool (most have none),
        asked before deciding: the engine never touches the network."""
        delegations = engine.delegations_for(packet.action.tool)
        return self.delegate.ask(delegations, packet, agent) if delegations else {}

    async def ask_async(self, engine: Decider, agent: Agent, packet: Packet) -> dict[str, Delegated]:
        delegations = engine.delegations_for(packet.action.tool)
        return await self.delegate.ask_async(delegations, packet, agent) if delegations else {}

    # ---------------------------------------------------------------- submit

    def evaluate(self, agent: Agent, packet: Packet) -> Decision:
        """Dry run: the decision a real run would get; nothing recorded or executed (OPA is
        asked, as for a real run)."""
        self.check_packet(agent, packet, record=False)
        with read_only(self.db.connect()) as conn:
            kill = read_kill_switch(conn).engaged
        engine = self.policies()
        return engine.decide(packet, agent, now=self.now(), kill_switch=kill, dry_run=True,
                             delegated=self.ask(engine, agent, packet))

    def submit(self, agent: Agent, packet: Packet, *, compensation: bool = False) -> Decision:
        """The whole pipeline for one packet; returns the decision as stored (and executed).
        `compensation`: the packet is Warden's own compensation of an executed action."""
        self.check_packet(agent, packet, compensation=compensation)
        started = time.perf_counter()
        engine = self.policies()
        prepared = self._prepare(agent, packet, engine, self.writer.kill_switch.engaged,
                                 delegated=self.ask(engine, agent, packet))
        try:
            decision, claim = self.writer.run_staged(prepared.work)
        except IntegrityError as exc:
            return self._duplicate(agent, packet, prepared.digest, exc)
        if claim is not None:
            decision = self.outbox.run_now(claim) or decision
        self._observe(decision, packet, started)
        return decision

    async def submit_async(self, agent: Agent, packet: Packet) -> Decision:
        """`submit` on the event loop: parse, decide and serialise here, record with the log
        writer's next batch, execute on a thread, record the outcome with the batch after. No
        thread waits for the database on the request's behalf."""
        await self._check_packet_async(agent, packet)
        started = time.perf_counter()
        engine = self.policies()
        delegated = await self.ask_async(engine, agent, packet)
        prepared = self._prepare(agent, packet, engine, self.writer.kill_switch.engaged, delegated=delegated)
        try:
            decision, claim = await self.writer.stage_async(prepared.work)
        except IntegrityError as exc:
            return await asyncio.to_thread(self._duplicate, agent, packet, prepared.digest, exc)
        if claim is not None:
            decision = await self.outbox.run_now_async(claim, decision)
        self._observe(decision, packet, started)
        return decision

    def _observe(self, decision: Decision, packet: Packet, started: float) -> None:
        if self.on_decision is not None:  # with the outcome: executed, failed or still executing
            self.on_decision(decision, packet.action.tool, time.perf_counter() - started)

    def _duplicate(self, agent: Agent, packet: Packet, digest: str, error: IntegrityError) -> Decision:
        """The same agent + packet_id was recorded before (a retry, or a concurrent twin that
        committed first): the stored decision, or 409 for another body."""
        with read_only(self.db.connect()) as conn:
            row = conn.execute(
                select(decisions.c.packet_hash, decisions.c.decision).where(
                    and_(decisions.c.agent == agent.name, decisions.c.packet_id == packet.packet_id)
                )
            ).one_or_none()
        if row is None:  # the unique key was not the cause after all
            raise error
        if row.packet_hash != digest:
            raise PacketIdReused(
                f"packet_id {shown(packet.packet_id)} was already used by {shown(agent.name)} with a "
                "different packet; use a new packet_id for a new action",
            )
        return Decision.model_validate_json(row.decision)

    def _prepare(self, agent: Agent, packet: Packet, engine: Decider, kill: bool,
                 now: float | None = None, *, delegated: Mapping[str, Delegated]) -> _Prepared:
        """Decide and serialise, on the caller's thread; the log writer only places the result.
        `kill` is the kill switch as last known: the batch decides again if it reads otherwise
        (with the same answers from OPA)."""
        now = self.clock() if now is None else now
        packet_json = packet.model_dump(mode="json")
        packet_bytes = Canonical.of(packet_json)
        digest = "sha256:" + hashlib.sha256(packet_bytes.raw).hexdigest()
        moment = datetime.fromtimestamp(now, UTC)
        decision = engine.decide(packet, agent, now=moment, kill_switch=kill, delegated=delegated)
        decision.decision_id = new_decision_id()
        queued = decision.status == "executed"
        if queued:
            decision.status = "executing"  # executed once the connector confirms
        recorded = Canonical.of(decision.model_dump(mode="json", exclude={"audit", "execution"}))
        entry = EntryData.compose({"decision": recorded, "packet": packet_bytes, "packet_hash": Canonical.of(digest),
                                   "inputs": Canonical.of(inputs_record(agent, moment, kill, engine.approval_expiry))})
        expires = decision.approval.expires_at.timestamp() if decision.approval else None
        row = (decision.decision_id, agent.name, packet.packet_id, digest, packet.action.tool, decision.status,
               int(decision.risk), decision.policy_digest, packet_bytes.raw.decode(), now, now, expires)
        return _Prepared(
            self, agent, packet, engine, kill, now, digest, decision, entry,
            recorded.raw.decode()[:-1] + ',"execution":null,"audit":', row,
            dumps(dict(packet.action.params)) if queued else None, self._proof_incidents(decision, agent),
            delegated,
        )

    def _proof_incidents(self, decision: Decision, agent: Agent) -> list[dict[str, Any]]:
        """Proof mismatches (claimed PASS, verified FAIL) open an incident."""
        false_claims = [i for i in decision.invariants if i.mismatch == "claimed_pass_verified_fail"]
        if not false_claims:
            return []
        failed = [i.id for i in false_claims if i.verified == "FAIL"]
        unverifiable = [i.id for i in false_claims if i.verified != "FAIL"]
        said = [f"{', '.join(failed)}, which Warden verified as FAIL"] if failed else []
        if unverifiable:
            said.append(f"{', '.join(unverifiable)}, which Warden could not evaluate "
                        "(the claim was not accepted)")
        return [dict(
            kind="proof_mismatch", agent=agent.name, decision_id=decision.decision_id,
            summary=f"{agent.name} claimed PASS for {'; and for '.join(said)}",
            detail={"invariants": [i.id for i in false_claims], "packet_id": decision.packet_id},
        )]

    def _stage(self, prepared: _Prepared, batch: Batch) -> tuple[Decision, Claim | None]:
        """Record a prepared decision in the log writer's batch: its entry, its row, its outbox
        row (claimed by this process, which runs it right after the commit), its incidents."""
        if batch.kill_switch.engaged != prepared.kill:  # it changed since: decide again
            prepared = self._prepare(prepared.agent, prepared.packet, prepared.engine,
                                     batch.kill_switch.engaged, prepared.now, delegated=prepared.delegated)
        decision = prepared.decision
        assert decision.decision_id is not None
        entry = batch.append("decision", prepared.agent.name, decision.decision_id, prepared.entry)
        ref = audit_ref(entry)
        decision.audit = ref
        batch.queue(INSERT_DECISION, (*prepared.row[:9], f'{prepared.row_head}{{"seq":{ref.seq},'
                                      f'"leaf_hash":"{ref.leaf_hash}"}}}}', *prepared.row[9:]))
        claim = None
        if prepared.params_json is not None:
            claim = stage_enqueue(batch, decision_id=decision.decision_id, tool=prepared.packet.action.tool,
                                  params_json=prepared.params_json, now=prepared.now,
                                  lease_until=prepared.now + self.outbox.lease_seconds)
        for incident in prepared.incidents:
            stage_incident(batch, now=prepared.now, **incident)
        if decision.status == "denied":
            self._repeated_denials(batch, decision, prepared.agent, prepared.now)
        return decision, claim

    def _repeated_denials(self, batch: Batch, decision: Decision, agent: Agent, now: float) -> None:
        """Repeated denials in the window open an incident (one per window)."""
        since = now - self.limits.repeated_denials_window
        denials = batch.execute(_COUNT_DENIALS, (agent.name, since)).fetchone()[0]
        if denials < self.limits.repeated_denials_threshold:
            return
        if batch.execute(_COUNT_OPEN, (agent.name, since)).fetchone()[0]:
            return
        stage_incident(
            batch, kind="repeated_denials", agent=agent.name, decision_id=decision.decision_id, now=now,
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
