"""The request log: one `http_request` line and one `observe_request` per HTTP request.

Each line has the method, the route template (`/v1/actions/{decision_id}`, never the id), the path
without the query string, the status code, duration_ms (the whole request), the request id and
the actor, then whatever the layers below joined to it while serving it: a request that made a
decision carries decision_id, packet_id, tool, status, risk, autonomy and decision_ms (the
pipeline's own time for it: record, execute), so a governed request is one line, with no
`decision` line of its own. The fields travel in `gateway.logs.request_line_var`, a `RequestLine`
opened here per request and filled through `gateway.logs.join_request_line` (the runtime's
decision observer calls it from the worker thread the pipeline runs on).

The request id (`X-Request-ID` in when well formed, else a new one) is echoed in the response and
set on every log line written while the request is served (`gateway.logs.request_id_var`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from gateway.logs import RequestLine, log_event, request_id_var, request_line_var
from gateway.store.randomness import random_hex

_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class RequestObserver(Protocol):
    def observe_request(self, method: str, route: str, code: int | str, seconds: float | None = None) -> None: ...


UNMATCHED = "<unmatched>"
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})


def route_template(scope: Scope) -> str:
    """The matched route's template (`/v1/actions/{decision_id}`); `<unmatched>` for a 404."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else UNMATCHED


class RequestLogMiddleware:
    """Pure ASGI middleware: a request id for every request (`X-Request-ID` in, or a new one;
    echoed in the response and set on every log line), one `http_request` log line and one
    `observe_request` per request. The actor is read from `request.state.actor` if the auth
    layer sets it; fields joined to the request's `RequestLine` follow the line's own (which
    they never replace). Health and metrics routes are logged at debug level only."""

    def __init__(self, app: ASGIApp, *, metrics: RequestObserver | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logger or logging.getLogger("warden.http")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else random_hex(16)
        token = request_id_var.set(request_id)
        joined = RequestLine()
        line_token = request_line_var.set(joined)
        started = time.perf_counter()
        code = 500

        async def send_with_id(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            method = str(scope.get("method", ""))
            if self.metrics is not None:
                self.metrics.observe_request(method, route, code, seconds)
            state = scope.get("state") or {}
            level = logging.DEBUG if route in QUIET_ROUTES else logging.WARNING if code >= 500 else logging.INFO
            fields: dict[str, Any] = {"method": method, "route": route, "path": scope.get("path", ""),
                                      "code": code, "duration_ms": round(seconds * 1000, 3),
                                      "actor": state.get("actor")}
            for name, value in joined.close().items():
                fields.setdefault(name, value)
            log_event(self.log, "http_request", level=level, **fields)
            request_line_var.reset(line_token)
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
