"""The MCP front over streamable HTTP, beside the API: `POST /mcp` (and GET, DELETE) in the
gateway's app, for agents elsewhere.

Warden is the resource server of the MCP authorization spec (OAuth 2.1): every request carries
`Authorization: Bearer <agent token>`, checked by the SDK's bearer backend through a
`TokenVerifier` (`AgentTokenVerifier`: the agent registry). A request without one, or with a token
that is unknown, revoked or a person's, gets 401 with `WWW-Authenticate: Bearer ...,
resource_metadata="<base>/.well-known/oauth-protected-resource/mcp"`, the RFC 9728 document that
names this resource and Warden as its authorization server (agent tokens are issued by
`warden agents add`). The base is `public_url`, else the request's own.

Stateless: each request stands alone (no MCP session to pin to one process), so the front works
the same under `warden serve --workers N`. A call's answer streams as server-sent events, so a
call that waits for an approver sends progress notifications on the way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend, RequireAuthMiddleware
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.auth import ProtectedResourceMetadata
from pydantic import AnyHttpUrl
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.engine.agents import Agent
from gateway.mcp.catalog import Waits
from gateway.mcp.front import Front
from gateway.mcp.identity import AgentTokens
from gateway.runtime.runtime import Runtime

MCP_PATH = "/mcp"
METADATA_PATH = "/.well-known/oauth-protected-resource" + MCP_PATH
#: The one scope an agent token carries here: acting as that agent through Warden's tools.
SCOPE = "warden.agent"
#: Room for the JSON-RPC envelope around a call's arguments, beyond the largest packet.
ENVELOPE_BYTES = 4096


class AgentTokenVerifier:
    """The SDK's `TokenVerifier` over Warden's agent registry. The access token names the agent
    (`client_id`, `subject`) and carries it (`claims["agent"]`) for the call's handler."""

    def __init__(self, tokens: AgentTokens) -> None:
        self.tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        agent = await self.tokens.agent_async(token)
        if agent is None:
            return None
        return AccessToken(token=token, client_id=agent.name, subject=agent.name, scopes=[SCOPE],
                           claims={"agent": agent.model_dump(mode="json")})


def base_url(settings_url: str, scope: Scope) -> str:
    """`public_url` if set, else the address this request came to."""
    if settings_url:
        return settings_url.rstrip("/")
    return str(Request(scope).base_url).rstrip("/")


class _RequireAgent:
    """The SDK's `RequireAuthMiddleware`, with the metadata address of this request's base."""

    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        self.public_url = public_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metadata = AnyHttpUrl(base_url(self.public_url, scope) + METADATA_PATH)
        await RequireAuthMiddleware(self.app, [SCOPE], metadata)(scope, receive, send)


async def http_caller(ctx: ServerRequestContext[Any, Any]) -> Agent | None:
    """The agent whose token the HTTP request carried (checked by the bearer backend before)."""
    request = ctx.request
    user = request.scope.get("user") if isinstance(request, Request) else None
    if not isinstance(user, AuthenticatedUser) or not user.access_token.claims:
        return None
    return Agent.model_validate(user.access_token.claims["agent"])


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Serve the MCP front at /mcp in `app`, and its protected-resource metadata; the session
    manager runs inside the app's lifespan, after the runtime has started."""
    settings = runtime.settings
    waits = Waits(settings.mcp_wait_seconds, settings.mcp_wait_max_seconds)
    server = Front(runtime, http_caller, waits).server()
    manager = StreamableHTTPSessionManager(app=server, stateless=True, json_response=False,
                                          max_request_body_size=settings.max_packet_bytes + ENVELOPE_BYTES)
    verifier = AgentTokenVerifier(AgentTokens(runtime.db))
    endpoint = AuthenticationMiddleware(
        AuthContextMiddleware(_RequireAgent(StreamableHTTPASGIApp(manager), settings.public_url)),
        backend=BearerAuthBackend(verifier),
    )

    async def metadata(request: Request) -> Response:
        base = base_url(settings.public_url, request.scope)
        document = ProtectedResourceMetadata.model_validate({  # the URLs as written: issuers compare exactly
            "resource": base + MCP_PATH, "authorization_servers": [base], "scopes_supported": [SCOPE],
            "resource_name": "Warden", "resource_documentation": base + "/docs",
        })
        return JSONResponse(document.model_dump(mode="json", exclude_none=True),
                            headers={"Cache-Control": "public, max-age=3600"})

    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    app.router.routes.append(Route(METADATA_PATH, endpoint=metadata, methods=["GET"]))
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with outer(application) as state, manager.run():
            yield state

    app.router.lifespan_context = lifespan
