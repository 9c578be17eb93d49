"""The decision as Warden's API returns it, as pydantic models.

    Decision ─ Reason, InvariantResult, Approval ── ApprovalGrant, Execution, AuditRef
    Claim      (an agent's own invariant check, sent in a packet's proof)

These mirror the gateway's JSON contract (`POST /v1/actions`, `GET /v1/actions/{id}`), read
leniently: a field a newer gateway adds is kept (`extra="allow"`), never an error, so an agent
built against this SDK keeps working when the gateway grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Status = Literal[
    "executed", "executing", "allowed", "pending_approval", "denied", "drafted",
    "rejected", "expired", "failed",
]

#: Statuses that may still change: `wait` long-polls while a decision holds one of these.
IN_PROGRESS: frozenset[str] = frozenset({"pending_approval", "executing"})
#: Final statuses of a decision that did not act, each with its exception (see `errors`).
REFUSED: frozenset[str] = frozenset({"denied", "rejected", "expired", "failed"})


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class Reason(_Lenient):
    """One policy rule (or one of Warden's own gates) that fired, and what it did."""

    policy: str
    rule: str
    effect: str
    message: str
    enforced: bool = True

    def __str__(self) -> str:
        shadow = "" if self.enforced else " (not enforced)"
        return f"{self.policy}.{self.rule}: {self.message}{shadow}"


class InvariantResult(_Lenient):
    """Warden's verdict on one invariant, beside the agent's claim, if any."""

    id: str
    policy: str
    verified: str
    claimed: str | None = None
    error: str | None = None
    mismatch: str | None = None
    enforced: bool = True


class ApprovalGrant(_Lenient):
    approver: str
    role: str
    approved_at: datetime
    comment: str | None = None


class Approval(_Lenient):
    """Who must approve, how many distinct people, until when, and who has."""

    required_role: str
    count: int
    expires_at: datetime
    approvals: list[ApprovalGrant] = Field(default_factory=list)


class Execution(_Lenient):
    """What the connector did: `state` is `succeeded`, `retrying`, `unknown` or `failed`;
    `summary` the provider's answer in brief; `error` why it failed."""

    state: str
    external_id: str | None = None
    summary: dict[str, Any] | None = None
    attempts: int | None = None
    idempotency_key: str | None = None
    executed_at: str | None = None
    error: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    next_attempt_at: str | None = None


class AuditRef(_Lenient):
    """Where the decision sits in the audit log: its entry's seq and RFC 6962 leaf hash (hex)."""

    seq: int
    leaf_hash: str


class Decision(_Lenient):
    """What Warden decided about one packet, and every reason why.

    `decision_id` and `audit` are None for a dry run (`evaluate`), which records nothing.
    """

    decision_id: str | None = None
    packet_id: str
    status: Status
    risk: str
    autonomy: str
    policy_digest: str
    reasons: list[Reason] = Field(default_factory=list)
    invariants: list[InvariantResult] = Field(default_factory=list)
    approval: Approval | None = None
    flags: list[str] = Field(default_factory=list)
    unknown_claims: list[str] = Field(default_factory=list)
    execution: Execution | None = None
    audit: AuditRef | None = None

    @property
    def final(self) -> bool:
        """True once the status can no longer change."""
        return self.status not in IN_PROGRESS

    @property
    def enforced_reasons(self) -> list[Reason]:
        """The reasons that counted (shadow-mode policies' reasons left out)."""
        return [r for r in self.reasons if r.enforced]

    def explain(self) -> str:
        """The enforced reasons in plain words, one per line (for a log line or a model)."""
        return "\n".join(str(r) for r in self.enforced_reasons) or f"{self.status} (no reason given)"

    def raise_for_status(self) -> Decision:
        """Raise the typed exception of a refusal (`Denied`, `Rejected`, `Expired`, `Failed`);
        return the decision itself otherwise."""
        from warden_sdk.errors import outcome_error

        if self.status in REFUSED:
            raise outcome_error(self)
        return self


class Claim(BaseModel):
    """The agent's own check of one invariant, which Warden re-checks (a false PASS is denied
    and opens an incident)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    status: Literal["PASS", "FAIL", "ERROR"]
    value: Any = None
