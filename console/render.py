"""Templates and what every page shares: the signed-in person, their permissions, the kill switch
banner, the pending count, the CSRF token. Jinja2 escapes everything by default; nothing a packet
carries is ever marked safe."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import HTMLResponse

from console import present, queries
from console.auth import Viewer
from ledger.database import read_only

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

templates = Jinja2Templates(directory=str(TEMPLATES))
templates.env.filters.update(money=present.money, iso=present.iso, json=present.json_text)
templates.env.globals.update(summary=present.summary, statuses=queries.STATUSES, risks=queries.RISKS)


def root(request: Request) -> str:
    """The console's path prefix (`/console`), for links."""
    return str(request.scope.get("root_path", ""))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def runtime_of(request: Request) -> Any:
    return request.app.state.warden


def page(request: Request, template: str, viewer: Viewer | None, *, status: int = 200,
         headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """Render `template` with the shared context (blocking: pages are sync routes)."""
    runtime = runtime_of(request)
    shell = None
    if viewer is not None:
        with read_only(runtime.db.connect()) as conn:
            shell = queries.shell(conn)
    now = runtime.clock()
    shared = {
        "viewer": viewer, "shell": shell, "base": root(request), "now": now,
        "ago": lambda ts: present.ago(ts, now), "wall_now": time.time(),
    }
    return templates.TemplateResponse(request, template, {**shared, **context}, status_code=status,
                                      headers=headers)
