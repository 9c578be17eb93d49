"""Packets in, decisions out: submit, dry run, and read (or long-poll) a decision."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from gateway.engine.models import Decision
from gateway.http.auth import ANYONE, Principal, require
from gateway.http.body import read_packet
from gateway.http.deps import DecisionId, RuntimeDep
from gateway.http.problems import Problem, problem_responses
from gateway.http.views import ReplayView
from gateway.pipeline.approvals import APPROVER_ROLES, Person
from gateway.pipeline.errors import shown

router = APIRouter(tags=["actions"])
#: Who may submit and dry-run packets (one dependency, shared with `gateway.http.hotpath`).
AGENTS = require("agent")
SUBMIT_PATH = "/v1/actions"

#: Statuses answered with 202: the agent should poll (or long-poll) for the outcome.
ACCEPTED = frozenset({"pending_approval", "executing"})


def decision_response(decision: Decision) -> Response:
    code = 202 if decision.status in ACCEPTED else 200
    return Response(decision.model_dump_json(), status_code=code, media_type="application/json")


PACKET_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/Packet"}}}}}
PACKET_PROBLEMS = problem_responses(
    "malformed_json", "missing_token", "invalid_token", "forbidden_role", "agent_mismatch",
    "tool_not_allowed", "packet_id_reused", "packet_too_large", "unsupported_media_type",
    "invalid_packet", "packet_too_deep", "invalid_unicode", "duplicate_key", "unknown_tool",
    "invalid_params", "reserved_name", "database_unavailable")


@router.post(
    SUBMIT_PATH, summary="Submit a packet",
    response_model=Decision, openapi_extra=PACKET_BODY,
    responses={202: {"model": Decision, "description": "Pending approval, or executing: poll GET /v1/actions/{id}"},
               **PACKET_PROBLEMS},
)
async def submit(request: Request, who: Principal = Depends(AGENTS)) -> Response:
    """Submit a proof-carrying packet: 200 with the final decision, 202 while it waits for an
    approver or for its execution. The same agent + packet_id + body returns the stored
    decision and never executes twice; the same packet_id with another body is a 409."""
    return await submit_packet(request, who)


async def submit_packet(request: Request, who: Principal) -> Response:
    """The submit route's work, for FastAPI's route and for `gateway.http.hotpath` alike."""
    runtime = request.app.state.warden
    packet = await read_packet(request, runtime.packet_limits)
    assert who.agent is not None
    decision = await runtime.gateway.submit_async(who.agent, packet)
    return decision_response(decision)


@router.post("/v1/actions/evaluate", summary="Dry run", response_model=Decision,
             openapi_extra=PACKET_BODY, responses=PACKET_PROBLEMS)
async def evaluate(request: Request, runtime: RuntimeDep, who: Principal = Depends(AGENTS)) -> Response:
    """The decision this packet would get (`allowed` where a real run executes); nothing is
    recorded or executed."""
    packet = await read_packet(request, runtime.packet_limits)
    assert who.agent is not None
    decision = await run_in_threadpool(runtime.gateway.evaluate, who.agent, packet)
    return JSONResponse(decision.model_dump(mode="json"))


@router.get("/v1/actions/{decision_id}", summary="A decision; long-poll with ?wait=N",
            response_model=Decision,
            responses=problem_responses("missing_token", "invalid_token", "forbidden_role", "decision_not_found"))
async def get_decision(
    decision_id: DecisionId,
    runtime: RuntimeDep,
    wait: Annotated[float, Query(ge=0, le=3600, description="seconds to wait for a status change")] = 0,
    who: Principal = Depends(require(*ANYONE)),
) -> Response:
    """The decision as it stands. With `wait`, answers as soon as its status changes (or after
    `wait` seconds, at most the configured long-poll limit)."""
    gw = runtime.gateway
    if who.is_agent and await run_in_threadpool(gw.decision_agent, decision_id) != who.name:
        raise Problem("decision_not_found", f"no decision {shown(decision_id)} of agent {shown(who.name)}")
    decision = await run_in_threadpool(gw.get, decision_id)
    deadline = time.monotonic() + min(wait, runtime.long_poll_max)
    first = decision.status
    while decision.status == first and first in ACCEPTED and time.monotonic() < deadline:
        await runtime.changes.wait(decision_id, min(0.25, max(0.0, deadline - time.monotonic())))
        decision = await run_in_threadpool(gw.get, decision_id)
    return JSONResponse(decision.model_dump(mode="json"))


@router.post("/v1/actions/{decision_id}/compensate", summary="Undo an executed action",
             response_model=Decision,
             responses=problem_responses("missing_token", "invalid_token", "forbidden_role", "decision_not_found",
                                         "not_compensable", "not_reversible", "database_unavailable"))
async def compensate(decision_id: DecisionId, runtime: RuntimeDep,
                     who: Principal = Depends(require(*APPROVER_ROLES))) -> Response:
    """Run the catalog's compensation of an executed, reversible action (restore the previous
    price, delete the discount or the note, move the deal back, reverse the transfer). The
    compensation is a packet of the original agent (`packet_id` `compensate.<decision_id>`),
    decided under the policies and recorded like any other: it may execute at once, wait for
    approval or be denied. Asking again returns the same compensating decision. An irreversible
    tool is refused with 409 `not_reversible`, an action that has not executed with
    `not_compensable`."""
    decision = await run_in_threadpool(runtime.compensations.compensate, Person(who.name, who.role), decision_id)
    runtime.changes.notify(decision_id)
    return decision_response(decision)


@router.get("/v1/actions/{decision_id}/replay", summary="Decide a recorded decision again",
            response_model=ReplayView,
            responses=problem_responses("missing_token", "invalid_token", "forbidden_role", "decision_not_found",
                                        "database_unavailable"))
async def replay(decision_id: DecisionId, runtime: RuntimeDep,
                 who: Principal = Depends(require("auditor", "founder"))) -> Response:
    """The recorded packet decided again, under the recorded policy digest, with the recorded
    `now`, autonomy and kill switch: `identical`, or exactly which members differ (a determinism
    bug), or why it cannot be replayed (a policy set activated before sets were kept by digest)."""
    result = await run_in_threadpool(runtime.replay, decision_id)
    return JSONResponse(result.to_json())
