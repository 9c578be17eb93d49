"""The event: one audit entry of a kind subscribers care about, projected for them.

    {"id": "evt_42", "type": "execution", "seq": 42, "leaf_hash": "9f…", "timestamp": "2026-…Z",
     "subject": "dec_…", "decision_id": "dec_…", "agent": "refund-bot", "data": {…}}

`seq` and `leaf_hash` are the audit entry's: `GET /v1/audit/proofs/inclusion?seq=42` proves it
against a signed checkpoint. `data` is a projection of the entry's data that every role allowed
to see the event may read (never the packet's params or evidence, nor an incident's detail).
The id is the same for every reader, so a webhook receiver dedupes by it (`webhook-id`).

Who sees what (`visible`): an agent, only the decision, approval, rejection, expiry and execution
events of its own decisions; people of every role, everything but incidents; incidents, the
roles that read `GET /v1/incidents` (founders, approvers, auditors).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dsl.model import PEOPLE_ROLES

#: The kinds of event, in the order the documentation lists them.
EVENT_KINDS: tuple[str, ...] = ("decision", "approval", "rejection", "expiry", "execution", "incident",
                                "kill_switch", "policy_activated")
#: The kinds an agent may see, of its own decisions only.
AGENT_KINDS = frozenset({"decision", "approval", "rejection", "expiry", "execution"})
#: The roles that see incidents (as `GET /v1/incidents` admits them).
INCIDENT_ROLES = frozenset({"founder", "approver", "auditor"})


class UnknownKind(ValueError):
    """A filter names a kind of event that does not exist."""


def parse_kinds(text: str | None) -> frozenset[str]:
    """`decision,execution` → those kinds; empty or None: every kind. Refuses an unknown one."""
    if text is None or not text.strip():
        return frozenset(EVENT_KINDS)
    kinds = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(kinds - set(EVENT_KINDS))
    if unknown:
        raise UnknownKind(f"unknown event kind(s) {', '.join(map(repr, unknown))}; "
                          f"the kinds are {', '.join(EVENT_KINDS)}")
    return frozenset(kinds)


@dataclass(frozen=True)
class Event:
    seq: int
    leaf_hash: str  # hex
    kind: str
    time: str  # the entry's RFC 3339 time
    subject: str
    decision_id: str | None
    agent: str | None  # whose decision it concerns, when it concerns one
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return f"evt_{self.seq}"

    def document(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.kind, "seq": self.seq, "leaf_hash": self.leaf_hash,
                "timestamp": self.time, "subject": self.subject, "decision_id": self.decision_id,
                "agent": self.agent, "data": self.data}

    def body(self) -> bytes:
        """The bytes sent: the same for every reader and every attempt (sorted keys, compact)."""
        return json.dumps(self.document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def visible(event: Event, role: str, name: str) -> bool:
    """May a caller with `role` (`agent` or a person's role) named `name` see `event`?"""
    if role == "agent":
        return event.kind in AGENT_KINDS and event.agent is not None and event.agent == name
    if role not in PEOPLE_ROLES:
        return False
    return event.kind != "incident" or role in INCIDENT_ROLES


def decision_of(kind: str, subject: str, data: dict[str, Any]) -> str | None:
    """The decision an entry concerns, if any."""
    if kind in AGENT_KINDS:
        return subject or None
    if kind == "incident":
        found = data.get("decision_id")
        return found if isinstance(found, str) else None
    return None


def project(kind: str, actor: str, data: dict[str, Any]) -> dict[str, Any]:
    """The part of an entry's data an event carries."""
    if kind == "decision":
        decision, packet = _object(data, "decision"), _object(data, "packet")
        action = _object(packet, "action")
        reasons = decision.get("reasons")
        reasons = reasons if isinstance(reasons, list) else []
        return {"status": decision.get("status"), "tool": action.get("tool"),
                "packet_id": decision.get("packet_id"), "risk": decision.get("risk"),
                "autonomy": decision.get("autonomy"), "packet_hash": data.get("packet_hash"),
                "reasons": [r.get("message") for r in reasons if isinstance(r, dict)]}
    if kind == "approval":
        return _pick(data, "approver", "role", "comment", "approvals", "required")
    if kind == "rejection":
        return _pick(data, "approver", "role", "reason")
    if kind == "expiry":
        return _pick(data, "expired_at", "approvals")
    if kind == "execution":
        return _pick(data, "tool", "outcome", "external_id", "summary", "attempts", "error")
    if kind == "incident":
        return _pick(data, "kind", "summary", "agent", "decision_id")
    if kind == "kill_switch":
        return {**_pick(data, "engaged", "reason"), "by": actor}
    if kind == "policy_activated":
        return _pick(data, "digest", "policies")
    return {}


def _object(data: dict[str, Any], key: str) -> dict[str, Any]:
    found = data.get(key)
    return found if isinstance(found, dict) else {}


def _pick(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: data[key] for key in keys if key in data}
