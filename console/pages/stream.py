"""`GET /console/events`: the live feed as server-sent events.

Each audit entry becomes named events the pages listen for (htmx's SSE extension):

- `inbox`: the pending list changed (a decision, an approval, a rejection, an expiry, an
  execution, the kill switch), so the inbox fetches its rows again;
- `decision-<id>`: something happened to that decision (or it was undone: a compensating
  decision names the one it undoes); its page fetches its panel again;
- `feed`: a line of HTML for the activity feed (incidents only for roles that see them);
- `kill-switch`, `agents`, `incidents`: those pages and the banner refresh.

`ready` says the page is subscribed. A `resync` (when the page may have missed entries: it
connected without `after`, or after the feed had read past it, or it fell behind) asks for all
of them; a page that connects with the `after` it was rendered with gets the entries since. The session is checked
again every `RECHECK` seconds: a page signed out elsewhere stops receiving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from console import present
from console.auth import Viewer, lookup
from console.events import RESYNC, Event
from console.render import root, templates

router = APIRouter()

RECHECK = 30.0
INBOX_KINDS = frozenset({"decision", "approval", "rejection", "expiry", "reevaluation", "execution", "kill_switch"})
AGENT_KINDS = frozenset({"agent_registered", "agent_changed", "agent_revoked"})
INCIDENT_KINDS = frozenset({"incident", "incident_acknowledged"})
FEED_KINDS = INBOX_KINDS | AGENT_KINDS | INCIDENT_KINDS | frozenset({"refusal", "policy_activated"})


def _feed_line(request: Request, viewer: Viewer, event: Event) -> str:
    return templates.get_template("_feed_item.html").render(event=event, base=root(request), viewer=viewer,
                                                            summary=present.summary)


def events_for(request: Request, viewer: Viewer, event: Event) -> list[ServerSentEvent]:
    if event is RESYNC:
        return [ServerSentEvent(data="", event=name) for name in ("inbox", "kill-switch", "agents", "incidents",
                                                                  "resync")]
    out = []
    if event.kind in INBOX_KINDS:
        out.append(ServerSentEvent(data="", event="inbox"))
    if event.decision_id:
        out.append(ServerSentEvent(data="", event=f"decision-{event.decision_id}"))
    if event.compensates:  # the undone decision's page shows its compensation
        out.append(ServerSentEvent(data="", event=f"decision-{event.compensates}"))
    if event.kind == "kill_switch":
        out.append(ServerSentEvent(data="", event="kill-switch"))
    if event.kind in AGENT_KINDS:
        out.append(ServerSentEvent(data="", event="agents"))
    if event.kind in INCIDENT_KINDS and viewer.can("incidents"):
        out.append(ServerSentEvent(data="", event="incidents"))
    if event.kind in FEED_KINDS and (event.kind not in INCIDENT_KINDS or viewer.can("incidents")):
        out.append(ServerSentEvent(data=_feed_line(request, viewer, event), event="feed", id=str(event.seq)))
    return out


async def _signed_out() -> AsyncIterator[ServerSentEvent]:
    yield ServerSentEvent(data="", event="signed-out")


@router.get("/events", name="events")
async def events(request: Request, after: Annotated[int | None, Query(ge=-1, le=2**53)] = None) -> EventSourceResponse:
    """The live feed; `after` is the last entry the page was rendered with (see `Feed.open`)."""
    viewer = await run_in_threadpool(lookup, request)
    if viewer is None:
        # A page whose session has ended (idle, lifetime, signed out elsewhere) reconnecting: an
        # EventSource cannot follow the sign-in redirect, so tell the page, which reloads to the form.
        return EventSourceResponse(_signed_out(), headers={"Cache-Control": "no-store"})
    request.state.actor = viewer.email
    feed = request.app.state.feed
    seen = after if after is not None and after <= await run_in_threadpool(feed.head) else None

    async def stream() -> AsyncIterator[ServerSentEvent]:
        checked = time.monotonic()
        queue = feed.open(seen)
        try:
            yield ServerSentEvent(data="", event="ready")  # subscribed: what happens from now on arrives
            while True:
                try:
                    event: Event | None = await asyncio.wait_for(queue.get(), timeout=RECHECK)
                except TimeoutError:
                    event = None
                if time.monotonic() - checked > RECHECK:
                    checked = time.monotonic()
                    if await run_in_threadpool(lookup, request) is None:
                        yield ServerSentEvent(data="", event="signed-out")
                        return
                if event is not None:
                    for message in events_for(request, viewer, event):
                        yield message
        finally:
            feed.close(queue)

    return EventSourceResponse(stream(), ping=15, send_timeout=10, headers={"Cache-Control": "no-store"})


__all__ = ["router"]
