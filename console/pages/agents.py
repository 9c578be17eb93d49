"""Agents: autonomy, allowlist, owner, last activity; founders change autonomy or revoke (each an
audit entry, shown live)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from console import queries
from console.auth import Viewer, acting_as, form_of, signed_in
from console.render import page, root, runtime_of
from dsl.model import Autonomy
from gateway.store.identities import IdentityError, list_agents, revoke_agent, set_autonomy
from ledger.database import read_only

router = APIRouter()


def _agents_page(request: Request, viewer: Viewer, *, status: int = 200, error: str | None = None,
                 confirm: str | None = None) -> Response:
    with read_only(runtime_of(request).db.connect()) as conn:
        records = list_agents(conn)
        last = queries.last_activity(conn)
    return page(request, "agents.html", viewer, status=status, records=records, last=last, error=error,
                confirm=confirm, levels=[level.name for level in Autonomy], section="agents")


@router.get("/agents", name="agents")
def agents(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return _agents_page(request, viewer)


@router.get("/agents/table", name="agents_table")
def agents_table(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    with read_only(runtime_of(request).db.connect()) as conn:
        records = list_agents(conn)
        last = queries.last_activity(conn)
    return page(request, "_agents_table.html", viewer, records=records, last=last,
                levels=[level.name for level in Autonomy])


@router.post("/agents/{name}/autonomy")
async def change_autonomy(request: Request, name: str,
                          viewer: Annotated[Viewer, Depends(acting_as("manage_agents"))]) -> Response:
    level = (await form_of(request)).get("autonomy", "")
    runtime = runtime_of(request)
    try:
        await run_in_threadpool(runtime.writer.run, lambda conn: set_autonomy(
            conn, runtime.ledger, name, level, runtime.clock(), viewer.email))
    except IdentityError as exc:
        return await run_in_threadpool(lambda: _agents_page(request, viewer, status=422, error=str(exc)))
    return RedirectResponse(f"{root(request)}/agents", status_code=303)


@router.post("/agents/{name}/revoke")
async def revoke(request: Request, name: str,
                 viewer: Annotated[Viewer, Depends(acting_as("manage_agents"))]) -> Response:
    if (await form_of(request)).get("confirm") != "yes":
        return await run_in_threadpool(lambda: _agents_page(request, viewer, confirm=name))
    runtime = runtime_of(request)
    try:
        await run_in_threadpool(runtime.writer.run, lambda conn: revoke_agent(
            conn, runtime.ledger, name, runtime.clock(), viewer.email))
    except IdentityError as exc:
        return await run_in_threadpool(lambda: _agents_page(request, viewer, status=422, error=str(exc)))
    return RedirectResponse(f"{root(request)}/agents", status_code=303)
