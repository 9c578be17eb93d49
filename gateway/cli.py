"""The `warden` command.

Each area registers its own sub-commands; this module only assembles them and maps
failures to exit codes:

    0  ok
    1  a check failed (policy tests failed, audit verification failed)
    2  usage error (bad arguments, unreadable input)
    3  policy files do not compile
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_COMPILE_ERROR = 3

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _registrars() -> list[Register]:
    """The modules that contribute sub-commands. Each imports its heavy parts (the compiler,
    the engine, the database) inside its handlers, so `warden --help` stays fast."""
    from gateway import identity_commands, policy_commands, serve
    from ledger import cli as ledger_cli

    return [serve.register, policy_commands.register, identity_commands.register, ledger_cli.register]


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


if __name__ == "__main__":
    sys.exit(main())
