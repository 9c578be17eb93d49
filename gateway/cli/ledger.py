"""`warden db | keys | audit`: the operator's and the auditor's commands for the audit ledger.

    db upgrade [--db URL]                                   create / upgrade the schema
    keys generate [--out PATH] [--name ORIGIN]              new signing key (0600), prints the verifier key
    keys rotate [--db URL] --key OLD --new-key-out PATH     hand the log over to a new key
    audit checkpoint [--db URL] --key KEYFILE               sign the current head now
    audit export [--db URL] --out DIR [--sign-with KEYFILE] write the auditor's export
    audit verify DIR --key KEY [--trusted-checkpoint FILE]  verify an export offline
    audit verify --db URL --key KEY [...]                   verify the live database

URL defaults to $WARDEN_DATABASE_URL, else sqlite:///warden-data/warden.db. KEY is a verifier
key string or a file holding one. Exit codes (gateway.cli.exits): 0 ok, 1 verification failed,
2 bad input (unreadable file or key, unreachable database, ...): one line on stderr, no traceback.
Secret keys are written to files and never printed. This module only declares the commands;
their handlers live in `gateway.cli.ledger_commands`, imported when one of them runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_KEY_PATH = "warden-data/ledger.key"
DEFAULT_ORIGIN = "warden.local/audit"

Handler = Callable[[argparse.Namespace], int]


def _handler(name: str) -> Handler:
    """The command `name` from `gateway.cli.ledger_commands`, imported only when it runs: `warden --help`
    and the other areas' commands do not pay for SQLAlchemy and the crypto stack."""

    def run(args: argparse.Namespace) -> int:
        from gateway.cli import ledger_commands as commands
        return commands.guarded(getattr(commands, name))(args)

    run.__name__ = name
    return run


def register(subparsers: Any) -> None:
    """Add `warden db`, `warden keys` and `warden audit` to the `warden` command."""
    db = subparsers.add_parser("db", help="the database schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    db_commands.required = True
    up = db_commands.add_parser("upgrade", help="create or upgrade Warden's tables (idempotent)")
    _add_db_option(up)
    up.set_defaults(handler=_handler("db_upgrade_command"))

    keys = subparsers.add_parser("keys", help="the audit log's signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    key_commands.required = True
    generate = key_commands.add_parser("generate", help="write a new signing key; print its verifier key")
    generate.add_argument("--out", type=Path, default=Path(DEFAULT_KEY_PATH), help=f"default {DEFAULT_KEY_PATH}")
    generate.add_argument("--name", default=DEFAULT_ORIGIN, help=f"key name = log origin (default {DEFAULT_ORIGIN})")
    generate.set_defaults(handler=_handler("keys_generate_command"))
    rotate = key_commands.add_parser("rotate", help="record a new signing key in the log, signed off by the old one")
    _add_db_option(rotate)
    rotate.add_argument("--key", type=Path, required=True, help="the current signing key file")
    rotate.add_argument("--new-key-out", type=Path, required=True, help="where to write the new signing key")
    rotate.add_argument("--actor", default="operator", help="who rotates (recorded in the entry)")
    rotate.set_defaults(handler=_handler("keys_rotate_command"))

    audit = subparsers.add_parser("audit", help="checkpoint, export and verify the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    audit_commands.required = True
    checkpoint = audit_commands.add_parser("checkpoint", help="sign a checkpoint of the current head")
    _add_db_option(checkpoint)
    checkpoint.add_argument("--key", type=Path, required=True, help="the signing key file")
    checkpoint.set_defaults(handler=_handler("audit_checkpoint_command"))
    export = audit_commands.add_parser("export", help="write entries, checkpoints and the key to a folder")
    _add_db_option(export)
    export.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    export.add_argument("--sign-with", type=Path, help="sign a checkpoint of the head first (signing key file)")
    export.set_defaults(handler=_handler("audit_export_command"))
    verify = audit_commands.add_parser("verify", help="verify an export (DIR) or the live database (--db)")
    verify.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="an export folder")
    verify.add_argument("--db", help="verify this database instead of an export")
    verify.add_argument("--key", required=True, help="the first verifier key, or a file holding it")
    verify.add_argument("--trusted-checkpoint", type=Path, metavar="FILE", help="a checkpoint kept from before")
    verify.set_defaults(handler=_handler("audit_verify_command"))


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database URL (default: $WARDEN_DATABASE_URL or sqlite:///warden-data/warden.db)")
