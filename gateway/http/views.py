"""Response models and read-only views of the API that are not decisions: tools, incidents, the
kill switch, audit entries and proofs (hashes as lowercase hex, entries as their exact JSON)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection

from connectors.base import ToolSpec
from gateway.store.killswitch import KillSwitch
from gateway.http.problems import Problem
from ledger.database import read_only
from ledger.store import LedgerError

if TYPE_CHECKING:
    from gateway.runtime.runtime import Runtime

MAX_ENTRIES_PER_CALL = 1000


class ToolInfo(BaseModel):
    name: str
    summary: str
    base_risk: str = Field(description="L0..L3")
    reversible: bool
    compensation: str | None
    params: dict[str, Any] = Field(description="JSON Schema of the params")

    @classmethod
    def of(cls, spec: ToolSpec) -> ToolInfo:
        return cls(name=spec.name, summary=spec.summary, base_risk=spec.base_risk.name,
                   reversible=spec.reversible, compensation=spec.compensation,
                   params=spec.params_schema())


class Incident(BaseModel):
    id: int
    kind: str
    agent: str | None
    decision_id: str | None
    summary: str
    detail: dict[str, Any]
    created_at: datetime
    audit_seq: int | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Incident:
        return cls(
            id=row["id"], kind=row["kind"], agent=row["agent"], decision_id=row["decision_id"],
            summary=row["summary"], detail=json.loads(row["detail"]),
            created_at=datetime.fromtimestamp(row["created_at"], UTC), audit_seq=row["audit_seq"],
        )


class KillSwitchState(BaseModel):
    engaged: bool
    reason: str | None
    by: str | None
    at: datetime | None

    @classmethod
    def of(cls, state: KillSwitch) -> KillSwitchState:
        at = datetime.fromtimestamp(state.at, UTC) if state.at is not None else None
        return cls(engaged=state.engaged, reason=state.reason, by=state.by, at=at)


class AuditEntry(BaseModel):
    seq: int
    leaf_hash: str
    entry: dict[str, Any] = Field(description="the entry as hashed (RFC 8785 JSON, parsed)")


class AuditEntries(BaseModel):
    size: int = Field(description="the log's size when read")
    entries: list[AuditEntry]


def audit_entries(runtime: Runtime, start: int, stop: int | None) -> AuditEntries:
    from ledger import merkle
    with read_only(runtime.db.connect()) as conn:
        size = runtime.ledger.head(conn).size
        end = min(size, stop if stop is not None else size, start + MAX_ENTRIES_PER_CALL)
        if start > size:
            raise Problem("invalid_request", f"from={start} is beyond the log's size {size}")
        out = [
            AuditEntry(seq=seq, leaf_hash=merkle.leaf_hash(body).hex(), entry=json.loads(body))
            for seq, body in enumerate(runtime.ledger.iter_entries(conn, start, end), start)
        ] if end > start else []
    return AuditEntries(size=size, entries=out)


def _proof(runtime: Runtime, read: Callable[[Connection], Any]) -> Any:
    """Read a proof in one snapshot; an impossible request (unknown seq, sizes) is a 422."""
    try:
        with read_only(runtime.db.connect()) as conn:
            return read(conn)
    except LedgerError as exc:
        raise Problem("invalid_request", str(exc)) from None


def inclusion_proof(runtime: Runtime, seq: int, size: int | None) -> dict[str, Any]:
    receipt = _proof(runtime, lambda conn: runtime.ledger.inclusion(conn, seq, size))
    return {
        "seq": receipt.seq, "size": receipt.size, "leaf_hash": receipt.leaf_hash.hex(),
        "root": receipt.root.hex(), "proof": [p.hex() for p in receipt.proof],
        "checkpoint": receipt.checkpoint,
    }


def consistency_proof(runtime: Runtime, size1: int, size2: int | None) -> dict[str, Any]:
    receipt = _proof(runtime, lambda conn: runtime.ledger.consistency(conn, size1, size2))
    return {
        "from": receipt.size1, "to": receipt.size2, "root1": receipt.root1.hex(),
        "root2": receipt.root2.hex(), "proof": [p.hex() for p in receipt.proof],
        "checkpoint1": receipt.checkpoint1, "checkpoint2": receipt.checkpoint2,
    }
