"""The kill switch: founders engage and release it with a reason, after a confirmation step."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from console.auth import Viewer, acting_as, form_of, signed_in
from console.render import page, root, runtime_of
from gateway.pipeline.approvals import Person
from gateway.pipeline.errors import PipelineError

router = APIRouter()


@router.get("/kill-switch", name="kill_switch")
def kill_switch(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    return page(request, "killswitch.html", viewer, step="form", reason="", error=None, section="kill_switch")


@router.post("/kill-switch")
async def change(request: Request, viewer: Annotated[Viewer, Depends(acting_as("kill_switch"))]) -> Response:
    form = await form_of(request)
    runtime = runtime_of(request)
    engage = form.get("engage") == "true"
    reason = (form.get("reason") or "").strip()
    error = None
    if not reason:
        error = "give a reason: it goes into the audit log and the banner everyone sees"
    elif len(reason) > 500:
        error = "a reason of at most 500 characters, please"
    if error is None and form.get("confirm") != "yes":  # the confirmation step
        return await run_in_threadpool(lambda: page(request, "killswitch.html", viewer, step="confirm", engage=engage,
                                                    reason=reason, error=None, section="kill_switch"))
    if error is None:
        try:
            await run_in_threadpool(runtime.approvals.set_kill_switch, Person(viewer.email, viewer.role), engage, reason)
            runtime.changes.notify_all()  # agents long-polling see the change now, as after the API's
        except PipelineError as exc:
            error = exc.message
    if error is None:
        return RedirectResponse(f"{root(request)}/kill-switch", status_code=303)
    return await run_in_threadpool(lambda: page(request, "killswitch.html", viewer, status=422, step="form",
                                                reason=reason, error=error, section="kill_switch"))


@router.get("/banner", name="banner")
def banner(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
    """The kill switch banner alone, for live refresh on every page."""
    return page(request, "_banner.html", viewer)
