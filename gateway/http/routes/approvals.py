"""The approval queue, and approving or rejecting a pending decision.

An approval may carry `passkey`: the WebAuthn `navigator.credentials.get()` response
(`PublicKeyCredential.toJSON()`) signed over the decision's approval challenge
(`ledger.passkeys.approval_challenge`). Its relying party is the `public_url` setting's host and
origin, else the request's own (`gateway.store.passkeys.relying_party`). A missing assertion where one is
needed is 403 `passkey_required`; one that does not verify is 403 `passkey_invalid` (403, not 422:
the body is well-formed, but it does not prove that this person approves this action).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from gateway.engine.models import Decision
from gateway.http.auth import Principal, require
from gateway.http.body import read_model
from gateway.http.deps import DecisionId, RuntimeDep
from gateway.http.openapi import SMALL_BODY_CODES, json_body
from gateway.http.problems import problem_responses
from gateway.http.routes.actions import decision_response
from gateway.store.passkeys import relying_party
from gateway.pipeline.approvals import APPROVER_ROLES, PasskeyAssertion, Person

router = APIRouter(tags=["approvals"])


_B64 = Annotated[str, Field(max_length=16384, pattern="^[A-Za-z0-9_-]*={0,2}$")]


class PasskeyAssertionResponse(BaseModel):
    """`AuthenticatorAssertionResponse.toJSON()`: base64url fields."""

    model_config = ConfigDict(extra="allow")

    clientDataJSON: _B64
    authenticatorData: _B64
    signature: _B64
    userHandle: _B64 | None = None


class PasskeyCredential(BaseModel):
    """`PublicKeyCredential.toJSON()` of a `navigator.credentials.get()` with the options of
    the decision's approval challenge."""

    model_config = ConfigDict(extra="allow")

    id: _B64
    rawId: _B64
    type: Literal["public-key"]
    response: PasskeyAssertionResponse
    clientExtensionResults: dict[str, Any] = Field(default_factory=dict)
    authenticatorAttachment: Annotated[str | None, Field(max_length=64)] = None


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str | None, Field(max_length=2000)] = None
    passkey: PasskeyCredential | None = Field(
        default=None, description="the approval signed with the approver's passkey (WebAuthn assertion)")


class RejectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str | None, Field(max_length=2000)] = None


DECIDE_PROBLEMS = problem_responses("missing_token", "invalid_token", "forbidden_role", "role_not_allowed",
                                    "own_agent", "decision_not_found", "not_pending", "already_approved",
                                    "approval_expired", *SMALL_BODY_CODES)
APPROVE_PROBLEMS = problem_responses("missing_token", "invalid_token", "forbidden_role", "role_not_allowed",
                                     "own_agent", "passkey_required", "passkey_invalid", "decision_not_found",
                                     "not_pending", "already_approved", "approval_expired", *SMALL_BODY_CODES)


@router.get("/v1/approvals", summary="The approval queue", response_model=list[Decision])
def approval_queue(
    runtime: RuntimeDep,
    status: Annotated[str, Query(pattern="^pending$")] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Principal = Depends(require(*APPROVER_ROLES, "viewer")),
) -> Response:
    return JSONResponse([d.model_dump(mode="json") for d in runtime.approvals.pending(limit=limit)])


@router.post("/v1/approvals/{decision_id}/approve", response_model=Decision,
             openapi_extra=json_body(ApprovalBody, required=False), responses=APPROVE_PROBLEMS)
async def approve(request: Request, decision_id: DecisionId, runtime: RuntimeDep,
                  who: Principal = Depends(require(*APPROVER_ROLES))) -> Response:
    """Approve a pending decision. When this is the last approval needed, the packet is decided
    again under the policies and kill switch active now and, if still allowed, executed. With
    `passkey`, the approval is signed (required for an approver who has a passkey, and for L3
    actions when `passkeys_required_for_l3` is set)."""
    body = await read_model(request, ApprovalBody, required=False)
    comment = body.comment if body is not None else None
    passkey = None
    if body is not None and body.passkey is not None:
        rp_id, origin = relying_party(str(request.base_url), runtime.settings.public_url)
        passkey = PasskeyAssertion(body.passkey.model_dump_json(), rp_id, origin)
    decision = await run_in_threadpool(runtime.approvals.approve, Person(who.name, who.role), decision_id, comment,
                                       passkey)
    runtime.changes.notify(decision_id)
    return decision_response(decision)


@router.post("/v1/approvals/{decision_id}/reject", response_model=Decision,
             openapi_extra=json_body(RejectionBody, required=False), responses=DECIDE_PROBLEMS)
async def reject(request: Request, decision_id: DecisionId, runtime: RuntimeDep,
                 who: Principal = Depends(require(*APPROVER_ROLES))) -> Response:
    body = await read_model(request, RejectionBody, required=False)
    reason = body.reason if body is not None else None
    decision = await run_in_threadpool(runtime.approvals.reject, Person(who.name, who.role), decision_id, reason)
    runtime.changes.notify(decision_id)
    return JSONResponse(decision.model_dump(mode="json"))
