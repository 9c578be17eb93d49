"""The packet an agent sends and the decision Warden returns, as pydantic models.

Their JSON is the contract of DESIGN.md ("The packet", "The decision"): the HTTP API, the CLI's
`--json` output, the audit log and the policy tests all read and write exactly these shapes.

    Packet ─── Action, Proof ── InvariantCheck
    Decision ─ Reason, InvariantResult, Approval ── ApprovalGrant, AuditRef

Risk tiers and autonomy levels are the `dsl.model` enums inside Python and their names
(`"L2"`, `"A3"`) in JSON. `packet_hash` is the SHA-256 of a packet's RFC 8785 canonical JSON:
approvals are bound to it, so two packets that mean the same thing hash the same.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from dsl.model import Autonomy, Risk
from ledger.canonical import canonical_bytes

#: Integers beyond this are not exactly representable in I-JSON (RFC 7493), so RFC 8785 cannot
#: canonicalise them and two parsers may disagree about the amount: refused at the door.
MAX_SAFE_INTEGER = 2**53 - 1


def _enum_by_name(enum: type[Risk] | type[Autonomy]) -> Any:
    """Accept `"L2"` (JSON) or the enum member (Python); reject anything else, plain ints too."""

    def parse(value: Any) -> Any:
        if isinstance(value, enum):
            return value
        if isinstance(value, str) and value in enum.__members__:
            return enum[value]
        names = ", ".join(enum.__members__)
        raise ValueError(f"must be one of {names}")

    return parse


RiskName = Annotated[
    Risk,
    BeforeValidator(_enum_by_name(Risk)),
    PlainSerializer(lambda r: r.name, return_type=str),
    WithJsonSchema({"type": "string", "enum": [r.name for r in Risk]}),
]
AutonomyName = Annotated[
    Autonomy,
    BeforeValidator(_enum_by_name(Autonomy)),
    PlainSerializer(lambda a: a.name, return_type=str),
    WithJsonSchema({"type": "string", "enum": [a.name for a in Autonomy]}),
]

Verdict = Literal["PASS", "FAIL", "ERROR"]
Status = Literal[
    "executed",
    "executing",
    "allowed",
    "pending_approval",
    "denied",
    "drafted",
    "rejected",
    "expired",
    "failed",
]
Effect = Literal[
    "escalate",
    "deny",
    "invariant",
    "approval",
    "min_autonomy",
    "error",
    "proof_mismatch",
    "kill_switch",
    "unknown_tool",
]
MismatchDirection = Literal["claimed_pass_verified_fail", "claimed_fail_verified_pass"]

PacketId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")]
AgentName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
ToolName = Annotated[str, Field(max_length=128, pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")]
JsonObject = dict[str, Any]


def check_json_values(value: Any, where: str) -> None:
    """Accept only JSON data: objects with string keys, arrays, strings, finite numbers with
    integers inside ±(2**53 - 1), booleans and null.

    Iterative, so a hostile nesting depth cannot exhaust the stack; depth and size limits proper
    are enforced when the evaluation context is built (`invariants.activation`).
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, bool | str):
            continue
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise ValueError(f"{where}: object keys must be strings")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise ValueError(f"{where}: integer {item} is outside ±(2**53 - 1)")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{where}: {item} is not a JSON number")
        else:
            raise ValueError(f"{where}: {type(item).__name__} is not a JSON value")


class _Strict(BaseModel):
    """Unknown fields are an error: a misspelt field must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")


class _Frozen(_Strict):
    """What the agent sent is not edited after validation: approvals are bound to its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Action(_Frozen):
    tool: ToolName
    params: JsonObject = Field(default_factory=dict)

    @field_validator("params")
    @classmethod
    def _json_only(cls, value: JsonObject) -> JsonObject:
        check_json_values(value, "params")
        return value


class InvariantCheck(_Frozen):
    """The agent's own claim about one invariant, which Warden re-checks."""

    id: Annotated[str, Field(min_length=1, max_length=128)]
    status: Verdict
    value: Any = None


class Proof(_Frozen):
    invariant_checks: list[InvariantCheck] = Field(default_factory=list, max_length=256)

    @field_validator("invariant_checks")
    @classmethod
    def _one_claim_per_invariant(cls, checks: list[InvariantCheck]) -> list[InvariantCheck]:
        seen: set[str] = set()
        for check in checks:
            if check.id in seen:
                raise ValueError(f"invariant {check.id!r} is claimed more than once")
            seen.add(check.id)
            check_json_values(check.value, f"proof value of {check.id!r}")
        return checks


class Packet(_Frozen):
    """A proof-carrying packet: one action an agent wants to take, and why it thinks it may."""

    packet_id: PacketId
    agent: AgentName
    action: Action
    evidence: JsonObject = Field(default_factory=dict)
    proof: Proof = Field(default_factory=Proof)
    context: JsonObject = Field(default_factory=dict)

    @field_validator("evidence", "context")
    @classmethod
    def _json_only(cls, value: JsonObject, info: ValidationInfo) -> JsonObject:
        check_json_values(value, info.field_name or "packet")
        return value

    @property
    def tool(self) -> str:
        return self.action.tool


def packet_hash(packet: Packet) -> str:
    """`sha256:<hex>` of the packet's RFC 8785 canonical JSON, defaults filled in.

    Omitted optional fields hash like their defaults (`evidence` absent == `{}`), so the hash
    names what the packet means, not how its JSON was spelt.
    """
    canonical = canonical_bytes(packet.model_dump(mode="json"))
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class Reason(_Strict):
    """One policy rule (or one of Warden's own gates) that fired, and what it did."""

    policy: str
    rule: str
    effect: Effect
    message: str
    enforced: bool = True


def _absent(value: Any) -> bool:
    return value is None


class InvariantResult(_Strict):
    """Warden's verdict on one applicable invariant, beside the agent's claim, if any.

    A delegation to OPA (`opa "path"`) is recorded here too, with id `opa:<path>`: `path`, OPA's
    `result` as it came (`answer`), or why there was none (`failure`, `detail`). Each of those
    keys is left out when it is null, so every other entry's JSON is as it always was.
    """

    id: str
    policy: str
    verified: Verdict
    claimed: Verdict | None = None
    error: str | None = None
    mismatch: MismatchDirection | None = None
    enforced: bool = True
    path: Annotated[str | None, Field(exclude_if=_absent)] = None
    answer: Annotated[Any, Field(exclude_if=_absent)] = None
    failure: Annotated[str | None, Field(exclude_if=_absent)] = None
    detail: Annotated[str | None, Field(exclude_if=_absent)] = None


class ApprovalGrant(_Strict):
    """One person's yes to a pending decision (filled in by the gateway, never by the engine)."""

    approver: str
    role: str
    approved_at: datetime
    comment: str | None = None


class Approval(_Strict):
    """Who must approve, how many distinct people, and until when."""

    required_role: str
    count: Annotated[int, Field(ge=1, le=10)]
    expires_at: datetime
    approvals: list[ApprovalGrant] = Field(default_factory=list)


class AuditRef(_Strict):
    """Where the decision sits in the audit log (filled in by the gateway when recorded)."""

    seq: Annotated[int, Field(ge=0)]
    leaf_hash: str


class Decision(_Strict):
    """What Warden decided about one packet, and every reason why.

    `decision_id`, `execution` and `audit` are None when the engine returns the decision; the
    gateway fills them when it records and executes it. `unknown_claims` lists proof claims that
    named no applicable invariant (recorded, otherwise ignored).
    """

    decision_id: str | None = None
    packet_id: str
    status: Status
    risk: RiskName
    autonomy: AutonomyName
    policy_digest: str
    reasons: list[Reason] = Field(default_factory=list)
    invariants: list[InvariantResult] = Field(default_factory=list)
    approval: Approval | None = None
    flags: list[str] = Field(default_factory=list)
    unknown_claims: list[str] = Field(default_factory=list)
    execution: dict[str, Any] | None = None
    audit: AuditRef | None = None

    @property
    def violations(self) -> list[Reason]:
        """The enforced reasons that deny on their own (what no approval can lift)."""
        return [r for r in self.reasons if r.enforced and r.effect in _VIOLATION_EFFECTS]


_VIOLATION_EFFECTS = frozenset(
    {"deny", "invariant", "min_autonomy", "error", "kill_switch", "unknown_tool"}
)
