"""The `warden` command.

Each area registers its own sub-commands; this module only assembles them. Exit codes are
defined in `gateway.cli.exits`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from gateway.cli.exits import EXIT_OK

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    """The modules that contribute sub-commands. Each imports its heavy parts (the compiler,
    the engine, the database) inside its handlers, so `warden --help` stays fast."""
    from gateway.cli import identities, ledger, policy, serve

    return [serve.register, policy.register, identities.register, ledger.register]


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
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK

