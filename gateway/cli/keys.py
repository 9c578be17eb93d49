"""`warden keys generate | rotate`: the audit log's signing keys, and how commands read one.

    keys generate [--out PATH] [--name ORIGIN]             new signing key (0600); prints the verifier key
    keys rotate [--db URL] --key OLD --new-key-out PATH     hand the log over to a new key

`--out` defaults to the signing_key_file setting and `--name` to log_origin: the key `warden
serve` signs with. Secret keys are written to files (never overwritten) and never printed; what
goes to stdout is the verifier (public) key, for auditors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.db import open_database
from gateway.cli.exits import EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option, add_db_option, command_group, settings

if TYPE_CHECKING:  # the crypto stack loads only when a key is read or made
    from ledger.note import Signer

#: The defaults of the signing_key_file and log_origin settings, named here for `--help`.
DEFAULT_KEY_PATH = "warden-data/ledger.key"
DEFAULT_ORIGIN = "warden.local/audit"


def register(subparsers: Any) -> None:
    """Add `warden keys` to the `warden` command."""
    commands = command_group(subparsers, "keys", "the audit log's signing keys")
    generate = commands.add_parser("generate", help="write a new signing key; print its verifier key")
    generate.add_argument("--out", type=Path, metavar="PATH",
                          help=f"where to write it (default: the signing_key_file setting, {DEFAULT_KEY_PATH})")
    generate.add_argument("--name", metavar="ORIGIN",
                          help=f"key name = log origin (default: the log_origin setting, {DEFAULT_ORIGIN})")
    add_config_option(generate)
    generate.set_defaults(handler=generate_command)

    rotate = commands.add_parser("rotate", help="record a new signing key in the log, signed off by the old one")
    add_db_option(rotate)
    add_config_option(rotate)
    rotate.add_argument("--key", type=Path, required=True, help="the current signing key file")
    rotate.add_argument("--new-key-out", type=Path, required=True, help="where to write the new signing key")
    rotate.add_argument("--actor", default="operator", help="who rotates (recorded in the entry)")
    rotate.set_defaults(handler=rotate_command)


def read_signing_key(path: Path, args: argparse.Namespace, option: str = "--key") -> Signer:
    """The signing key in `path`. A verifier (public) key given by mistake is named as such,
    with where the signing key is, rather than refused for its file mode or its format."""
    from ledger.keys import SigningKeyError, read_signer_key

    try:
        return read_signer_key(path)
    except SigningKeyError:
        if not _holds_verifier_key(path):
            raise
    raise CommandError(f"{path} is a verifier (public) key, not a signing key; {option} needs the "
                       f"signing key file ({_signing_key_setting(args)})")


def _holds_verifier_key(path: Path) -> bool:
    from ledger.keys import SigningKeyError, read_verifier_key

    if not path.is_file():
        return False
    try:
        read_verifier_key(str(path))
    except SigningKeyError:
        return False
    return True


def _signing_key_setting(args: argparse.Namespace) -> str:
    from gateway.config import ConfigError

    try:
        return f"the signing_key_file setting: {settings(args).signing_key_file}"
    except ConfigError:
        return f"the signing_key_file setting, {DEFAULT_KEY_PATH} unless configured"


def generate_command(args: argparse.Namespace) -> int:
    from ledger.keys import write_signer_key
    from ledger.note import generate_key

    out: Path = args.out or settings(args).signing_key_file
    signer = generate_key(args.name or settings(args).log_origin)
    write_signer_key(out, signer)
    print(f"wrote signing key {out} (mode 0600); keep it secret. Verifier key:", file=sys.stderr)
    print(signer.verifier_key)
    return EXIT_OK


def rotate_command(args: argparse.Namespace) -> int:
    from ledger.checkpointer import rotate_key
    from ledger.keys import write_signer_key
    from ledger.note import generate_key

    old = read_signing_key(args.key, args)
    new = generate_key(old.name)
    with open_database(args, create=False) as engine:
        write_signer_key(args.new_key_out, new)  # first: never commit a rotation to a key we lost
        try:
            with engine.begin() as conn:
                rotation = rotate_key(conn, old, new, actor=args.actor)
        except BaseException:
            args.new_key_out.unlink(missing_ok=True)
            raise
    print(
        f"rotated at seq {rotation.entry.seq}; checkpoint {rotation.checkpoint.size} signed with the old key; "
        f"new signing key in {args.new_key_out}. New verifier key:",
        file=sys.stderr,
    )
    print(new.verifier_key)
    return EXIT_OK
