"""For operators: liveness, readiness and Prometheus metrics (no token needed). `/readyz` also
names the process that answered (`gateway.runtime.process`): with `warden serve --workers N`,
each connection goes to one of N processes."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from gateway.http.deps import RuntimeDep
from gateway.http.problems import Problem, problem_response, problem_responses
from gateway.runtime.process import identity

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses("not_ready"))
def readyz(runtime: RuntimeDep) -> Response:
    opa = runtime.opa_report()
    checks = runtime.readiness(opa)
    health = runtime.connector_health
    connectors = {"connectors": health.report()} if health.enabled else {}
    if not all(checks.values()):
        failing = ", ".join(k for k, ok in checks.items() if not ok)
        return problem_response(Problem("not_ready", f"not ready: {failing}", checks=checks, opa=opa, **connectors))
    return JSONResponse({"status": "ready", "checks": checks, "tamper_alarm": runtime.tamper_alarm(),
                         "process": identity(), "opa": opa, **connectors})


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(runtime: RuntimeDep) -> Response:
    body, content_type = runtime.metrics.render()
    return Response(body, media_type=content_type)
