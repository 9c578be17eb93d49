"""Response models and read-only views of the API that are not decisions: tools, incidents, the
kill switch, audit entries and proofs (hashes as lowercase hex, entries as their exact JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from connectors.base import ToolSpec
from gateway.pipeline.audit import EntryPage
from gateway.store.killswitch import KillSwitch
from ledger import merkle


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


def audit_entries(page: EntryPage) -> AuditEntries:
    return AuditEntries(size=page.size, entries=[
        AuditEntry(seq=seq, leaf_hash=merkle.leaf_hash(body).hex(), entry=json.loads(body))
        for seq, body in page.entries
    ])


class ReplayDifference(BaseModel):
    field: str = Field(description="the decision's member that differs")
    recorded: Any
    replayed: Any


class ReplayView(BaseModel):
    """A recorded decision decided again under the policy set, time, autonomy and kill switch it
    was recorded with (`warden replay`)."""

    decision_id: str
    seq: int = Field(description="the audit seq of its `decision` entry")
    kind: str = Field(description="decision (the API replays the decision entry)")
    policy_digest: str | None
    verdict: str = Field(description="identical | different | not_replayable")
    inputs: str = Field(description="recorded, or reconstructed for an entry from before inputs were recorded")
    differences: list[ReplayDifference]
    problem: str | None = Field(description="why it is not replayable")
    notes: list[str]
    recorded: dict[str, Any] = Field(description="the decision as the engine made it, as recorded")
    replayed: dict[str, Any] | None = Field(description="the decision made again")

