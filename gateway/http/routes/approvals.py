"""The approval queue, and approving or rejecting a pending decision."""

from __future__ import annotations

from typing import Annotated

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
from gateway.pipeline.approvals import APPROVER_ROLES, Person

router = APIRouter(tags=["approvals"])


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str | None, Field(max_length=2000)] = None


class RejectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str | None, Field(max_length=2000)] = None


DECIDE_PROBLEMS = problem_responses("missing_token", "invalid_token", "forbidden_role", "role_not_allowed",
                                    "own_agent", "decision_not_found", "not_pending", "already_approved",
                                    "approval_expired", *SMALL_BODY_CODES)


@router.get("/v1/approvals", summary="The approval queue", response_model=list[Decision])
def approval_queue(
    runtime: RuntimeDep,
    status: Annotated[str, Query(pattern="^pending$")] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Principal = Depends(require(*APPROVER_ROLES, "viewer")),
) -> Response:
    return JSONResponse([d.model_dump(mode="json") for d in runtime.approvals.pending(limit=limit)])


@router.post("/v1/approvals/{decision_id}/approve", response_model=Decision,
             openapi_extra=json_body(ApprovalBody, required=False), responses=DECIDE_PROBLEMS)
async def approve(request: Request, decision_id: DecisionId, runtime: RuntimeDep,
                  who: Principal = Depends(require(*APPROVER_ROLES))) -> Response:
    """Approve a pending decision. When this is the last approval needed, the packet is decided
    again under the policies and kill switch active now and, if still allowed, executed."""
    body = await read_model(request, ApprovalBody, required=False)
    comment = body.comment if body is not None else None
    decision = await run_in_threadpool(runtime.approvals.approve, Person(who.name, who.role), decision_id, comment)
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
