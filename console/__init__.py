"""The approvers' console: server-rendered pages at `/console/` for the people who decide.

`mount(app, runtime)` adds it to the gateway's FastAPI app as a sub-application with its own
error pages and security headers (`console.app`). Pages are Jinja2 templates (`templates/`),
enhanced by htmx and server-sent events from static files served by the package itself
(`static/vendor/`: no CDN, no build step). Approve and reject are plain forms: the console works
without JavaScript where it can.

Rooms inside: `app` (assembly), `security` (headers, CSRF), `auth` (cookie sessions, the signed-in
person and their role), `render` (templates and the context every page shares), `present` (how
a packet reads: money in currency units, one-line summaries, the matrix), `explain` (a reason's
rule source, and why this viewer cannot approve), `queries` (the reads
behind the pages), `events` (the live feed: the audit log, tailed), `pages/` (one router per page).
May import the gateway's runtime and the rooms below it, `connectors/`, `ledger/`, `dsl/`; never
the HTTP API (`gateway.http`) or the command line.
"""

from __future__ import annotations

from typing import Any


def mount(app: Any, runtime: Any) -> None:
    """Serve the console at `/console/` on `app` (the gateway's FastAPI app)."""
    from console.app import mount as _mount

    _mount(app, runtime)


__all__ = ["mount"]
