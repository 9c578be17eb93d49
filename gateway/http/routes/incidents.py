"""Incidents: proof mismatches, repeated denials, connector failures, tamper alarms."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gateway.http.auth import Principal, require
from gateway.http.deps import RuntimeDep
from gateway.http.views import Incident
from gateway.pipeline.approvals import APPROVER_ROLES

router = APIRouter(tags=["operations"])


@router.get("/v1/incidents", response_model=list[Incident])
def list_incidents(
    runtime: RuntimeDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    who: Principal = Depends(require(*APPROVER_ROLES, "auditor")),
) -> list[Incident]:
    return [Incident.of(row) for row in runtime.gateway.list_incidents(limit=limit, kind=kind)]
