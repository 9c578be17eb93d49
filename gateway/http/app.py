"""The HTTP API of DESIGN.md ("HTTP surface"), as a FastAPI app over a `Runtime`.

`create_app` only assembles: the routers (`gateway.http.routes`, one per area), the error
handlers (`gateway.http.handlers`: every error is `application/problem+json`, never a
traceback), the hot route (`gateway.http.hotpath`: `POST /v1/actions` served without the
framework's routing), the request log (`gateway.http.requestlog`) and the OpenAPI document
(`gateway.http.openapi`). Bodies are read by `gateway.http.body`. The docs pages (`/docs`,
`/redoc`) load Swagger UI and ReDoc from files the gateway serves itself (`fastapi-offline`),
so they work without internet access.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from gateway.http.handlers import install_error_handlers
from gateway.http.hotpath import SubmitRoute
from gateway.http.openapi import install_openapi
from gateway.http.requestlog import RequestLogMiddleware
from gateway.http.routes import ROUTERS
from gateway.http.routes.approvals import ApprovalBody, RejectionBody
from gateway.http.routes.killswitch import KillSwitchBody
from gateway.runtime.runtime import Runtime

#: Where the docs pages' scripts, styles and icon are served.
DOCS_ASSETS = "/docs/assets"


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPIOffline(
        title="Warden",
        version="1.0",
        description="The governance gateway between AI agents and the systems they act on.",
        lifespan=runtime.lifespan,
        static_url=DOCS_ASSETS,
        swagger_ui_parameters={"validatorUrl": None},  # no call to an online validator either
    )
    app.state.warden = runtime
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app, routes=[*app.routes, *(route for router in ROUTERS for route in router.routes)])
    app.add_middleware(SubmitRoute, api=app)  # inside the request log: the same id, line and metrics
    app.add_middleware(RequestLogMiddleware, metrics=runtime.metrics)
    install_openapi(app, bodies=(ApprovalBody, RejectionBody, KillSwitchBody))
    if runtime.settings.console:  # the approvers' console, at /console/ (its own pages and headers)
        from console import mount

        mount(app, runtime)
    if runtime.settings.mcp_http:  # the MCP front at /mcp, for agents (gateway.mcp.http)
        from gateway.mcp.http import mount as mount_mcp

        mount_mcp(app, runtime)
    return app
