"""What the pipeline refuses, as exceptions with a stable `code` and a message for people.

    PipelineError                       every refusal of the pipeline; nothing was executed
    ├── PacketRefused                   the packet is refused before any decision
    │   ├── AgentMismatch               agent_mismatch: the packet names another agent
    │   ├── UnknownTool                 unknown_tool: no such tool
    │   ├── ToolNotAllowed              tool_not_allowed: outside the agent's allowlist
    │   ├── InvalidParams               invalid_params: the params do not match the tool (.errors)
    │   └── ReservedName                reserved_name: a packet_id or context key Warden reserves
    ├── PacketIdReused                  packet_id_reused: same packet_id, another packet
    ├── DecisionNotFound                decision_not_found: no such decision
    ├── NotCompensable                  not_compensable: only an executed action can be undone
    ├── NotReversible                   not_reversible: the tool cannot be undone (.why)
    ├── NotPermitted                    not_permitted: the person's role may not do this
    ├── ApprovalRefused                 an approval or rejection that cannot be taken
    │   ├── RoleNotAllowed              role_not_allowed: the decision needs another role
    │   ├── OwnAgent                    own_agent: nobody decides on an agent they own
    │   ├── AlreadyApproved             already_approved: the same person counts once
    │   ├── NotPending                  not_pending: already settled (.decision)
    │   ├── ApprovalExpired             approval_expired: the window closed (.decision)
    │   ├── PasskeyRequired             passkey_required: this approval must be signed with a passkey
    │   └── PasskeyInvalid              passkey_invalid: the passkey assertion does not verify
    └── OutOfRange                      out_of_range: no such entry, tree size or proof

The HTTP layer maps each class to a problem code and status in one table
(`gateway.http.problems.DOMAIN_PROBLEMS`); any other caller shows `message`. `payload()` carries
what a caller needs beyond the message: the field errors of bad params, the decision as it stands
when it is no longer pending. Messages cut the ids and names they echo (`shown`).
"""

from __future__ import annotations

from typing import Any, ClassVar

#: Ids and names longer than this are cut when a message echoes them.
ECHO_LIMIT = 64


def shown(value: str, limit: int = ECHO_LIMIT) -> str:
    """`value` quoted for a message, cut to `limit` characters (a hostile id is not echoed whole)."""
    if len(value) <= limit:
        return repr(value)
    return repr(value[:limit]) + f"… ({len(value)} characters)"


class PipelineError(Exception):
    """A request the pipeline refuses; nothing was executed."""

    code: ClassVar[str] = "pipeline_error"

    def __init__(self, message: str, **payload: Any) -> None:
        super().__init__(message)
        self.message = message
        self._payload = payload

    def payload(self) -> dict[str, Any]:
        """Machine-readable details beside the message (JSON-ready)."""
        return dict(self._payload)


class PacketRefused(PipelineError):
    """The packet is refused before any policy sees it."""

    code = "packet_refused"


class AgentMismatch(PacketRefused):
    code = "agent_mismatch"


class UnknownTool(PacketRefused):
    code = "unknown_tool"


class ToolNotAllowed(PacketRefused):
    code = "tool_not_allowed"


class InvalidParams(PacketRefused):
    """The action's params do not match its tool; `errors` lists each field's problem."""

    code = "invalid_params"

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message, errors=errors)


class ReservedName(PacketRefused):
    """An agent's packet uses a name reserved for Warden's own compensating packets."""

    code = "reserved_name"


class PacketIdReused(PipelineError):
    code = "packet_id_reused"


class DecisionNotFound(PipelineError):
    code = "decision_not_found"


class NotCompensable(PipelineError):
    """A compensation asked for an action that has not executed (pending, denied, failed...)."""

    code = "not_compensable"


class NotReversible(PipelineError):
    """The executed action's tool cannot be undone through Warden; the message says why."""

    code = "not_reversible"


class NotPermitted(PipelineError):
    """The person's role may not take this step (approve, reject, pull the kill switch)."""

    code = "not_permitted"


class ApprovalRefused(PipelineError):
    code = "approval_refused"


class RoleNotAllowed(ApprovalRefused):
    code = "role_not_allowed"


class OwnAgent(ApprovalRefused):
    code = "own_agent"


class AlreadyApproved(ApprovalRefused):
    code = "already_approved"


class NotPending(ApprovalRefused):
    """The decision is settled; `decision` is it as it stands (JSON)."""

    code = "not_pending"

    def __init__(self, message: str, decision: dict[str, Any]) -> None:
        super().__init__(message, decision=decision)


class ApprovalExpired(ApprovalRefused):
    """The approval window closed; `decision` is the expired decision (JSON)."""

    code = "approval_expired"

    def __init__(self, message: str, decision: dict[str, Any]) -> None:
        super().__init__(message, decision=decision)


class PasskeyRequired(ApprovalRefused):
    """The approval must be signed with the approver's passkey: the action is L3 and
    `passkeys_required_for_l3` is set, or the approver has registered a passkey."""

    code = "passkey_required"


class PasskeyInvalid(ApprovalRefused):
    """The passkey assertion sent with an approval does not verify (another person's or an
    unknown passkey, a revoked one, a signature over another approval, a bad signature, a sign
    count going backwards)."""

    code = "passkey_invalid"


class OutOfRange(PipelineError):
    """A read of the audit log beyond what it holds: an unknown seq, an impossible tree size."""

    code = "out_of_range"
