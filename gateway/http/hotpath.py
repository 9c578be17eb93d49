"""`POST /v1/actions` without FastAPI's routing and dependency machinery.

Every governed action is one `POST /v1/actions`, and on that one route the framework's own work
per request (matching every route in turn, solving the dependencies, an exit stack per call,
the exception middleware's wrapping) cost about a tenth of the gateway's CPU per request
(measured side by side: 1.12–1.17 against 1.23–1.30 ms, 927–967 against 824–873 req/s).
`SubmitRoute` sits inside the request log (so the request id, the log line and the metrics are
the same) and serves exactly that method and path itself, with the route's own parts: the
`AGENTS` dependency, `submit_packet`, and the app's exception handlers looked up as Starlette
looks them up (by the exception's class, then its bases). Everything else, `/v1/actions/`
with a slash, another method or a `root_path` included, goes on to FastAPI, whose route for
`POST /v1/actions` stays what the OpenAPI document describes and what serves the same answer
there.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from gateway.http.routes.actions import AGENTS, SUBMIT_PATH, router, submit_packet

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SubmitRoute:
    """ASGI middleware: `POST /v1/actions` answered here, the rest passed on to `app`."""

    def __init__(self, app: ASGIApp, *, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self.route = next(route for route in router.routes if isinstance(route, APIRoute)
                          and route.path == SUBMIT_PATH and "POST" in (route.methods or ()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != SUBMIT_PATH
                or scope.get("root_path")):
            await self.app(scope, receive, send)
            return
        scope["app"], scope["route"], scope["endpoint"] = self.api, self.route, self.route.endpoint
        scope.setdefault("path_params", {})
        request = Request(scope, receive)
        try:
            response = await submit_packet(request, await AGENTS(request))
        except Exception as exc:
            response = await answer_error(self.api, request, exc)
        await response(scope, receive, send)


async def answer_error(api: FastAPI, request: Request, exc: Exception) -> Response:
    """The response the app's exception handlers give for `exc` (the handler of its class or of
    the nearest base, as Starlette chooses); call it inside the `except` that caught `exc`."""
    for cls in type(exc).__mro__:
        handler = api.exception_handlers.get(cls)
        if handler is not None:  # the app's handlers are all coroutines (gateway.http.handlers)
            answer = handler(request, exc)
            response: Response = await answer if inspect.isawaitable(answer) else answer
            return response
    raise exc
