"""`warden db | keys | audit`: the operator's and the auditor's commands for the audit ledger.

    db upgrade [--db URL]                                   create / upgrade the schema
    keys generate [--out PATH] [--name ORIGIN]              new signing key (0600), prints the verifier key
    keys rotate [--db URL] --key OLD --new-key-out PATH     hand the log over to a new key
    audit checkpoint [--db URL] --key KEYFILE               sign the current head now
    audit export [--db URL] --out DIR [--sign-with KEYFILE] write the auditor's export
    audit verify DIR --key KEY [--trusted-checkpoint FILE]  verify an export offline
    audit verify --db URL --key KEY [...]                   verify the live database

URL defaults to $WARDEN_DATABASE_URL, else sqlite:///warden-data/warden.db. KEY is a verifier
key string or a file holding one. Exit codes (gateway.cli): 0 ok, 1 verification failed,
2 bad input (unreadable file or key, unreachable database, ...): one line on stderr, no traceback.
Secret keys are written to files and never printed.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ledger.verification import run_verification
from ledger.checkpointer import Checkpointer, rotate_key
from ledger.database import DatabaseURLError, database_url, describe, make_engine
from ledger.export import ExportError, export_log
from ledger.keys import (
    DEFAULT_KEY_PATH,
    DEFAULT_ORIGIN,
    SigningKeyError,
    read_signer_key,
    write_signer_key,
)
from ledger.note import NoteError, generate_key
from ledger.verify import VerifyError
from ledger.schema import SchemaError, upgrade
from ledger.store import LedgerError

Handler = Callable[[argparse.Namespace], int]


def _exit_codes() -> tuple[int, int]:
    from gateway.cli import EXIT_OK, EXIT_USAGE

    return EXIT_OK, EXIT_USAGE


def _guarded(handler: Handler) -> Handler:
    """Turn expected failures into one line on stderr and exit code 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        _ok, usage = _exit_codes()
        try:
            return handler(args)
        except (SigningKeyError, ExportError, LedgerError, SchemaError, DatabaseURLError, NoteError, VerifyError) as exc:
            return _fail(str(exc), usage)
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            return _fail(f"database error ({describe_url(args)}): {reason}", usage)
        except SQLAlchemyError as exc:
            return _fail(f"database error ({describe_url(args)}): {exc}", usage)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return _fail(f"{where}{exc.strerror or exc}", usage)

    return run


def _fail(message: str, code: int) -> int:
    print(f"warden: error: {message}", file=sys.stderr)
    return code


def describe_url(args: argparse.Namespace) -> str:
    try:
        return make_url(database_url(getattr(args, "db", None))).render_as_string(hide_password=True)
    except ArgumentError:
        return "invalid URL"


def register(subparsers: Any) -> None:
    """Add `warden db`, `warden keys` and `warden audit` to the `warden` command."""
    db = subparsers.add_parser("db", help="the database schema")
    db_commands = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    db_commands.required = True
    up = db_commands.add_parser("upgrade", help="create or upgrade Warden's tables (idempotent)")
    _add_db_option(up)
    up.set_defaults(handler=_guarded(db_upgrade_command))

    keys = subparsers.add_parser("keys", help="the audit log's signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    key_commands.required = True
    generate = key_commands.add_parser("generate", help="write a new signing key; print its verifier key")
    generate.add_argument("--out", type=Path, default=Path(DEFAULT_KEY_PATH), help=f"default {DEFAULT_KEY_PATH}")
    generate.add_argument("--name", default=DEFAULT_ORIGIN, help=f"key name = log origin (default {DEFAULT_ORIGIN})")
    generate.set_defaults(handler=_guarded(keys_generate_command))
    rotate = key_commands.add_parser("rotate", help="record a new signing key in the log, signed off by the old one")
    _add_db_option(rotate)
    rotate.add_argument("--key", type=Path, required=True, help="the current signing key file")
    rotate.add_argument("--new-key-out", type=Path, required=True, help="where to write the new signing key")
    rotate.add_argument("--actor", default="operator", help="who rotates (recorded in the entry)")
    rotate.set_defaults(handler=_guarded(keys_rotate_command))

    audit = subparsers.add_parser("audit", help="checkpoint, export and verify the audit log")
    audit_commands = audit.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    audit_commands.required = True
    checkpoint = audit_commands.add_parser("checkpoint", help="sign a checkpoint of the current head")
    _add_db_option(checkpoint)
    checkpoint.add_argument("--key", type=Path, required=True, help="the signing key file")
    checkpoint.set_defaults(handler=_guarded(audit_checkpoint_command))
    export = audit_commands.add_parser("export", help="write entries, checkpoints and the key to a folder")
    _add_db_option(export)
    export.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    export.add_argument("--sign-with", type=Path, help="sign a checkpoint of the head first (signing key file)")
    export.set_defaults(handler=_guarded(audit_export_command))
    verify = audit_commands.add_parser("verify", help="verify an export (DIR) or the live database (--db)")
    verify.add_argument("dir", nargs="?", type=Path, metavar="DIR", help="an export folder")
    verify.add_argument("--db", help="verify this database instead of an export")
    verify.add_argument("--key", required=True, help="the first verifier key, or a file holding it")
    verify.add_argument("--trusted-checkpoint", type=Path, metavar="FILE", help="a checkpoint kept from before")
    verify.set_defaults(handler=_guarded(audit_verify_command))


def _add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="database URL (default: $WARDEN_DATABASE_URL or sqlite:///warden-data/warden.db)")


def db_upgrade_command(args: argparse.Namespace) -> int:
    engine = make_engine(args.db)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = describe(engine)
    print(f"{where}: ledger schema {'already at' if before == after else f'upgraded from {before} to'} version {after}")
    return _exit_codes()[0]


def keys_generate_command(args: argparse.Namespace) -> int:
    signer = generate_key(args.name)
    write_signer_key(args.out, signer)
    print(f"wrote signing key {args.out} (mode 0600); keep it secret. Verifier key:", file=sys.stderr)
    print(signer.verifier_key)
    return _exit_codes()[0]


def keys_rotate_command(args: argparse.Namespace) -> int:
    old = read_signer_key(args.key)
    new = generate_key(old.name)
    engine = make_engine(args.db, create=False)
    write_signer_key(args.new_key_out, new)  # first: never commit a rotation to a key we lost
    try:
        with engine.begin() as conn:
            rotation = rotate_key(conn, old, new, actor=args.actor)
    except BaseException:
        args.new_key_out.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    print(
        f"rotated at seq {rotation.entry.seq}; checkpoint {rotation.checkpoint.size} signed with the old key; "
        f"new signing key in {args.new_key_out}. New verifier key:",
        file=sys.stderr,
    )
    print(new.verifier_key)
    return _exit_codes()[0]


def audit_checkpoint_command(args: argparse.Namespace) -> int:
    signer = read_signer_key(args.key)
    engine = make_engine(args.db, create=False)
    try:
        with engine.begin() as conn:
            signed = Checkpointer(signer).sign_now(conn)
    finally:
        engine.dispose()
    print("nothing new to sign" if signed is None else f"signed checkpoint of size {signed.size}")
    return _exit_codes()[0]


def audit_export_command(args: argparse.Namespace) -> int:
    engine = make_engine(args.db, create=False)
    try:
        if args.sign_with is not None:
            signer = read_signer_key(args.sign_with)
            with engine.begin() as conn:
                Checkpointer(signer).sign_now(conn)
        summary = export_log(engine, args.out)
    finally:
        engine.dispose()
    print(f"exported {summary.entries} entries and {summary.checkpoints} checkpoints to {summary.directory}")
    return _exit_codes()[0]


def audit_verify_command(args: argparse.Namespace) -> int:
    if (args.dir is None) == (args.db is None):
        return _fail("give either an export folder DIR or --db URL (one of them)", _exit_codes()[1])
    return run_verification(args.dir, args.db, args.key, args.trusted_checkpoint)
