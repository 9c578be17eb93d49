"""The inbox: pending approvals, soonest expiry first, refreshed live over SSE."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from console import queries
from console.auth import Viewer, signed_in
from console.render import page, runtime_of
from ledger.database import read_only

router = APIRouter()


def _rows(request: Request) -> list[queries.Row]:
    with read_only(runtime_of(request).db.connect()) as conn:
        return queries.pending(conn)


@router.get("/", name="inbox")
def inbox(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return page(request, "inbox.html", viewer, rows=_rows(request), section="inbox")


@router.get("/inbox/rows", name="inbox_rows")
def inbox_rows(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """The table's rows alone, for live refresh."""
    return page(request, "_inbox_rows.html", viewer, rows=_rows(request))


@router.get("/inbox/badge", name="inbox_badge")
def inbox_badge(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """The pending count in the navigation, live on every page."""
    return page(request, "_badge.html", viewer)
