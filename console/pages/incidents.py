"""Incidents: proof mismatches, connector failures, repeated denials, tamper alarms; a founder
acknowledges one with a note, which is an audit entry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response

from console import queries
from console.auth import Viewer, acting_as, allowed, form_of
from console.render import page, root, runtime_of
from gateway.store.records import IncidentError, acknowledge_incident
from ledger.database import read_only

router = APIRouter()

#: Incident ids are database integers: a larger number is not an id (and would overflow SQLite's).
MAX_ID = 2**53
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID)]


@router.get("/incidents", name="incidents")
def incident_list(request: Request, viewer: Annotated[Viewer, Depends(allowed("incidents"))],
                  open: bool = False, before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:  # noqa: A002
    with read_only(runtime_of(request).db.connect()) as conn:
        found, next_id = queries.incident_list(conn, open_only=open, before=before)
    return page(request, "incidents.html", viewer, incidents=found, next_id=next_id, open_only=open,
                section="incidents")


def _incident(request: Request, incident_id: int) -> queries.Incident:
    with read_only(runtime_of(request).db.connect()) as conn:
        found = queries.incident(conn, incident_id)
    if found is None:
        raise HTTPException(404, f"no incident {incident_id}")
    return found


@router.get("/incidents/{incident_id}", name="incident")
def incident_page(request: Request, incident_id: IncidentId, viewer: Annotated[Viewer, Depends(allowed("incidents"))]) -> Response:
    return page(request, "incident.html", viewer, incident=_incident(request, incident_id), error=None,
                section="incidents")


@router.post("/incidents/{incident_id}/acknowledge")
async def acknowledge(request: Request, incident_id: IncidentId,
                      viewer: Annotated[Viewer, Depends(acting_as("acknowledge"))]) -> Response:
    note = ((await form_of(request)).get("note") or "").strip()
    runtime = runtime_of(request)
    error = None
    if len(note) > 2000:
        error = "a note of at most 2000 characters, please"
    else:
        try:
            await run_in_threadpool(runtime.writer.run, lambda conn: acknowledge_incident(
                conn, runtime.ledger, incident_id, by=viewer.email, note=note or None, now=runtime.clock()))
        except IncidentError as exc:
            error = str(exc)
    if error is None:
        return RedirectResponse(f"{root(request)}/incidents/{incident_id}", status_code=303)
    found = await run_in_threadpool(_incident, request, incident_id)
    return await run_in_threadpool(lambda: page(request, "incident.html", viewer, status=409, incident=found,
                                                error=error, section="incidents"))
