"""Approvals, rejections, expiry and the kill switch: every change to a pending decision.

An approval is bound to one decision, its packet hash and the policy digest it was decided under;
all three go into the hashed `approval` entry with the approver's identity. Each change locks the
decision row (PostgreSQL `FOR UPDATE`; SQLite's write lock) and checks the status again inside the
transaction, so of an approval and a rejection arriving together exactly one wins and the other
gets 409 `not_pending`.

When the last approval needed arrives, the packet is decided again under the policies and kill
switch active now (`_settle`): a violation now denies; an obligation the approvals gathered so far
do not cover keeps it pending; otherwise it executes. While the kill switch is engaged approvals
are still recorded but nothing is settled; releasing the switch settles every fully approved
decision.

An approval may be signed with the approver's passkey (`PasskeyAssertion`, a WebAuthn response
over `ledger.passkeys.approval_challenge` of the decision, its packet hash, its policy digest and
the approver). It must be when the decision is L3 and `passkeys_required_for_l3` is set, or when
the approver has registered a passkey (a person with a passkey approves with it, always):
otherwise `PasskeyRequired`. The assertion is checked inside the locked transaction
(`PasskeyInvalid` when it does not verify) and goes into the `approval` entry as "passkey", so
`warden audit verify` checks it offline.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select

from gateway.engine.agents import Agent
from gateway.engine.decider import Decider
from gateway.engine.delegation import Delegated, answers_json, delegated_answers
from gateway.engine.inputs import inputs_record
from gateway.store.identities import IdentityError, get_agent
from gateway.store.killswitch import KillSwitch, read_kill_switch, set_kill_switch
from gateway.engine.matrix import FOUNDER
from gateway.engine.models import ApprovalGrant, Decision, Packet, Reason, packet_hash
from gateway.execution.claims import Claim
from gateway.execution.outbox import enqueue
from gateway.pipeline.errors import (
    AlreadyApproved, ApprovalExpired, DecisionNotFound, NotPending, NotPermitted, OwnAgent, PasskeyInvalid,
    PasskeyRequired, PipelineError, RoleNotAllowed, shown,
)
from gateway.store import passkeys as passkey_store
from dsl.model import Risk
from gateway.store.records import load_decision, store_decision_update
from gateway.store.schema import approvals, decisions
from gateway.pipeline.submit import Gateway
from ledger.database import read_only
from ledger.passkeys import approval_challenge

#: The people roles that approve and reject (a founder for any role); see `dsl.model.PEOPLE_ROLES`.
APPROVER_ROLES: frozenset[str] = frozenset({FOUNDER, "approver"})

#: The engine a decision is decided again with, and OPA's answers for it, asked beforehand.
Asked = tuple[Decider, Mapping[str, Delegated]]


@dataclass(frozen=True)
class Person:
    """Who is acting: a user's email and role (or `cli:<name>` with a role, from the CLI)."""

    email: str
    role: str


@dataclass(frozen=True)
class PasskeyAssertion:
    """An approval's passkey signature: the `navigator.credentials.get()` response as JSON, and
    the relying party it was made for (the console's host name and origin)."""

    response_json: str
    rp_id: str
    origin: str


def covers(grants: list[ApprovalGrant], role: str, count: int) -> bool:
    """Whether distinct people with the right role (a founder counts for any role) number `count`."""
    people = {g.approver for g in grants if g.role == role or g.role == FOUNDER}
    return len(people) >= count


class Approvals:
    """The approval queue and its transitions, on top of a `Gateway`."""

    def __init__(self, gateway: Gateway, *, passkeys_required_for_l3: bool = False) -> None:
        self.gw = gateway
        self.passkeys_required_for_l3 = passkeys_required_for_l3

    # ------------------------------------------------------------ queue

    def pending(self, *, limit: int = 100) -> list[Decision]:
        query = (
            select(decisions.c.decision)
            .where(decisions.c.status == "pending_approval")
            .order_by(decisions.c.created_at)
            .limit(limit)
        )
        with read_only(self.gw.db.connect()) as conn:
            return [Decision.model_validate_json(raw) for raw in conn.execute(query).scalars()]

    # ------------------------------------------------------------ approve / reject

    def approve(self, person: Person, decision_id: str, comment: str | None,
                passkey: PasskeyAssertion | None = None) -> Decision:
        asked = self._ask([decision_id]).get(decision_id)
        result = self.gw.writer.run(lambda conn: self._approve(conn, person, decision_id, comment, passkey, asked))
        return self._after(result)

    def _ask(self, decision_ids: Iterable[str]) -> dict[str, Asked]:
        """OPA's answers for each pending decision whose tool has delegations, asked before the
        transaction that may decide it again (no network call inside the log's lock)."""
        ids = list(decision_ids)
        engine = self.gw.policies()
        asked: dict[str, Asked] = {}
        with read_only(self.gw.db.connect()) as conn:
            rows = conn.execute(
                select(decisions.c.decision_id, decisions.c.agent, decisions.c.packet, decisions.c.tool)
                .where(and_(decisions.c.decision_id.in_(ids), decisions.c.status == "pending_approval"))
            ).all() if ids else []
            wanted = [(row, _current_agent(conn, row.agent)) for row in rows if engine.delegations_for(row.tool)]
        for row, agent in wanted:
            if agent is not None:
                asked[row.decision_id] = (engine, self.gw.ask(engine, agent, Packet.model_validate_json(row.packet)))
        return asked

    def approval_options(self, person: Person, decision_id: str, rp_id: str) -> str:
        """The `navigator.credentials.get()` options (JSON) with which `person` signs their
        approval of `decision_id` with one of their passkeys (for the console)."""
        with read_only(self.gw.db.connect()) as conn:
            try:
                return passkey_store.approval_options(conn, person.email, decision_id, rp_id)
            except passkey_store.PasskeyError as exc:
                raise DecisionNotFound(f"no decision {shown(decision_id)}") from exc

    def reject(self, person: Person, decision_id: str, reason: str | None) -> Decision:
        return self._after(self.gw.writer.run(lambda conn: self._reject(conn, person, decision_id, reason)))

    def _after(self, result: tuple[Decision, PipelineError | None, Claim | None]) -> Decision:
        decision, refusal, claim = result
        if refusal is not None:
            raise refusal
        if claim is not None:  # the execution was queued already claimed by this request: run it
            executed = self.gw.outbox.run_now(claim)
            if executed is not None:
                return executed
        return decision

    def _locked_pending(self, conn: Connection, person: Person, decision_id: str) -> tuple[Decision, Any]:
        """The decision, locked, if `person` may act on it now; expiry is applied on the way."""
        decision = load_decision(conn, decision_id, for_update=True)
        if decision is None:
            raise DecisionNotFound(f"no decision {shown(decision_id)}")
        row = conn.execute(
            select(decisions.c.agent, decisions.c.packet, decisions.c.packet_hash)
            .where(decisions.c.decision_id == decision_id)
        ).one()
        if decision.status == "expired":
            raise ApprovalExpired(f"decision {shown(decision_id)} expired before it was approved",
                                  _json(decision))
        if decision.status != "pending_approval":
            raise NotPending(f"decision {shown(decision_id)} is {decision.status}", _json(decision))
        assert decision.approval is not None
        if person.role not in APPROVER_ROLES:
            raise NotPermitted(f"role {shown(person.role)} cannot approve or reject")
        required = decision.approval.required_role
        if person.role != FOUNDER and person.role != required:
            raise RoleNotAllowed(f"this decision needs a {required}'s approval")
        agent = _current_agent(conn, row.agent)
        if agent is not None and agent.owner and agent.owner.lower() == person.email.lower():
            raise OwnAgent(f"you own agent {shown(row.agent)}; another person must decide")
        return decision, row

    def _approve(
        self, conn: Connection, person: Person, decision_id: str, comment: str | None,
        passkey: PasskeyAssertion | None = None, asked: Asked | None = None,
    ) -> tuple[Decision, PipelineError | None, Claim | None]:
        decision, row = self._locked_pending(conn, person, decision_id)
        now = self.gw.clock()
        if self._expire_if_due(conn, decision, now):
            return decision, ApprovalExpired(f"decision {shown(decision_id)} expired", _json(decision)), None
        assert decision.approval is not None
        if any(g.approver == person.email for g in decision.approval.approvals):
            raise AlreadyApproved(f"{shown(person.email)} has already approved {shown(decision_id)}")
        signed = self._passkey(conn, person, decision, row.packet_hash, passkey)
        grant = ApprovalGrant(approver=person.email, role=person.role,
                              approved_at=datetime.fromtimestamp(now, UTC), comment=comment)
        conn.execute(insert(approvals).values(
            decision_id=decision_id, approver=person.email, role=person.role, comment=comment,
            approved_at=now))
        decision.approval.approvals.append(grant)
        self.gw.ledger.append(conn, "approval", person.email, decision_id, {
            "decision_id": decision_id, "packet_hash": row.packet_hash,
            "policy_digest": decision.policy_digest, "approver": person.email,
            "role": person.role, "comment": comment,
            "approvals": len(decision.approval.approvals),
            "required": {"role": decision.approval.required_role, "count": decision.approval.count},
            **({"passkey": signed} if signed is not None else {}),
        })
        claim = None
        if covers(decision.approval.approvals, decision.approval.required_role, decision.approval.count):
            claim = self._settle(conn, decision, row, now, lease_until=now + self.gw.outbox.lease_seconds,
                                 asked=asked)
        store_decision_update(conn, decision, now=now)
        return decision, None, claim

    def _passkey(self, conn: Connection, person: Person, decision: Decision, packet_hash: str,
                 passkey: PasskeyAssertion | None) -> dict[str, Any] | None:
        """The verified "passkey" object for the approval entry, or None for an approval that
        need not be signed; refuses a missing or bad assertion."""
        assert decision.decision_id is not None
        if passkey is None:
            if decision.risk == Risk.L3 and self.passkeys_required_for_l3:
                raise PasskeyRequired(f"approving the L3 action {shown(decision.decision_id)} needs your passkey: "
                                      "approve it in the console with your passkey")
            if passkey_store.has_passkey(conn, person.email):
                raise PasskeyRequired(f"{shown(person.email)} has a passkey, so their approvals are signed with it: "
                                      "approve it in the console with your passkey")
            return None
        challenge = approval_challenge(decision.decision_id, packet_hash, decision.policy_digest, person.email)
        try:
            return passkey_store.verify_approval_assertion(conn, person.email, passkey.response_json, challenge,
                                                           passkey.rp_id, passkey.origin)
        except passkey_store.PasskeyError as exc:
            raise PasskeyInvalid(str(exc)) from exc

    def _reject(
        self, conn: Connection, person: Person, decision_id: str, reason: str | None
    ) -> tuple[Decision, PipelineError | None, Claim | None]:
        decision, _row = self._locked_pending(conn, person, decision_id)
        now = self.gw.clock()
        if self._expire_if_due(conn, decision, now):
            return decision, ApprovalExpired(f"decision {shown(decision_id)} expired", _json(decision)), None
        decision.status = "rejected"
        decision.reasons.append(Reason(policy="warden", rule="rejected", effect="approval",
                                       message=f"rejected by {person.email}: {reason or 'no reason given'}"))
        self.gw.ledger.append(conn, "rejection", person.email, decision_id, {
            "decision_id": decision_id, "policy_digest": decision.policy_digest,
            "approver": person.email, "role": person.role, "reason": reason,
        })
        store_decision_update(conn, decision, now=now)
        return decision, None, None

    # ------------------------------------------------------------ settle

    def _settle(self, conn: Connection, decision: Decision, row: Any, now: float, *,
                lease_until: float | None = None, asked: Asked | None = None) -> Claim | None:
        """Decide again under the policies and kill switch active now; when still allowed, the
        decision is `executing` and its execution queued. With `lease_until` the row is queued
        already claimed by the caller, who runs it right after commit (no worker can take it
        first), and the claim is returned. Leaves the decision pending while the kill switch is
        engaged. `asked`: the engine and OPA's answers asked beforehand (a delegation without an
        answer denies)."""
        if read_kill_switch(conn).engaged:
            return None
        packet = Packet.model_validate_json(row.packet)
        agent = _current_agent(conn, row.agent)
        assert decision.approval is not None and decision.decision_id is not None
        if packet_hash(packet) != row.packet_hash:  # the approval is bound to this exact packet
            self._conclude(conn, decision, "denied", now, Reason(
                policy="warden", rule="packet_changed", effect="deny",
                message="the stored packet no longer matches the hash the approvals were given for"))
            return None
        if agent is None:
            self._conclude(conn, decision, "denied", now, Reason(
                policy="warden", rule="agent_revoked", effect="deny",
                message=f"agent {row.agent!r} was revoked before the approval completed"))
            return None
        engine, delegated = asked if asked is not None else (self.gw.policies(), {})
        moment = datetime.fromtimestamp(now, UTC)
        again = engine.decide(packet, agent, now=moment, delegated=delegated)
        note: dict[str, Any] = {"reevaluated_under": again.policy_digest, "status": again.status,
                                "risk": again.risk.name, "reasons": [r.model_dump() for r in again.reasons],
                                "inputs": inputs_record(agent, moment, False, engine.approval_expiry)}
        answered = delegated_answers(again)
        if answered:  # what OPA answered this time, as the decision entry records the first answers
            note["opa"] = answers_json(answered)
        if again.status == "denied" or again.status == "drafted":
            decision.reasons.extend(r for r in again.reasons if r not in decision.reasons)
            self._conclude(conn, decision, again.status, now, None, note)
            return None
        if again.status == "pending_approval" and again.approval is not None and not covers(
            decision.approval.approvals, again.approval.required_role, again.approval.count
        ):
            decision.approval.required_role = again.approval.required_role
            decision.approval.count = again.approval.count
            self.gw.ledger.append(conn, "reevaluation", "warden", decision.decision_id, {**note, "outcome": "still_pending"})
            return None
        decision.status = "executing"
        self.gw.ledger.append(conn, "reevaluation", "warden", decision.decision_id, {**note, "outcome": "executing"})
        return enqueue(conn, decision_id=decision.decision_id, tool=packet.action.tool,
                       params=packet.action.params, now=now, lease_until=lease_until)

    def _conclude(self, conn: Connection, decision: Decision, status: str, now: float,
                  reason: Reason | None, note: dict[str, Any] | None = None) -> None:
        if reason is not None:
            decision.reasons.append(reason)
        decision.status = status  # type: ignore[assignment]
        self.gw.ledger.append(conn, "reevaluation", "warden", decision.decision_id or "",
                              {**(note or {}), "outcome": status})

    # ------------------------------------------------------------ expiry

    def _expire_if_due(self, conn: Connection, decision: Decision, now: float) -> bool:
        assert decision.approval is not None
        if decision.approval.expires_at.timestamp() > now:
            return False
        decision.status = "expired"
        decision.reasons.append(Reason(policy="warden", rule="approval_expired", effect="approval",
                                       message="no approval arrived before the deadline: denied"))
        self.gw.ledger.append(conn, "expiry", "warden", decision.decision_id or "", {
            "decision_id": decision.decision_id,
            "expired_at": decision.approval.expires_at.isoformat(),
            "approvals": len(decision.approval.approvals),
        })
        store_decision_update(conn, decision, now=now)
        return True

    def expire_due(self, *, limit: int = 100) -> int:
        """Mark every pending decision past its deadline as expired; returns how many."""
        now = self.gw.clock()
        with read_only(self.gw.db.connect()) as conn:
            due = list(conn.execute(
                select(decisions.c.decision_id).where(and_(
                    decisions.c.status == "pending_approval", decisions.c.expires_at <= now)
                ).limit(limit)).scalars())

        def work(conn: Connection, decision_id: str) -> bool:
            decision = load_decision(conn, decision_id, for_update=True)
            if decision is None or decision.status != "pending_approval":
                return False
            return self._expire_if_due(conn, decision, self.gw.clock())

        expired = 0
        for decision_id in due:
            if self.gw.writer.run(functools.partial(work, decision_id=decision_id)):
                expired += 1
        return expired

    # ------------------------------------------------------------ kill switch

    def set_kill_switch(self, person: Person, engaged: bool, reason: str | None) -> KillSwitch:
        if person.role != FOUNDER:
            raise NotPermitted("only a founder engages or releases the kill switch")

        asked = {} if engaged else self._ask(self._pending_ids())

        def work(conn: Connection) -> tuple[KillSwitch, list[str]]:
            now = self.gw.clock()
            state = set_kill_switch(conn, self.gw.ledger, engaged=engaged, reason=reason,
                                    by=person.email, now=now)
            queued: list[str] = []
            if not engaged:
                queued = self._settle_approved(conn, now, asked)
            return state, queued

        state, _queued = self.gw.writer.run(work)  # the outbox worker picks up what was queued
        return state

    def _pending_ids(self) -> list[str]:
        with read_only(self.gw.db.connect()) as conn:
            return list(conn.execute(
                select(decisions.c.decision_id).where(decisions.c.status == "pending_approval")).scalars())

    def _settle_approved(self, conn: Connection, now: float, asked: Mapping[str, Asked]) -> list[str]:
        """On release: settle every pending decision whose approvals are complete."""
        queued: list[str] = []
        rows = conn.execute(
            select(decisions.c.decision_id, decisions.c.agent, decisions.c.packet, decisions.c.packet_hash)
            .where(decisions.c.status == "pending_approval")
        ).all()
        for row in rows:
            decision = load_decision(conn, row.decision_id, for_update=True)
            if decision is None or decision.approval is None:
                continue
            if not covers(decision.approval.approvals, decision.approval.required_role, decision.approval.count):
                continue
            if self._expire_if_due(conn, decision, now):
                continue
            self._settle(conn, decision, row, now, asked=asked.get(row.decision_id))  # queued, not claimed
            if decision.status == "executing":
                queued.append(row.decision_id)
            store_decision_update(conn, decision, now=now)
        return queued

    def kill_switch(self) -> KillSwitch:
        with read_only(self.gw.db.connect()) as conn:
            return read_kill_switch(conn)


def _current_agent(conn: Connection, name: str) -> Agent | None:
    """The agent as registered now; None when unknown or revoked."""
    try:
        record = get_agent(conn, name)
    except IdentityError:
        return None
    return record.agent if record.active else None


def _json(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(mode="json")


__all__ = ["Approvals", "PasskeyAssertion", "Person", "covers", "Agent", "packet_hash"]
