"""The MCP front over stdio, for an agent on the same machine: `warden mcp`, started by the
agent's MCP client with the agent's token in `WARDEN_AGENT_TOKEN`.

The process is a gateway process of its own over the configured database (like a `warden`
command beside `warden serve`): it decides, records and executes through the same pipeline, and
approvers approve its pending actions through the API or the console of any gateway on that
database. The token is checked at start (an unknown or revoked token ends the process with one
line on stderr) and again with every request, so a revocation takes effect at once. stdout
carries the protocol only; logs go to stderr.
"""

from __future__ import annotations

from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.stdio import stdio_server

from gateway.engine.agents import Agent
from gateway.mcp.catalog import Waits
from gateway.mcp.front import Front
from gateway.mcp.identity import AgentTokens
from gateway.runtime.runtime import Runtime

TOKEN_ENV = "WARDEN_AGENT_TOKEN"


class UnknownAgentToken(Exception):
    """The token in the environment is no agent's (unknown, revoked, rotated, or a person's)."""


def check_token(runtime: Runtime, token: str) -> tuple[AgentTokens, Agent]:
    tokens = AgentTokens(runtime.db)
    agent = tokens.agent(token) if token else None
    if agent is None:
        raise UnknownAgentToken(f"${TOKEN_ENV} is not an agent's token (unknown, revoked or rotated); "
                                "`warden agents add` issues one")
    return tokens, agent


async def serve_stdio(runtime: Runtime, token: str) -> None:
    """Serve MCP on stdin/stdout as the agent holding `token`, until the client closes stdin."""
    tokens, _agent = check_token(runtime, token)

    async def caller(_ctx: ServerRequestContext[Any, Any]) -> Agent | None:
        return await tokens.agent_async(token)

    settings = runtime.settings
    server = Front(runtime, caller, Waits(settings.mcp_wait_seconds, settings.mcp_wait_max_seconds)).server()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
