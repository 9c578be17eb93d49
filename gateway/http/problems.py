"""RFC 9457 problem details: every error the HTTP API returns, with a stable `code`.

The HTTP layer raises `Problem(code, detail)`; the pipeline raises its own errors
(`gateway.pipeline.errors`), which `DOMAIN_PROBLEMS` maps to problem codes, here and nowhere else.
The app turns both (and FastAPI's own errors) into `application/problem+json`
(`gateway.http.handlers`). The `code` is the stable, documented name clients switch on; `title`
is its fixed human summary; `detail` says what happened this time.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.pipeline import errors

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://warden.dev/problems/"

#: code → (HTTP status, title). The catalogue of every error the API can return.
CODES: dict[str, tuple[int, str]] = {
    "malformed_json": (400, "The request body is not valid JSON"),
    "invalid_unicode": (422, "The body holds text that is not Unicode (a lone surrogate escape)"),
    "duplicate_key": (422, "An object in the body names the same key twice"),
    "missing_token": (401, "Authentication required"),
    "invalid_token": (401, "The bearer token is not valid"),
    "forbidden_role": (403, "Your role may not do this"),
    "agent_mismatch": (403, "The packet names another agent"),
    "tool_not_allowed": (403, "This agent may not use this tool"),
    "own_agent": (403, "Nobody approves an action of an agent they own"),
    "role_not_allowed": (403, "This approval needs another role"),
    "passkey_required": (403, "This approval must be signed with your passkey: approve it in the console"),
    "passkey_invalid": (403, "The passkey assertion does not verify for this approval"),
    "not_found": (404, "No such resource"),
    "decision_not_found": (404, "No such decision"),
    "packet_id_reused": (409, "This packet_id was already used with a different packet"),
    "not_pending": (409, "The decision is not waiting for approval"),
    "reserved_name": (422, "The packet uses a name Warden reserves for compensations"),
    "not_compensable": (409, "Only an executed action can be compensated"),
    "not_reversible": (409, "This action cannot be undone through Warden"),
    "already_approved": (409, "You have already approved this decision"),
    "approval_expired": (409, "The approval window has closed"),
    "packet_too_large": (413, "The packet is larger than the limit"),
    "body_too_large": (413, "The request body is larger than the limit"),
    "unsupported_media_type": (415, "Send application/json"),
    "invalid_packet": (422, "The packet does not match the schema"),
    "packet_too_deep": (422, "The packet is nested deeper than the limit"),
    "unknown_tool": (422, "No such tool"),
    "invalid_params": (422, "The action's params do not match the tool"),
    "invalid_request": (422, "The request is not valid"),
    "method_not_allowed": (405, "Method not allowed"),
    "database_unavailable": (503, "The database cannot be reached; nothing was recorded or executed"),
    "not_ready": (503, "Warden is not ready"),
    "internal_error": (500, "Internal error; nothing was executed"),
}

#: The pipeline's errors → problem codes (a class not listed answers as its nearest listed base).
DOMAIN_PROBLEMS: dict[type[errors.PipelineError], str] = {
    errors.AgentMismatch: "agent_mismatch",
    errors.UnknownTool: "unknown_tool",
    errors.ToolNotAllowed: "tool_not_allowed",
    errors.InvalidParams: "invalid_params",
    errors.ReservedName: "reserved_name",
    errors.PacketIdReused: "packet_id_reused",
    errors.DecisionNotFound: "decision_not_found",
    errors.NotCompensable: "not_compensable",
    errors.NotReversible: "not_reversible",
    errors.NotPermitted: "forbidden_role",
    errors.RoleNotAllowed: "role_not_allowed",
    errors.OwnAgent: "own_agent",
    errors.AlreadyApproved: "already_approved",
    errors.NotPending: "not_pending",
    errors.ApprovalExpired: "approval_expired",
    errors.PasskeyRequired: "passkey_required",
    errors.PasskeyInvalid: "passkey_invalid",
    errors.OutOfRange: "invalid_request",
}


class ProblemDetail(BaseModel):
    """The body of every error response (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="A URI naming the problem type")
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable machine-readable error code")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Field-level errors, for validation problems"
    )


class Problem(Exception):
    """An error to answer with; `extra` fields are added to the body (e.g. the decision),
    `headers` to the response (e.g. `Allow`)."""

    def __init__(self, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        if code not in CODES:
            raise ValueError(f"unknown problem code {code!r}")
        self.code = code
        self.status, self.title = CODES[code]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        out.update(self.extra)
        return out


def problem_of(error: errors.PipelineError) -> Problem:
    """The problem answering a pipeline error: its code from `DOMAIN_PROBLEMS`, its message, its
    payload. An error class the table does not know (nor any of its bases) is a LookupError."""
    for cls in type(error).__mro__:
        code = DOMAIN_PROBLEMS.get(cls)
        if code is not None:
            return Problem(code, error.message, **error.payload())
    raise LookupError(f"no problem code for {type(error).__name__} ({error.code})")


def problem_response(problem: Problem) -> JSONResponse:
    headers = dict(problem.headers)
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(problem.body(), status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=headers or None)


def problem_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given codes (grouped by status)."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(CODES[code][0], []).append(code)
    return {
        status: {
            "model": ProblemDetail,
            "content": {PROBLEM_JSON: {}},
            "description": "; ".join(f"`{c}`: {CODES[c][1]}" for c in names),
        }
        for status, names in sorted(by_status.items())
    }
