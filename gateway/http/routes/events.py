"""`GET /v1/events`: the audit log's events as server-sent events (`gateway.events`).

Each message is `id: <seq>`, `event: <kind>`, `data: <the event as JSON>`. `?kinds=a,b` keeps
those kinds; the caller's role keeps what it may see (`gateway.events.model.visible`: an agent
only its own decisions'). A client that reconnects with `Last-Event-ID` (or `?after=`) gets
every event after that entry, read from the log, then live. The token is checked again every
`RECHECK` seconds: the stream of a caller revoked or given another role meanwhile ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from gateway.events.model import Event, UnknownKind, parse_kinds, visible
from gateway.http.auth import ANYONE, Principal, authenticate, bearer_token, require
from gateway.http.deps import RuntimeDep
from gateway.http.problems import Problem, problem_responses

router = APIRouter(tags=["events"])

RECHECK = 30.0


@router.get("/v1/events", summary="The audit log's events, as server-sent events",
            response_class=EventSourceResponse,
            responses=problem_responses("missing_token", "invalid_token", "invalid_request"))
async def events(
    request: Request,
    runtime: RuntimeDep,
    kinds: Annotated[str | None, Query(max_length=200, description="comma-separated kinds; all when absent")] = None,
    after: Annotated[int | None, Query(ge=-1, le=2**53, description="resume after this seq (as Last-Event-ID)")] = None,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
    who: Principal = Depends(require(*ANYONE)),
) -> EventSourceResponse:
    try:
        wanted = parse_kinds(kinds)
    except UnknownKind as exc:
        raise Problem("invalid_request", str(exc)) from exc
    start = after
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().lstrip("-").isdigit():
            raise Problem("invalid_request", "Last-Event-ID must be the seq of the last event received")
        start = int(last_event_id)
    if start is not None and start > await run_in_threadpool(runtime.events.head):
        raise Problem("invalid_request", f"no entry {start} in the log yet: resume from an event received")
    token = bearer_token(request)

    def keep(event: Event) -> bool:
        return event.kind in wanted and visible(event, who.role, who.name)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        checked = time.monotonic()
        async for event in runtime.events.follow(start, keep, idle=RECHECK):
            if time.monotonic() - checked >= RECHECK:
                checked = time.monotonic()
                try:
                    now = await run_in_threadpool(authenticate, runtime.db, token, None)
                except Problem:
                    return  # revoked meanwhile (or the database is away): the stream ends
                if now.role != who.role:
                    return  # what the caller may see has changed: it reconnects under its new role
            if event is not None:
                yield ServerSentEvent(data=event.body().decode(), event=event.kind, id=str(event.seq))

    return EventSourceResponse(stream(), ping=15, send_timeout=10, headers={"Cache-Control": "no-store"})
