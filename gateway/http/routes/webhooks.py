"""Webhook endpoints and their delivery attempts, for founders and auditors (`gateway.events`).

    GET /v1/webhooks                        the endpoints (never their secrets)
    GET /v1/webhooks/{id}/deliveries        its deliveries, oldest first, each with its attempts

Endpoints are registered with `warden webhooks add` on the command line.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gateway.events.webhooks import WebhookError, deliveries, list_endpoints
from gateway.http.auth import Principal, require
from gateway.http.deps import RuntimeDep
from gateway.http.problems import Problem, problem_responses
from ledger.database import read_only

router = APIRouter(tags=["events"])
READERS = ("founder", "auditor")


@router.get("/v1/webhooks", summary="Webhook endpoints",
            responses=problem_responses("missing_token", "invalid_token", "forbidden_role"))
async def endpoints(runtime: RuntimeDep, who: Principal = Depends(require(*READERS))) -> JSONResponse:
    def read() -> list[dict[str, Any]]:
        with read_only(runtime.db.connect()) as conn:
            return [endpoint.document() for endpoint in list_endpoints(conn)]

    return JSONResponse(await run_in_threadpool(read))


@router.get("/v1/webhooks/{endpoint_id}/deliveries", summary="An endpoint's deliveries and their attempts",
            responses=problem_responses("missing_token", "invalid_token", "forbidden_role", "not_found"))
async def endpoint_deliveries(
    runtime: RuntimeDep,
    endpoint_id: Annotated[str, Path(max_length=40)],
    after: Annotated[int, Query(ge=-1, le=2**53, description="deliveries of entries after this seq")] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Principal = Depends(require(*READERS)),
) -> JSONResponse:
    def read() -> list[dict[str, Any]]:
        with read_only(runtime.db.connect()) as conn:
            return deliveries(conn, endpoint_id, limit=limit, after=after)

    try:
        return JSONResponse(await run_in_threadpool(read))
    except WebhookError as exc:
        raise Problem(exc.code, str(exc)) from exc
