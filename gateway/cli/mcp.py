"""`warden mcp`: serve Warden's tool catalog as MCP tools over stdio, for a local agent.

    WARDEN_AGENT_TOKEN=wdn_agent_... warden mcp [--config warden.toml]

An MCP client starts it as a subprocess; the agent's token comes from the environment and is
checked at start (an unknown token: one line on stderr, exit 2). The process works on the
configured database beside any `warden serve` (it never re-drives the others' executions at
start), and stops when the client closes stdin. Over HTTP the same front is served by
`warden serve` at /mcp (setting `mcp_http`). See `gateway.mcp`.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from gateway.cli.exits import EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option, settings

SPEAKER = "warden mcp"


def register(commands: Any) -> None:
    mcp = commands.add_parser("mcp", help="serve the tool catalog as MCP tools over stdio ($WARDEN_AGENT_TOKEN)",
                              description="serve Warden's tools to an MCP client over stdio, as the agent whose "
                                          "token is in $WARDEN_AGENT_TOKEN")
    add_config_option(mcp)
    mcp.set_defaults(handler=mcp_command)


def mcp_command(args: argparse.Namespace) -> int:
    import anyio

    from gateway.logs import configure_logging
    from gateway.mcp.stdio import TOKEN_ENV, UnknownAgentToken, check_token, serve_stdio
    from gateway.runtime.runtime import Runtime

    configured = settings(args).model_copy(update={"outbox_recover_on_start": False})
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise CommandError(f"set ${TOKEN_ENV} to the agent's token (from `warden agents add`)", prefix=SPEAKER)
    configure_logging(configured.log_level, json=configured.log_json)  # stderr: stdout is the protocol's
    runtime = Runtime(configured)
    try:
        try:
            check_token(runtime, token)
        except UnknownAgentToken as exc:
            raise CommandError(str(exc), prefix=SPEAKER) from None
        runtime.start()
        anyio.run(serve_stdio, runtime, token)
    finally:
        runtime.stop()
    return EXIT_OK
