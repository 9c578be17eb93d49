"""Activity: every decision, filtered and paged by key; a live feed of what happens."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from console import queries
from console.auth import Viewer, signed_in
from console.render import page, runtime_of
from ledger.database import read_only

router = APIRouter()

_KEY = re.compile(r"^(\d{1,12}(?:\.\d{1,9})?)~([A-Za-z0-9_]{1,64})$")


def _time(value: str, field: str, problems: list[str]) -> float | None:
    """`2026-12-01` or `2026-12-01T10:00` (UTC) as UNIX seconds; None when empty, and a problem
    said when unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"{field} {value!r} is not a date and time (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)")
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _choice(value: str, field: str, known: tuple[str, ...], problems: list[str]) -> str:
    if value and value not in known:
        problems.append(f"{field} {value!r} is not one of {', '.join(known)}")
        return ""
    return value


@router.get("/activity", name="activity")
def activity(request: Request, viewer: Annotated[Viewer, Depends(signed_in)],
             agent: Annotated[str, Query(max_length=64)] = "", tool: Annotated[str, Query(max_length=128)] = "",
             status: Annotated[str, Query(max_length=32)] = "", risk: Annotated[str, Query(max_length=2)] = "",
             since: Annotated[str, Query(max_length=32)] = "", until: Annotated[str, Query(max_length=32)] = "",
             before: Annotated[str, Query(max_length=100)] = "") -> Response:
    problems: list[str] = []  # what cannot be used is said, and the rest of the filters still apply
    key = _KEY.match(before)
    if before and key is None:
        problems.append("the page link is damaged: showing the newest decisions")
    filters = queries.Filters(agent=agent, tool=tool, status=_choice(status, "status", queries.STATUSES, problems),
                              risk=_choice(risk, "risk", queries.RISKS, problems),
                              since=_time(since, "from", problems), until=_time(until, "until", problems),
                              before=(float(key.group(1)), key.group(2)) if key else None)
    runtime = runtime_of(request)
    with read_only(runtime.db.connect()) as conn:
        rows, next_key = queries.activity(conn, filters)
        names = queries.choices(conn)["agents"]
    tools = sorted(runtime.registry.known_tools())
    next_link = None
    if next_key is not None:
        extra = {"since": since, "until": until, "before": f"{next_key[0]!r}~{next_key[1]}"}
        next_link = filters.query_string(**extra)
    return page(request, "activity.html", viewer, status=422 if problems else 200, problems=problems, rows=rows,
                filters=filters, since=since, until=until, agents=names, tools=tools, next_link=next_link,
                first_page=key is None, section="activity")
