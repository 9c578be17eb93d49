"""Writing the gateway's state and its audit entries together, in the caller's transaction.

Every state change the gateway makes goes through here with the audit entry that records it, in
one transaction: a decision row and its `decision` entry, a status change and its `approval`,
`rejection`, `execution` or `expiry` entry, an incident row and its `incident` entry. Either both
are committed or neither is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from gateway.engine.models import AuditRef, Decision
from gateway.store.randomness import random_hex
from gateway.store.schema import decisions, incidents
from gateway.store.writer import Batch
from ledger.entry import EntryData
from ledger.store import AppendResult, Ledger

#: Kinds of incident (the `kind` column and the `incident` entry's `data.kind`).
INCIDENT_KINDS = ("proof_mismatch", "connector_failure", "repeated_denials", "tamper_alarm",
                  "idempotency_conflict", "execution_unresolved", "webhook_disabled")


_READ_DECISION = select(decisions.c.decision).where(decisions.c.decision_id == bindparam("id"))
_LOCK_DECISION = _READ_DECISION.with_for_update()
_UPDATE_PENDING = (
    update(decisions).where(decisions.c.decision_id == bindparam("id"))
    .values(status=bindparam("new_status"), decision=bindparam("new_decision"), updated_at=bindparam("now"))
)
_UPDATE_SETTLED = _UPDATE_PENDING.values(expires_at=None)


def insert_sql(table: Table, columns: tuple[str, ...]) -> str:
    """Plain `INSERT` of `columns` into `table`, with `?` marks, for staged work (`Batch.queue`)."""
    return f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


DECISION_COLUMNS = ("decision_id", "agent", "packet_id", "packet_hash", "tool", "status", "risk",
                    "policy_digest", "packet", "decision", "created_at", "updated_at", "expires_at")
#: A new decision's row, for staged work; parameters in `DECISION_COLUMNS` order.
INSERT_DECISION = insert_sql(decisions, DECISION_COLUMNS)
#: A decision's JSON by id, for staged work.
SELECT_DECISION = f"SELECT decision FROM {decisions.name} WHERE decision_id = ?"
#: A settled decision written back (status, decision JSON, updated_at, decision_id).
UPDATE_SETTLED = (f"UPDATE {decisions.name} SET status = ?, decision = ?, updated_at = ?, expires_at = NULL "
                  "WHERE decision_id = ?")
_INCIDENT_COLUMNS = ("kind", "agent", "decision_id", "summary", "detail", "created_at", "audit_seq")
_INSERT_INCIDENT = insert_sql(incidents, _INCIDENT_COLUMNS)


def new_decision_id() -> str:
    """`dec_` + 26 characters: a millisecond timestamp and 80 random bits (sortable by time)."""
    millis = int(time.time() * 1000)
    return "dec_" + f"{millis:012x}" + random_hex(7)


def dumps(document: Any) -> str:
    """Compact JSON for the text columns."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def audit_ref(result: AppendResult) -> AuditRef:
    return AuditRef(seq=result.seq, leaf_hash=result.leaf_hash.hex())


def load_decision(conn: Connection, decision_id: str, *, for_update: bool = False) -> Decision | None:
    """The decision as last stored (FOR UPDATE locks the row on PostgreSQL; SQLite's write
    transaction already holds the database lock)."""
    raw = conn.execute(_LOCK_DECISION if for_update else _READ_DECISION, {"id": decision_id}).scalar_one_or_none()
    return None if raw is None else Decision.model_validate_json(raw)


def store_decision_update(conn: Connection, decision: Decision, *, now: float) -> None:
    """Write a changed decision (status, approvals, execution) back to its row."""
    assert decision.decision_id is not None
    statement = _UPDATE_PENDING if decision.status == "pending_approval" else _UPDATE_SETTLED
    conn.execute(statement, {"id": decision.decision_id, "new_status": decision.status,
                             "new_decision": decision.model_dump_json(), "now": now})


def _incident(kind: str, summary: str, detail: Mapping[str, Any], agent: str | None,
              decision_id: str | None) -> tuple[str, dict[str, Any]]:
    """The `incident` entry's subject and data."""
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"unknown incident kind {kind!r}")
    data = {"kind": kind, "summary": summary, "agent": agent, "decision_id": decision_id, "detail": dict(detail)}
    return decision_id or agent or kind, data


def record_incident(
    conn: Connection,
    ledger: Ledger,
    *,
    kind: str,
    summary: str,
    detail: Mapping[str, Any],
    now: float,
    agent: str | None = None,
    decision_id: str | None = None,
) -> int:
    """Open an incident: a row in `incidents` and an `incident` audit entry. Returns its id."""
    subject, data = _incident(kind, summary, detail, agent, decision_id)
    entry = ledger.append(conn, "incident", "warden", subject, data)
    row = conn.execute(
        insert(incidents)
        .values(
            kind=kind,
            agent=agent,
            decision_id=decision_id,
            summary=summary,
            detail=dumps(dict(detail)),
            created_at=now,
            audit_seq=entry.seq,
        )
        .returning(incidents.c.id)
    )
    return int(row.scalar_one())


def stage_incident(
    batch: Batch,
    *,
    kind: str,
    summary: str,
    detail: Mapping[str, Any],
    now: float,
    agent: str | None = None,
    decision_id: str | None = None,
) -> None:
    """`record_incident` as staged work (the incident's id is not returned)."""
    subject, data = _incident(kind, summary, detail, agent, decision_id)
    entry = batch.append("incident", "warden", subject, EntryData.of(data))
    batch.queue(_INSERT_INCIDENT, (kind, agent, decision_id, summary, dumps(dict(detail)), now, entry.seq))


class IncidentError(Exception):
    """An incident cannot be acknowledged: unknown, or acknowledged already."""


def acknowledge_incident(conn: Connection, ledger: Ledger, incident_id: int, *, by: str, note: str | None,
                         now: float) -> None:
    """A founder has seen the incident: `acknowledged_at`/`_by` set once, with an
    `incident_acknowledged` audit entry (`incident_id`, `kind`, `note`) in the same transaction."""
    row = conn.execute(select(incidents.c.kind, incidents.c.acknowledged_at)
                       .where(incidents.c.id == incident_id)).first()
    if row is None:
        raise IncidentError(f"no incident {incident_id}")
    changed = conn.execute(update(incidents).where(incidents.c.id == incident_id,
                                                   incidents.c.acknowledged_at.is_(None))
                           .values(acknowledged_at=now, acknowledged_by=by)).rowcount
    if changed != 1:
        raise IncidentError(f"incident {incident_id} was acknowledged already")
    ledger.append(conn, "incident_acknowledged", by, f"incident:{incident_id}",
                  {"incident_id": incident_id, "kind": row.kind, "note": note})
