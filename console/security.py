"""Security headers for every console answer, and the cross-site request checks.

The Content-Security-Policy admits scripts, styles and connections from the gateway itself only,
with no inline script or style and no `eval`; `frame-ancestors 'none'` (and `X-Frame-Options`)
keeps the console out of other sites' frames. Every state-changing request must come from the
console's own pages: the browser's `Sec-Fetch-Site` or `Origin` must be the gateway's, and the
form (or the htmx header) must carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
])

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

log = logging.getLogger("warden.console")

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds `HEADERS` to every console answer; pages are never cached by shared caches. An
    unexpected error becomes `on_error`'s page (logged with its traceback), never a traceback."""

    def __init__(self, app: Any, on_error: Callable[[Request], Response]) -> None:
        super().__init__(app)
        self.on_error = on_error

    async def dispatch(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        try:
            response = await call_next(request)
        except Exception:
            log.exception("console error on %s", request.url.path)
            response = await run_in_threadpool(self.on_error, request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(f"{request.scope.get('root_path', '')}/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


class CrossSite(Exception):
    """A state-changing request that did not come from the console's own pages."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def origin_of(request: Request) -> str:
    """scheme://host[:port] the browser used for this request."""
    return f"{request.url.scheme}://{request.url.netloc}"


def check_same_origin(request: Request) -> None:
    """Refuse requests a browser marks as coming from another site (CSRF defence in depth)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CrossSite(f"a request from another site ({site}) cannot change anything here")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and origin != origin_of(request):
        raise CrossSite("a request from another origin cannot change anything here")
    if origin == "null":
        raise CrossSite("a request from an opaque origin cannot change anything here")


def check_token(expected: str, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise CrossSite("the form is out of date or did not come from this console; reload the page and try again")
