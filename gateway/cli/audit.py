"""`warden audit checkpoint | export | verify`: the operator's and the auditor's view of the log.

    audit checkpoint [--db URL] --key KEYFILE                sign the current head now
    audit export [--db URL] --out DIR [--sign-with KEYFILE]  write the auditor's export
    audit verify DIR --key KEY [--trusted-checkpoint FILE]   verify an export offline
    audit verify --db [URL] --key KEY [...]                  verify the live database

The database is `--db URL`, else the database_url setting; `audit verify --db` without a URL
verifies that configured database. KEY is a verifier key string or a file holding one; KEYFILE a
signing key file. Exit codes: 0 ok, 1 verification failed, 2 bad input (unreadable file or key,
unreachable database, ...), as one line on stderr.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.db import open_database
from gateway.cli.exits import EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.keys import read_signing_key
from gateway.cli.options import add_config_option, add_db_option, command_group, database_url


def register(subparsers: Any) -> None:
    """Add `warden audit` to the `warden` command."""
    commands = command_group(subparsers, "audit", "checkpoint, export and verify the audit log")
    checkpoint = commands.add_parser("checkpoint", help="sign a checkpoint of the current head")
    add_db_option(checkpoint)
    add_config_option(checkpoint)
    checkpoint.add_argument("--key", type=Path, required=True, help="the signing key file")
    checkpoint.set_defaults(handler=checkpoint_command)

    export = commands.add_parser("export", help="write entries, checkpoints and the key to a folder")
    add_db_option(export)
    add_config_option(export)
    export.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    export.add_argument("--sign-with", type=Path, help="sign a checkpoint of the head first (signing key file)")
    export.set_defaults(handler=export_command)

    verify = commands.add_parser("verify", help="verify an export (DIR) or the live database (--db)")
    verify.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="an export folder")
    verify.add_argument("--db", nargs="?", const="", metavar="URL",
                        help="verify this database instead of an export (no URL: the database_url setting)")
    add_config_option(verify)
    verify.add_argument("--key", required=True, help="the first verifier key, or a file holding it")
    verify.add_argument("--trusted-checkpoint", type=Path, metavar="FILE", help="a checkpoint kept from before")
    verify.set_defaults(handler=verify_command)


def checkpoint_command(args: argparse.Namespace) -> int:
    from ledger.checkpointer import Checkpointer

    signer = read_signing_key(args.key, args)
    with open_database(args, create=False) as engine:
        with engine.begin() as conn:
            signed = Checkpointer(signer).sign_now(conn)
    print("nothing new to sign" if signed is None else f"signed checkpoint of size {signed.size}")
    return EXIT_OK


def export_command(args: argparse.Namespace) -> int:
    from ledger.checkpointer import Checkpointer
    from ledger.export import export_log

    with open_database(args, create=False) as engine:
        if args.sign_with is not None:
            signer = read_signing_key(args.sign_with, args, option="--sign-with")
            with engine.begin() as conn:
                Checkpointer(signer).sign_now(conn)
        summary = export_log(engine, args.out)
    print(f"exported {summary.entries} entries and {summary.checkpoints} checkpoints to {summary.directory}")
    return EXIT_OK


def verify_command(args: argparse.Namespace) -> int:
    from gateway.cli.verification import run_verification

    if (args.dir is None) == (args.db is None):
        raise CommandError("give either an export folder DIR or --db URL (one of them)")
    url = database_url(args) if args.db is not None else None
    return run_verification(args.dir, url, args.key, args.trusted_checkpoint)
