"""The console as a sub-application of the gateway's FastAPI app, at `/console`.

It has its own error pages (HTML, never a traceback, never the API's problem+json), its own
security headers (`console.security`), its static files, and one router per page
(`console.pages`). It shares the gateway's `Runtime`: the same database, pipeline and audit log.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from console.auth import Forbidden, SignInRequired
from console.events import Feed
from console.pages import ROUTERS
from console.render import STATIC, is_htmx, page, root
from console.security import CrossSite, SecurityHeaders

log = logging.getLogger("warden.console")

PREFIX = "/console"


def create_console(runtime: Any) -> FastAPI:
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.warden = runtime
    console.state.feed = Feed(runtime)
    console.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    for router in ROUTERS:
        console.include_router(router)
    console.add_middleware(SecurityHeaders, on_error=lambda request: _error(
        request, 500, "Something went wrong", "the console could not answer; nothing was changed by this page. "
        "The gateway's log has the details."))
    _install_error_pages(console)
    return console


def mount(app: FastAPI, runtime: Any) -> None:
    app.mount(PREFIX, create_console(runtime))

    @app.get(PREFIX, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)


def _error(request: Request, status: int, title: str, message: str) -> Response:
    """The error page; for an htmx request only its message, which the page shows in place."""
    if is_htmx(request):
        return page(request, "_error_message.html", None, status=status, title=title, message=message)
    return page(request, "error.html", None, status=status, title=title, message=message)


def _install_error_pages(console: FastAPI) -> None:
    @console.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"{root(request)}/login?next={quote(target, safe='')}"
        if is_htmx(request) or request.method != "GET":
            response: Response = Response(status_code=401, headers={"HX-Redirect": login})
            return response
        return RedirectResponse(login, status_code=303)

    @console.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return _error(request, 403, "Not allowed", exc.message)

    @console.exception_handler(CrossSite)
    async def cross_site(request: Request, exc: CrossSite) -> Response:
        log.warning("console request refused: %s", exc.why)
        return _error(request, 403, "Request refused", exc.why)

    @console.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(".".join(str(p) for p in err.get("loc", ())[1:]) or "request" for err in exc.errors()[:5])
        return _error(request, 422, "Not understood", f"this request is missing or has a wrong value for: {fields}")

    @console.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        titles = {404: "Not found", 405: "Not allowed here"}
        return _error(request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail))
