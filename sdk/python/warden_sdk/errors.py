"""Everything the SDK raises.

    WardenError
    ├── OutcomeError            a decision not to act; `.decision`, `.reasons`
    │   ├── Denied              the policies, an invariant, the kill switch or the matrix said no
    │   ├── Rejected            an approver said no
    │   ├── Expired             nobody approved in time
    │   ├── Failed              allowed, but the connector failed (`.error`)
    │   └── ApprovalRequired    `governed(mode="gate")`: a dry run cannot be approved
    ├── StillPending            `wait` timed out before the decision was final; `.decision`
    ├── ProblemError            the API answered with a problem (RFC 9457); `.status`, `.code`,
    │   │                       `.detail`, `.errors`, `.body`
    │   ├── Unauthorized        401: missing or invalid token
    │   ├── Forbidden           403: role, agent mismatch, tool not allowed
    │   ├── NotFound            404
    │   ├── Conflict            409: e.g. `packet_id_reused`
    │   ├── InvalidRequest      400, 413, 415, 422: the packet or params are wrong
    │   └── Unavailable         5xx: retried first; raised when retries ran out
    ├── ConnectionFailed        no answer after every retry (the cause is chained)
    └── ReceiptError            a receipt does not verify: proof, checkpoint or signature
        └── ReceiptNotReady     no signed checkpoint covers the entry yet

`code` is the gateway's stable problem code (`tool_not_allowed`, `invalid_params`, ...): switch
on it, not on the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: models imports this module to raise its errors
    from warden_sdk.models import Decision, Reason

__all__ = [
    "ApprovalRequired", "Conflict", "ConnectionFailed", "Denied", "Expired", "Failed", "Forbidden",
    "InvalidRequest", "NotFound", "OutcomeError", "ProblemError", "ReceiptError", "ReceiptNotReady",
    "StillPending", "Unauthorized", "Unavailable", "WardenError", "outcome_error", "problem_error",
]


class WardenError(Exception):
    """The root of every error this SDK raises."""


class OutcomeError(WardenError):
    """Warden decided, and the action did not (and will not) happen."""

    def __init__(self, decision: Decision, message: str | None = None) -> None:
        self.decision = decision
        self.reasons: list[Reason] = decision.enforced_reasons
        super().__init__(message or f"{decision.status}: {decision.explain()}")


class Denied(OutcomeError):
    """The policies, an invariant, the kill switch or the autonomy matrix refused the action."""


class Rejected(OutcomeError):
    """An approver rejected the action."""


class Expired(OutcomeError):
    """Nobody approved the action before its approval window closed."""


class Failed(OutcomeError):
    """Allowed, but the execution failed; `error` is the connector's error as the gateway shows it."""

    def __init__(self, decision: Decision) -> None:
        execution = decision.execution
        self.error: dict[str, Any] = dict(execution.error or {}) if execution is not None else {}
        what = self.error.get("message") or self.error.get("code") or "see execution.error"
        super().__init__(decision, f"failed: {what}")


class ApprovalRequired(OutcomeError):
    """A dry run found that the action needs an approver; only a submitted packet can get one."""


_OUTCOMES: dict[str, type[OutcomeError]] = {"denied": Denied, "rejected": Rejected, "expired": Expired}


def outcome_error(decision: Decision) -> OutcomeError:
    """The exception of a refused decision (status denied, rejected, expired or failed)."""
    if decision.status == "failed":
        return Failed(decision)
    return _OUTCOMES[decision.status](decision)


class StillPending(WardenError):
    """`wait` ran out of time; the decision (`.decision`) may still change."""

    def __init__(self, decision: Decision, timeout: float) -> None:
        self.decision = decision
        super().__init__(f"decision {decision.decision_id} is still {decision.status} after {timeout:g} s")


class ProblemError(WardenError):
    """An error answer of the API (`application/problem+json`)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.code: str = str(body.get("code") or f"http_{status}")
        self.title: str = str(body.get("title") or "")
        self.detail: str = str(body.get("detail") or self.title or f"HTTP {status}")
        self.errors: list[dict[str, Any]] = list(body.get("errors") or [])
        super().__init__(f"{status} {self.code}: {self.detail}")


class Unauthorized(ProblemError):
    """401: the token is missing or not valid."""


class Forbidden(ProblemError):
    """403: the role, the agent named, or the tool is not allowed."""


class NotFound(ProblemError):
    """404: no such decision (or not this agent's)."""


class Conflict(ProblemError):
    """409: e.g. `packet_id_reused`, the same id with another packet."""


class InvalidRequest(ProblemError):
    """400, 413, 415, 422: the packet, its params or the request is wrong."""


class Unavailable(ProblemError):
    """5xx: the gateway could not serve the request (retried first)."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: InvalidRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: InvalidRequest, 415: InvalidRequest, 422: InvalidRequest,
}


def problem_error(status: int, body: dict[str, Any]) -> ProblemError:
    """The exception for an error answer, by its HTTP status."""
    if status >= 500:
        return Unavailable(status, body)
    return _BY_STATUS.get(status, ProblemError)(status, body)


class ConnectionFailed(WardenError):
    """The gateway could not be reached, or dropped the connection, on every attempt."""


class ReceiptError(WardenError):
    """A receipt does not verify; the message names the check that failed."""


class ReceiptNotReady(ReceiptError):
    """The log has not yet signed a checkpoint that covers the entry; try again later (or pass
    `wait=`)."""
