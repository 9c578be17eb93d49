"""The HTTP API of DESIGN.md ("HTTP surface"), as a FastAPI app over a `Runtime`.

Packets are read as raw bytes and checked in order (size → media type → JSON → depth → schema)
before anything else runs, so a hostile body costs little and always gets a specific problem:
413 `packet_too_large`, 415, 400 `malformed_json`, 422 `packet_too_deep` / `invalid_packet`.
Every error is `application/problem+json` (gateway/problems.py); unexpected exceptions become a
problem too, never a traceback.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.pipeline.approvals import Person
from gateway.http.auth import Principal, require
from gateway.logs import RequestLogMiddleware
from gateway.engine.models import Decision, Packet
from gateway.http.problems import PROBLEM_JSON, Problem, ProblemDetail, problem_responses
from gateway.runtime.runtime import Runtime
from gateway.http.views import (
    AuditEntries,
    Incident,
    KillSwitchState,
    ToolInfo,
    audit_entries,
    consistency_proof,
    inclusion_proof,
)
from ledger.group_commit import GroupCommitterClosed

log = logging.getLogger("warden.http")

#: Statuses answered with 202: the agent should poll (or long-poll) for the outcome.
ACCEPTED = frozenset({"pending_approval", "executing"})
PEOPLE = ("founder", "approver", "auditor", "viewer")


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Annotated[str | None, Field(max_length=2000)] = None


class RejectionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str | None, Field(max_length=2000)] = None


class KillSwitchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    engaged: bool
    reason: Annotated[str, Field(min_length=1, max_length=2000)]


def problem_response(problem: Problem) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(problem.body(), status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def decision_response(decision: Decision) -> JSONResponse:
    code = 202 if decision.status in ACCEPTED else 200
    return JSONResponse(decision.model_dump(mode="json"), status_code=code)


def _depth_and_items(value: Any, max_depth: int, max_items: int) -> str | None:
    """Iteratively check nesting depth and collection sizes; a message when over a limit."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            depth += 1
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            if len(item) > max_items:
                return f"a collection has {len(item)} items; the limit is {max_items}"
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth) for child in children)
    return None


MAX_SMALL_BODY = 16_384


async def read_body(request: Request, model: type[BaseModel], *, required: bool) -> BaseModel | None:
    """A small JSON body, read after authentication (so a caller without the right token learns
    nothing from the body's validation), with problem+json errors."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_SMALL_BODY:
            raise Problem("invalid_request", f"the body is larger than {MAX_SMALL_BODY} bytes")
    if not raw.strip():
        if required:
            raise Problem("invalid_request", f"send a JSON body ({model.__name__})")
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise Problem("malformed_json", "the body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise Problem("invalid_request", f"the body does not match {model.__name__}", errors=errors) from None


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(
        title="Warden",
        version="1.0",
        description="The governance gateway between AI agents and the systems they act on.",
        lifespan=runtime.lifespan,
    )
    app.state.warden = runtime
    limits = runtime.packet_limits
    gw = runtime.gateway
    approvals = runtime.approvals

    # ------------------------------------------------------------ errors

    @app.exception_handler(Problem)
    async def _problem(_request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
        return problem_response(Problem("invalid_request", "the request does not match the API", errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        return problem_response(Problem(code, str(exc.detail)))

    @app.exception_handler(OperationalError)
    async def _db(_request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable: %s", type(exc).__name__)
        return problem_response(Problem("database_unavailable", "the database cannot be reached; nothing was recorded or executed"))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, GroupCommitterClosed):  # shutting down: nothing was recorded
            return problem_response(Problem("not_ready", "Warden is shutting down; nothing was recorded or executed"))
        log.exception("unexpected error")
        if isinstance(exc, DBAPIError):
            return problem_response(Problem("database_unavailable", "a database error stopped the request; nothing was executed"))
        return problem_response(Problem("internal_error", "an unexpected error stopped the request; nothing was executed"))

    app.add_middleware(RequestLogMiddleware, metrics=runtime.metrics)

    # ------------------------------------------------------------ packets

    async def read_packet(request: Request) -> Packet:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_bytes:
            raise Problem("packet_too_large", f"the packet is {declared} bytes; the limit is {limits.max_bytes}")
        media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise Problem("unsupported_media_type", f"send the packet as application/json, not {media}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_bytes:
                raise Problem("packet_too_large", f"the packet is over the limit of {limits.max_bytes} bytes")
        try:
            raw = json.loads(body)
        except RecursionError:
            raise Problem("packet_too_deep", "the packet is nested too deeply to read") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Problem("malformed_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise Problem("invalid_packet", "the packet must be a JSON object")
        for field in ("evidence", "context", "action", "proof"):
            over = _depth_and_items(raw.get(field), limits.max_depth, limits.max_items)
            if over:
                raise Problem("packet_too_deep" if "deeper" in over else "packet_too_large", f"{field}: {over}")
        try:
            return Packet.model_validate(raw)
        except ValidationError as exc:
            errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            raise Problem("invalid_packet", "the packet does not match the schema", errors=errors) from None

    packet_body = {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Packet"}}}}}
    packet_problems = problem_responses(
        "malformed_json", "missing_token", "invalid_token", "forbidden_role", "agent_mismatch",
        "tool_not_allowed", "packet_id_reused", "packet_too_large", "unsupported_media_type",
        "invalid_packet", "packet_too_deep", "unknown_tool", "invalid_params", "database_unavailable")

    @app.post(
        "/v1/actions", tags=["actions"], summary="Submit a packet",
        response_model=Decision, openapi_extra=packet_body,
        responses={202: {"model": Decision, "description": "Pending approval, or executing: poll GET /v1/actions/{id}"}, **packet_problems},
    )
    async def submit(request: Request, who: Principal = Depends(require("agent"))) -> Response:
        """Submit a proof-carrying packet: 200 with the final decision, 202 while it waits for an
        approver or for its execution. The same agent + packet_id + body returns the stored
        decision and never executes twice; the same packet_id with another body is a 409."""
        packet = await read_packet(request)
        assert who.agent is not None
        decision = await run_in_threadpool(gw.submit, who.agent, packet)
        return decision_response(decision)

    @app.post("/v1/actions/evaluate", tags=["actions"], summary="Dry run", response_model=Decision,
              openapi_extra=packet_body, responses=packet_problems)
    async def evaluate(request: Request, who: Principal = Depends(require("agent"))) -> Response:
        """The decision this packet would get (`allowed` where a real run executes); nothing is
        recorded or executed."""
        packet = await read_packet(request)
        assert who.agent is not None
        decision = await run_in_threadpool(gw.evaluate, who.agent, packet)
        return JSONResponse(decision.model_dump(mode="json"))

    @app.get("/v1/actions/{decision_id}", tags=["actions"], summary="A decision; long-poll with ?wait=N",
             response_model=Decision, responses=problem_responses("missing_token", "invalid_token", "forbidden_role", "decision_not_found"))
    async def get_decision(
        decision_id: Annotated[str, Field(max_length=64)],
        wait: Annotated[float, Query(ge=0, le=3600, description="seconds to wait for a status change")] = 0,
        who: Principal = Depends(require("agent", *PEOPLE)),
    ) -> Response:
        """The decision as it stands. With `wait`, answers as soon as its status changes (or after
        `wait` seconds, at most the configured long-poll limit)."""
        if who.is_agent and await run_in_threadpool(gw.decision_agent, decision_id) != who.name:
            raise Problem("decision_not_found", f"no decision {decision_id!r} of agent {who.name!r}")
        decision = await run_in_threadpool(gw.get, decision_id)
        deadline = time.monotonic() + min(wait, runtime.long_poll_max)
        first = decision.status
        while decision.status == first and first in ACCEPTED and time.monotonic() < deadline:
            await runtime.changes.wait(decision_id, min(0.25, max(0.0, deadline - time.monotonic())))
            decision = await run_in_threadpool(gw.get, decision_id)
        return JSONResponse(decision.model_dump(mode="json"))

    @app.get("/v1/tools", tags=["actions"], summary="The tools this agent may call", response_model=list[ToolInfo])
    def tools(who: Principal = Depends(require("agent", *PEOPLE))) -> list[ToolInfo]:
        specs = runtime.registry.specs.values()
        return [ToolInfo.of(s) for s in specs if who.agent is None or who.agent.may_use(s.name)]

    # ------------------------------------------------------------ approvals

    @app.get("/v1/approvals", tags=["approvals"], summary="The approval queue", response_model=list[Decision])
    def approval_queue(
        status: Annotated[str, Query(pattern="^pending$")] = "pending",
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        who: Principal = Depends(require("approver", "founder", "viewer")),
    ) -> Response:
        return JSONResponse([d.model_dump(mode="json") for d in approvals.pending(limit=limit)])

    decide_problems = problem_responses("malformed_json", "missing_token", "invalid_token", "forbidden_role",
                                        "role_not_allowed", "own_agent", "decision_not_found", "not_pending",
                                        "already_approved", "approval_expired")

    def body_of(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
        return {"requestBody": {"required": required, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}

    @app.post("/v1/approvals/{decision_id}/approve", tags=["approvals"], response_model=Decision,
              openapi_extra=body_of(ApprovalBody, required=False), responses=decide_problems)
    async def approve(request: Request, decision_id: str,
                      who: Principal = Depends(require("approver", "founder"))) -> Response:
        """Approve a pending decision. When this is the last approval needed, the packet is decided
        again under the policies and kill switch active now and, if still allowed, executed."""
        body = await read_body(request, ApprovalBody, required=False)
        comment = body.comment if isinstance(body, ApprovalBody) else None
        decision = await run_in_threadpool(approvals.approve, Person(who.name, who.role), decision_id, comment)
        runtime.changes.notify(decision_id)
        return decision_response(decision)

    @app.post("/v1/approvals/{decision_id}/reject", tags=["approvals"], response_model=Decision,
              openapi_extra=body_of(RejectionBody, required=False), responses=decide_problems)
    async def reject(request: Request, decision_id: str,
                     who: Principal = Depends(require("approver", "founder"))) -> Response:
        body = await read_body(request, RejectionBody, required=False)
        reason = body.reason if isinstance(body, RejectionBody) else None
        decision = await run_in_threadpool(approvals.reject, Person(who.name, who.role), decision_id, reason)
        runtime.changes.notify(decision_id)
        return JSONResponse(decision.model_dump(mode="json"))

    # ------------------------------------------------------------ kill switch, incidents

    @app.post("/v1/kill-switch", tags=["operations"], response_model=KillSwitchState,
              openapi_extra=body_of(KillSwitchBody, required=True),
              responses=problem_responses("malformed_json", "missing_token", "invalid_token", "forbidden_role",
                                          "invalid_request"))
    async def kill_switch(request: Request, who: Principal = Depends(require("founder"))) -> KillSwitchState:
        """Engage (`{"engaged": true, "reason": ...}`) or release the kill switch. While engaged
        nothing executes and new packets are denied."""
        body = await read_body(request, KillSwitchBody, required=True)
        assert isinstance(body, KillSwitchBody)
        state = await run_in_threadpool(approvals.set_kill_switch, Person(who.name, who.role), body.engaged, body.reason)
        runtime.changes.notify_all()
        return KillSwitchState.of(state)

    @app.get("/v1/kill-switch", tags=["operations"], response_model=KillSwitchState)
    def kill_switch_state(who: Principal = Depends(require("agent", *PEOPLE))) -> KillSwitchState:
        return KillSwitchState.of(approvals.kill_switch())

    @app.get("/v1/incidents", tags=["operations"], response_model=list[Incident])
    def list_incidents(
        kind: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        who: Principal = Depends(require("approver", "founder", "auditor")),
    ) -> list[Incident]:
        return [Incident.of(row) for row in gw.list_incidents(limit=limit, kind=kind)]

    # ------------------------------------------------------------ audit

    @app.get("/v1/audit/checkpoint", tags=["audit"], response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {}}, "description": "a C2SP signed note"}})
    def checkpoint(who: Principal = Depends(require("agent", *PEOPLE))) -> PlainTextResponse:
        note = runtime.latest_checkpoint()
        if note is None:
            raise Problem("not_found", "no checkpoint has been signed yet")
        return PlainTextResponse(note)

    @app.get("/v1/audit/entries", tags=["audit"], response_model=AuditEntries)
    def entries(
        from_: Annotated[int, Query(alias="from", ge=0)] = 0,
        to: Annotated[int | None, Query(ge=0, description="exclusive; at most 1000 entries per call")] = None,
        who: Principal = Depends(require("auditor", "founder")),
    ) -> AuditEntries:
        return audit_entries(runtime, from_, to)

    @app.get("/v1/audit/proofs/inclusion", tags=["audit"])
    def inclusion(
        seq: Annotated[int, Query(ge=0)],
        size: Annotated[int | None, Query(ge=1)] = None,
        who: Principal = Depends(require("agent", "auditor", "founder")),
    ) -> dict[str, Any]:
        return inclusion_proof(runtime, seq, size)

    @app.get("/v1/audit/proofs/consistency", tags=["audit"])
    def consistency(
        from_: Annotated[int, Query(alias="from", ge=1)],
        to: Annotated[int | None, Query(ge=1)] = None,
        who: Principal = Depends(require("agent", "auditor", "founder")),
    ) -> dict[str, Any]:
        return consistency_proof(runtime, from_, to)

    # ------------------------------------------------------------ operations

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses=problem_responses("not_ready"))
    def readyz() -> Response:
        checks = runtime.readiness()
        if not all(checks.values()):
            failing = ", ".join(k for k, ok in checks.items() if not ok)
            return problem_response(Problem("not_ready", f"not ready: {failing}", checks=checks))
        return JSONResponse({"status": "ready", "checks": checks})

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> Response:
        body, content_type = runtime.metrics.render()
        return Response(body, media_type=content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        packet_schema = Packet.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(packet_schema.pop("$defs", {}))
        components["Packet"] = packet_schema
        for model in (ApprovalBody, RejectionBody, KillSwitchBody):
            components[model.__name__] = model.model_json_schema()
        security = schema["components"].setdefault("securitySchemes", {})
        security["bearer"] = {"type": "http", "scheme": "bearer"}
        _document_problems(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _document_problems(schema: dict[str, Any]) -> None:
    """Make the document say what the API does: every `/v1` operation needs a bearer token and
    may answer 401 / 403; every error is problem+json (FastAPI's default 422 body is not what
    this API sends: it answers `invalid_request` problems)."""
    auth = problem_responses("missing_token", "invalid_token", "forbidden_role")
    invalid = problem_responses("invalid_request")
    problem_ref = {"$ref": "#/components/schemas/ProblemDetail"}
    schema["components"]["schemas"].setdefault("ProblemDetail", ProblemDetail.model_json_schema())
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}]
                for status, response in auth.items():
                    responses.setdefault(str(status), _openapi_response(response, problem_ref))
            if "422" in responses and PROBLEM_JSON not in responses["422"].get("content", {}):
                responses["422"] = _openapi_response(invalid[422], problem_ref)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response.setdefault("content", {})
                    content.pop("application/json", None)
                    content.setdefault(PROBLEM_JSON, {"schema": problem_ref})
                    if not content[PROBLEM_JSON]:
                        content[PROBLEM_JSON] = {"schema": problem_ref}


def _openapi_response(response: dict[str, Any], problem_ref: dict[str, str]) -> dict[str, Any]:
    return {"description": response["description"], "content": {PROBLEM_JSON: {"schema": problem_ref}}}
