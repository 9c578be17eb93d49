"""Every exception a request can end in, answered as a problem (`gateway.http.problems`):
the API's own problems, the pipeline's errors, FastAPI's validation and routing errors, an
unreachable database, and anything unexpected (logged, never shown as a traceback)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from gateway.http.problems import Problem, problem_of, problem_response
from gateway.pipeline.errors import PipelineError
from gateway.store.writer import WriterClosed

log = logging.getLogger("warden.http")

#: Statuses of FastAPI's and Starlette's own errors → problem codes (others: `invalid_request`).
ROUTING_PROBLEMS = {404: "not_found", 405: "method_not_allowed"}


class MethodIndex:
    """Which methods the app answers at a path, for a 405's `Allow` (RFC 9110 §10.2.1): a path
    may have one route per method, and the router names only the first one it tried."""

    def __init__(self, routes: Iterable[BaseRoute]) -> None:
        self._routes = [(route.path_regex, frozenset(route.methods)) for route in routes
                        if isinstance(route, Route) and route.methods]

    def allow(self, path: str, said: str = "") -> str:
        """`Allow` for `path`; `said` is the one the answering route or mounted app gave."""
        methods = {m.strip() for m in said.split(",") if m.strip()}
        for regex, answered in self._routes:
            if regex.match(path):
                methods |= answered
        return ", ".join(sorted(methods))


async def _problem(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc)


async def _pipeline(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PipelineError)
    try:
        return problem_response(problem_of(exc))
    except LookupError:
        log.exception("a pipeline error without a problem code")
        return problem_response(Problem("internal_error", "an unexpected error stopped the request; nothing was executed"))


async def _invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")} for e in exc.errors()]
    return problem_response(Problem("invalid_request", "the request does not match the API", errors=errors))


def _http(index: MethodIndex) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = ROUTING_PROBLEMS.get(exc.status_code, "invalid_request")
        headers = dict(exc.headers or {})
        if code == "method_not_allowed":
            headers["Allow"] = index.allow(request.url.path, headers.get("Allow", ""))
        return problem_response(Problem(code, str(exc.detail), headers=headers))

    return handler


async def _db(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", type(exc).__name__)
    return problem_response(Problem("database_unavailable", "the database cannot be reached; nothing was recorded or executed"))


async def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
    """A value the database refuses to hold (PostgreSQL: a NUL character in a text column): the
    request's fault, not the database's; the unit of work rolled back, nothing was recorded."""
    log.warning("the database refused a value of the request: %s", type(exc).__name__)
    return problem_response(Problem("invalid_request", "the request holds a value that cannot be stored "
                                    "(for example a NUL character); nothing was recorded or executed"))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, WriterClosed):  # shutting down: nothing was recorded
        return problem_response(Problem("not_ready", "Warden is shutting down; nothing was recorded or executed"))
    log.exception("unexpected error")
    if isinstance(exc, DBAPIError):
        return problem_response(Problem("database_unavailable", "a database error stopped the request; nothing was executed"))
    return problem_response(Problem("internal_error", "an unexpected error stopped the request; nothing was executed"))


def install_error_handlers(app: FastAPI, routes: Iterable[BaseRoute]) -> None:
    """Answer every exception as a problem; `routes` (every route of the app) name the methods
    of a 405's `Allow`."""
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(PipelineError, _pipeline)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http(MethodIndex(routes)))
    app.add_exception_handler(OperationalError, _db)
    app.add_exception_handler(DataError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
