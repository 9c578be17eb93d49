"""The audit log over HTTP: the latest signed checkpoint, entries, and the receipts that prove
them (inclusion and consistency proofs)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse

from gateway.http.auth import ANYONE, Principal, require
from gateway.http.deps import RuntimeDep
from gateway.http.problems import Problem
from gateway.http.views import AuditEntries, audit_entries
from gateway.pipeline.audit import consistency_proof, inclusion_proof

router = APIRouter(tags=["audit"])


@router.get("/v1/audit/checkpoint", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {}}, "description": "a C2SP signed note"}})
def checkpoint(runtime: RuntimeDep, who: Principal = Depends(require(*ANYONE))) -> PlainTextResponse:
    note = runtime.latest_checkpoint()
    if note is None:
        raise Problem("not_found", "no checkpoint has been signed yet")
    return PlainTextResponse(note)


@router.get("/v1/audit/entries", response_model=AuditEntries)
def entries(
    runtime: RuntimeDep,
    from_: Annotated[int, Query(alias="from", ge=0)] = 0,
    to: Annotated[int | None, Query(ge=0, description="exclusive; at most 1000 entries per call")] = None,
    who: Principal = Depends(require("auditor", "founder")),
) -> AuditEntries:
    return audit_entries(runtime.audit.entries(from_, to))


@router.get("/v1/audit/proofs/inclusion")
def inclusion(
    runtime: RuntimeDep,
    seq: Annotated[int, Query(ge=0)],
    size: Annotated[int | None, Query(ge=1)] = None,
    who: Principal = Depends(require("agent", "auditor", "founder")),
) -> dict[str, Any]:
    return inclusion_proof(runtime.audit.inclusion(seq, size))


@router.get("/v1/audit/proofs/consistency")
def consistency(
    runtime: RuntimeDep,
    from_: Annotated[int, Query(alias="from", ge=1)],
    to: Annotated[int | None, Query(ge=1)] = None,
    who: Principal = Depends(require("agent", "auditor", "founder")),
) -> dict[str, Any]:
    return consistency_proof(runtime.audit.consistency(from_, to))
