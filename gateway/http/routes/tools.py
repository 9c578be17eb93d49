"""The tool catalog: what an agent may call (people see every tool), with params as JSON Schema."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway.http.auth import ANYONE, Principal, require
from gateway.http.deps import RuntimeDep
from gateway.http.views import ToolInfo

router = APIRouter(tags=["actions"])


@router.get("/v1/tools", summary="The tools this agent may call", response_model=list[ToolInfo])
def tools(runtime: RuntimeDep, who: Principal = Depends(require(*ANYONE))) -> list[ToolInfo]:
    specs = runtime.registry.specs.values()
    return [ToolInfo.of(s) for s in specs if who.agent is None or who.agent.may_use(s.name)]
