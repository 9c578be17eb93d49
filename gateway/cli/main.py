"""The `warden` command.

One module per command registers its sub-commands; this module only assembles them and runs the
chosen handler through `gateway.cli.guard`, which turns every expected failure into one line and
an exit code (`gateway.cli.exits`). Every command reads the same settings (`gateway.cli.options`).

    serve                        gateway.cli.serve
    policy check|test|explain    gateway.cli.policy
    agents ...                   gateway.cli.agents
    users ...                    gateway.cli.users
    config show|list             gateway.cli.config
    db upgrade                   gateway.cli.db
    keys generate|rotate         gateway.cli.keys
    audit checkpoint|export|verify   gateway.cli.audit (report: gateway.cli.verification)
    connectors check             gateway.cli.connectors
    actions compensate           gateway.cli.actions
    mcp                          gateway.cli.mcp (the front: gateway.mcp)
    webhooks add|list|disable|enable|remove|deliveries   gateway.cli.webhooks
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from gateway.cli import guard
from gateway.cli.options import check_settings_file

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    """The modules that contribute sub-commands. Each imports its heavy parts (the compiler,
    the engine, the database, the crypto stack) inside its handlers, so `warden --help` stays
    fast."""
    from gateway.cli import actions, agents, audit, config, connectors, db, keys, mcp, policy, replay, serve, users, webhooks

    return [serve.register, policy.register, agents.register, users.register, config.register,
            db.register, keys.register, audit.register, connectors.register, actions.register, mcp.register,
            webhooks.register, replay.register]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warden", description="Warden: the governance gateway between AI agents and the world."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for register in _registrars():
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: guard.Handler = args.handler

    def checked(args: argparse.Namespace) -> int:
        check_settings_file(args)
        return handler(args)

    return guard.run(checked, args)
