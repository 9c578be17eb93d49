"""RFC 9457 problem details: every error the HTTP API returns, with a stable `code`.

Code paths raise `Problem(status, code, detail)`; the app turns it (and FastAPI's own errors) into
`application/problem+json`. The `code` is the stable, documented name clients switch on; `title`
is its fixed human summary; `detail` says what happened this time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://warden.dev/problems/"

#: code → (HTTP status, title). The catalogue of every error the API can return.
CODES: dict[str, tuple[int, str]] = {
    "malformed_json": (400, "The request body is not valid JSON"),
    "missing_token": (401, "Authentication required"),
    "invalid_token": (401, "The bearer token is not valid"),
    "forbidden_role": (403, "Your role may not do this"),
    "agent_mismatch": (403, "The packet names another agent"),
    "tool_not_allowed": (403, "This agent may not use this tool"),
    "own_agent": (403, "Nobody approves an action of an agent they own"),
    "role_not_allowed": (403, "This approval needs another role"),
    "not_found": (404, "No such resource"),
    "decision_not_found": (404, "No such decision"),
    "packet_id_reused": (409, "This packet_id was already used with a different packet"),
    "not_pending": (409, "The decision is not waiting for approval"),
    "already_approved": (409, "You have already approved this decision"),
    "approval_expired": (409, "The approval window has closed"),
    "packet_too_large": (413, "The packet is larger than the limit"),
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
    """An error to answer with; `extra` fields are added to the body (e.g. the decision)."""

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        if code not in CODES:
            raise ValueError(f"unknown problem code {code!r}")
        self.code = code
        self.status, self.title = CODES[code]
        self.detail = detail
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
