"""How a `warden agents` or `warden users` command runs: one change to the registry of who may
call Warden, in one transaction, its output printed only once it has committed.

Every such command takes `--db URL` (default: the database_url setting) and `--config FILE`,
and creates the schema if it is missing. A token is the only thing on stdout, so
`TOKEN=$(warden agents add ...)` works; what it is goes to stderr. Changes are recorded in the
audit log as made by `cli:<os user>`.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.cli.db import open_database
from gateway.cli.exits import EXIT_OK
from gateway.cli.guard import Handler
from gateway.cli.options import add_config_option, add_db_option

if TYPE_CHECKING:  # SQLAlchemy and the ledger load only when a registry command runs
    from sqlalchemy import Connection

    from ledger.store import Ledger


@dataclass(frozen=True)
class Output:
    """What a registry command prints once its transaction has committed."""

    stdout: str | None = None
    stderr: str | None = None

    def show(self) -> None:
        if self.stderr:
            print(self.stderr, file=sys.stderr)
        if self.stdout is not None:
            print(self.stdout)


#: One registry command: (its arguments, the open transaction, the log, who acts, now) → output.
Change = Callable[[argparse.Namespace, "Connection", "Ledger", str, float], Output]


def add_command(group: Any, name: str, help: str, change: Change) -> argparse.ArgumentParser:
    """Add `warden agents|users NAME` running `change`, with `--db` and `--config`."""
    parser: argparse.ArgumentParser = group.add_parser(name, help=help, description=help)
    add_db_option(parser)
    add_config_option(parser)
    parser.set_defaults(handler=handler(change))
    return parser


def handler(change: Change) -> Handler:
    def run(args: argparse.Namespace) -> int:
        from gateway.store.schema import upgrade
        from ledger.store import Ledger

        with open_database(args, create=True) as engine:
            upgrade(engine)
            with engine.begin() as conn:
                output = change(args, conn, Ledger(), _actor(), time.time())
        output.show()  # after the commit: a token is shown only once it is valid
        return EXIT_OK

    return run


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def table(header: list[str], rows: list[list[Any]]) -> str:
    """Columns padded to their widest cell, for `agents list` and `users list`."""
    cells = [header, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)
