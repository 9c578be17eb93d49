"""`warden db upgrade`, and the database every command that needs one opens.

    db upgrade [--db URL] [--config FILE]     create or upgrade Warden's tables (idempotent)

The database is `--db URL`, else the database_url setting (`gateway.cli.options`): the one
`warden serve` uses. Commands that only read or append to an existing log open it with
`create=False`, so a mistyped SQLite path is an error rather than a new, empty database.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from gateway.cli.exits import EXIT_OK
from gateway.cli.options import add_config_option, add_db_option, command_group, database_url

if TYPE_CHECKING:  # SQLAlchemy loads only when a command opens the database
    from sqlalchemy import Engine


def register(subparsers: Any) -> None:
    """Add `warden db` to the `warden` command."""
    commands = command_group(subparsers, "db", "the database schema")
    upgrade = commands.add_parser("upgrade", help="create or upgrade Warden's tables (idempotent)")
    add_db_option(upgrade)
    add_config_option(upgrade)
    upgrade.set_defaults(handler=upgrade_command)


@contextmanager
def open_database(args: argparse.Namespace, *, create: bool) -> Iterator[Engine]:
    """An engine on the command's database, disposed of when the command is done with it."""
    from ledger.database import make_engine

    engine = make_engine(database_url(args), create=create)
    try:
        yield engine
    finally:
        engine.dispose()


def upgrade_command(args: argparse.Namespace) -> int:
    from gateway.store.schema import upgrade  # the ledger's tables and the gateway's
    from ledger.database import describe

    with open_database(args, create=True) as engine:
        versions = upgrade(engine)
    where = describe(engine)
    for component, (before, after) in versions.items():
        change = "already at" if before == after else f"upgraded from {before} to"
        print(f"{where}: {component} schema {change} version {after}")
    return EXIT_OK
