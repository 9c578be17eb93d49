"""The tool catalog as MCP tools: input schemas, descriptions, and a call's arguments as a packet.

A catalog tool's input schema is its params schema (`ToolSpec.params_schema()`) with Warden's
governance arguments beside the params, all optional:

    evidence    facts the agent relied on; policies read them as `evidence.<name>`
    claims      the agent's own verdicts on the policies' invariants (proof.invariant_checks)
    context     free-form context (a task id); policies read it as `context.<name>`
    wait        seconds to wait for an approver before answering (the default is a setting)
    packet_id   the same id on a retry returns the first decision instead of acting twice

A tool whose params use one of those names gets its params under `params` instead, so no name
is ever ambiguous. `warden.status` (decision_id, wait) reads a decision the agent made.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from connectors.base import ToolSpec
from gateway.engine.models import InvariantCheck, JsonObject, PacketId

STATUS_TOOL = "warden.status"
GOVERNANCE = ("evidence", "claims", "context", "wait", "packet_id")

EVIDENCE_HELP = (
    "Facts you relied on in deciding to act, as a JSON object (for a refund: "
    '{"reconciled": true, "order_total": 2500}). Warden\'s policies read them as '
    "`evidence.<name>` in their rules and invariants; an invariant that needs a fact you do not "
    "give cannot pass, and the call is denied with the reason."
)
CLAIMS_HELP = (
    "Your own check of the policies' invariants: [{\"id\": invariant id, \"status\": PASS, FAIL "
    "or ERROR, \"value\": what you computed}]. Warden evaluates every invariant itself; a claim "
    "of PASS that Warden finds FAIL is recorded as a proof mismatch and opens an incident."
)
CONTEXT_HELP = ("Context for the people who review this action (a task id, a ticket), as a JSON "
                "object; policies read it as `context.<name>`.")
WAIT_HELP = ("Seconds to wait for an approver when the action needs one, with progress "
             "notifications meanwhile; 0 answers at once with the decision id, to check later "
             f"with {STATUS_TOOL}. Default: {{default}} s, at most {{most}} s.")
PACKET_ID_HELP = ("Your id for this action. Give the same packet_id when you retry a call whose "
                  "answer you did not get: Warden returns the first decision and never acts twice. "
                  "Without it, every call is a new action.")


@dataclass(frozen=True)
class Waits:
    """How long a call waits for an approver: `default` unless it says, never beyond `most`."""

    default: float
    most: float


def _governance_schema(waits: Waits) -> dict[str, Any]:
    return {
        "evidence": {"type": "object", "description": EVIDENCE_HELP},
        "claims": {"type": "array", "description": CLAIMS_HELP, "items": {
            "type": "object", "required": ["id", "status"], "additionalProperties": False,
            "properties": {"id": {"type": "string"}, "status": {"enum": ["PASS", "FAIL", "ERROR"]}, "value": {}},
        }},
        "context": {"type": "object", "description": CONTEXT_HELP},
        "wait": {"type": "number", "minimum": 0, "maximum": waits.most,
                 "description": WAIT_HELP.format(default=_seconds(waits.default), most=_seconds(waits.most))},
        "packet_id": {"type": "string", "pattern": r"^[A-Za-z0-9._:-]+$", "maxLength": 128,
                      "description": PACKET_ID_HELP},
    }


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def nests_params(spec: ToolSpec) -> bool:
    """Whether the tool's params take a governance argument's name: then they go under `params`."""
    return bool(set(spec.params_schema().get("properties", {})) & set(GOVERNANCE))


def input_schema(spec: ToolSpec, waits: Waits) -> dict[str, Any]:
    params = copy.deepcopy(spec.params_schema())
    governance = _governance_schema(waits)
    if nests_params(spec):
        defs = params.pop("$defs", None)
        schema: dict[str, Any] = {"type": "object", "properties": {"params": params, **governance},
                                  "required": ["params"], "additionalProperties": False}
    else:
        defs = params.get("$defs")
        schema = {"type": "object", "properties": {**params.get("properties", {}), **governance},
                  "required": list(params.get("required", [])), "additionalProperties": False}
    if defs:
        schema["$defs"] = defs
    return schema


def description(spec: ToolSpec) -> str:
    undo = (f" It can be undone ({spec.compensation})." if spec.reversible and spec.compensation
            else " It cannot be undone through Warden." if not spec.reversible else "")
    return (
        f"{spec.summary} Governed by Warden: base risk {spec.base_risk.name}.{undo} Each call is an "
        "action of yours that Warden decides under its policies before anything happens: it runs "
        "at once, is denied with the reasons (correct what they name and call again), or waits "
        f"for a person to approve it (see `wait`, and {STATUS_TOOL}). Policies read `evidence` "
        "and `context`, and check your `claims` against their own verdicts."
    )


STATUS_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["decision_id"], "additionalProperties": False,
    "properties": {
        "decision_id": {"type": "string", "maxLength": 64, "description": "the id a call answered with"},
        "wait": {"type": "number", "minimum": 0,
                 "description": "seconds to wait for the decision to change (an approval, the execution)"},
    },
}
STATUS_DESCRIPTION = (
    "Where one of your actions stands: pending approval, executed (with what the system "
    "answered), denied, rejected or expired (with the reasons). With `wait`, answers as soon as "
    "it changes."
)


class _Governance(BaseModel):
    """The governance arguments of a call, checked (the params are the tool's to check)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    evidence: JsonObject = Field(default_factory=dict)
    claims: list[InvariantCheck] = Field(default_factory=list, max_length=256)
    context: JsonObject = Field(default_factory=dict)
    wait: float | None = Field(default=None, ge=0)
    packet_id: PacketId | None = None


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_id: str = Field(min_length=1, max_length=64)
    wait: float = Field(default=0.0, ge=0)


class BadArguments(ValueError):
    """A call's arguments do not fit: `errors` as pydantic gives them, without the input values."""

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.errors = errors


def _errors(exc: ValidationError, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *(str(p) for p in e["loc"])], "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)]


@dataclass(frozen=True)
class Call:
    """A tool call's arguments, split into the packet's parts."""

    params: dict[str, Any]
    evidence: dict[str, Any]
    claims: list[dict[str, Any]]
    context: dict[str, Any]
    wait: float
    packet_id: str

    def packet(self, agent: str, tool: str) -> dict[str, Any]:
        return {"packet_id": self.packet_id, "agent": agent, "action": {"tool": tool, "params": self.params},
                "evidence": self.evidence, "proof": {"invariant_checks": self.claims}, "context": self.context}


def split_call(spec: ToolSpec, arguments: Mapping[str, Any] | None, waits: Waits) -> Call:
    """The packet's parts from a call's arguments; `BadArguments` names what does not fit (the
    params themselves are checked by the pipeline, against the tool)."""
    arguments = dict(arguments or {})
    governance = {name: arguments.pop(name) for name in GOVERNANCE if name in arguments}
    if nests_params(spec):
        params = arguments.pop("params", {})
        if arguments:
            extra = ", ".join(sorted(arguments))
            raise BadArguments(f"unknown arguments: {extra}",
                               [{"loc": [n], "msg": "unknown argument", "type": "extra_forbidden"} for n in sorted(arguments)])
        if not isinstance(params, dict):
            raise BadArguments("params must be an object", [{"loc": ["params"], "msg": "must be an object",
                                                             "type": "dict_type"}])
    else:
        params = arguments
    try:
        checked = _Governance.model_validate(governance)
    except ValidationError as exc:
        errors = _errors(exc)
        raise BadArguments(f"{len(errors)} argument(s) do not fit", errors) from exc
    wait = waits.default if checked.wait is None else checked.wait
    return Call(params=params, evidence=checked.evidence,
                claims=[c.model_dump(mode="json") for c in checked.claims], context=checked.context,
                wait=min(wait, waits.most), packet_id=checked.packet_id or new_packet_id())


def status_call(arguments: Mapping[str, Any] | None, waits: Waits) -> tuple[str, float]:
    try:
        checked = _Status.model_validate(dict(arguments or {}))
    except ValidationError as exc:
        errors = _errors(exc)
        raise BadArguments(f"{len(errors)} argument(s) do not fit", errors) from exc
    return checked.decision_id, min(checked.wait, waits.most)


def new_packet_id() -> str:
    """A packet id for a call that gave none: every such call is a new action."""
    return f"mcp-{secrets.token_hex(12)}"
