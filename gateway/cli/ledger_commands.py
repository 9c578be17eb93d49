"""The handlers behind `warden db | keys | audit` (registered by `gateway.cli.ledger`).

Each returns the exit code; `guarded` turns the failures we expect (bad key, unreachable
database, unwritable folder, ...) into one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import functools
import sys

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from ledger.checkpointer import Checkpointer, rotate_key
from gateway.cli.exits import EXIT_OK, EXIT_USAGE
from gateway.cli.ledger import Handler
from ledger.database import DatabaseURLError, database_url, describe, make_engine
from ledger.export import ExportError, export_log
from ledger.keys import SigningKeyError, read_signer_key, write_signer_key
from ledger.note import NoteError, generate_key
from ledger.schema import SchemaError
from ledger.store import LedgerError
from gateway.cli.verification import run_verification
from ledger.verify import VerifyError


def guarded(handler: Handler) -> Handler:
    """Turn expected failures into one line on stderr and exit code 2."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (SigningKeyError, ExportError, LedgerError, SchemaError, DatabaseURLError, NoteError, VerifyError) as exc:
            return _fail(str(exc), EXIT_USAGE)
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            return _fail(f"database error ({describe_url(args)}): {reason}", EXIT_USAGE)
        except SQLAlchemyError as exc:
            return _fail(f"database error ({describe_url(args)}): {exc}", EXIT_USAGE)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            return _fail(f"{where}{exc.strerror or exc}", EXIT_USAGE)

    return run


def _fail(message: str, code: int) -> int:
    print(f"warden: error: {message}", file=sys.stderr)
    return code


def describe_url(args: argparse.Namespace) -> str:
    try:
        return make_url(database_url(getattr(args, "db", None))).render_as_string(hide_password=True)
    except ArgumentError:
        return "invalid URL"


def db_upgrade_command(args: argparse.Namespace) -> int:
    from gateway.store.schema import upgrade as upgrade_all  # the ledger's tables and the gateway's

    engine = make_engine(args.db)
    try:
        versions = upgrade_all(engine)
    finally:
        engine.dispose()
    where = describe(engine)
    for component, (before, after) in versions.items():
        change = "already at" if before == after else f"upgraded from {before} to"
        print(f"{where}: {component} schema {change} version {after}")
    return EXIT_OK


def keys_generate_command(args: argparse.Namespace) -> int:
    signer = generate_key(args.name)
    write_signer_key(args.out, signer)
    print(f"wrote signing key {args.out} (mode 0600); keep it secret. Verifier key:", file=sys.stderr)
    print(signer.verifier_key)
    return EXIT_OK


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
    return EXIT_OK


def audit_checkpoint_command(args: argparse.Namespace) -> int:
    signer = read_signer_key(args.key)
    engine = make_engine(args.db, create=False)
    try:
        with engine.begin() as conn:
            signed = Checkpointer(signer).sign_now(conn)
    finally:
        engine.dispose()
    print("nothing new to sign" if signed is None else f"signed checkpoint of size {signed.size}")
    return EXIT_OK


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
    return EXIT_OK


def audit_verify_command(args: argparse.Namespace) -> int:
    if (args.dir is None) == (args.db is None):
        return _fail("give either an export folder DIR or --db URL (one of them)", EXIT_USAGE)
    return run_verification(args.dir, args.db, args.key, args.trusted_checkpoint)
