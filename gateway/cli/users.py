"""`warden users`: give people accounts and roles.

    users add EMAIL --role founder|approver|auditor|viewer     prints the token once
    users list [--json]
    users set-role EMAIL --role ROLE
    users rotate-token EMAIL                                   prints the new token once
    users revoke EMAIL
    users set-password EMAIL [--password-stdin]                asked for twice, or one line of stdin
    users invite EMAIL [--ttl SECONDS]                         prints the console link once

Each runs as one registry change (`gateway.cli.registry`): `--db`, `--config`, token alone on
stdout. Bad input (unknown or duplicate user, bad email or role, the last active founder revoked
or demoted, a password under 12 characters) is an `IdentityError`: one line on stderr and exit
code 2. A password is never a command-line argument (it would show in `ps` and the shell's
history), and it is read before the database is opened.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING, Any

from gateway.cli.guard import CommandError, Handler
from gateway.cli.options import command_group, settings
from gateway.cli.registry import Output, add_command, iso, table

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from ledger.store import Ledger

ROLE_METAVAR = "{founder,approver,auditor,viewer}"


def register(subparsers: Any) -> None:
    """Add `warden users` to the `warden` command."""
    users = command_group(subparsers, "users", "give people accounts and roles")
    add = add_command(users, "add", "add a person; prints their token once", _add)
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, metavar=ROLE_METAVAR)
    add_command(users, "list", "list users", _list).add_argument("--json", action="store_true")
    role = add_command(users, "set-role", "change a person's role", _set_role)
    role.add_argument("email", metavar="EMAIL")
    role.add_argument("--role", required=True, metavar=ROLE_METAVAR)
    add_command(users, "rotate-token", "issue a new token; the old one stops working", _rotate).add_argument(
        "email", metavar="EMAIL")
    add_command(users, "revoke", "revoke a person's access", _revoke).add_argument("email", metavar="EMAIL")
    password = add_command(users, "set-password", "set a person's console password; ends their console sessions",
                           _set_password)  # fmt: skip
    password.add_argument("email", metavar="EMAIL")
    password.add_argument("--password-stdin", action="store_true",
                          help="read the password from one line of stdin instead of asking for it")
    password.set_defaults(handler=_reading_password(password.get_default("handler")))
    invite = add_command(users, "invite", "print a one-time link for a person to set their console password", _invite)
    invite.add_argument("email", metavar="EMAIL")
    invite.add_argument("--ttl", type=float, metavar="SECONDS",
                        help="how long the link stays valid (default: the invite_ttl_seconds setting)")


def _add(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import add_user

    user, token = add_user(conn, ledger, args.email, args.role, now, actor)
    return Output(token, f"added {user.email} as {user.role}. Their token, shown only this once "
                         "(Warden keeps only its hash):")


def _list(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import list_users

    rows: list[dict[str, Any]] = [
        {"email": r.user.email, "role": r.user.role, "created_at": iso(r.created_at), "revoked_at": iso(r.revoked_at)}
        for r in list_users(conn)]  # fmt: skip
    if args.json:
        return Output(json.dumps(rows, indent=2))
    cells = [[row["email"], row["role"], "revoked" if row["revoked_at"] else "active", row["created_at"]] for row in rows]
    return Output(table(["EMAIL", "ROLE", "STATUS", "CREATED"], cells))


def _set_role(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import set_role

    user = set_role(conn, ledger, args.email, args.role, now, actor)
    return Output(stderr=f"{user.email} is now {user.role}")


def _rotate(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import normalise_email, rotate_user_token

    token = rotate_user_token(conn, ledger, args.email, now, actor)
    return Output(token, f"new token for {normalise_email(args.email)}; the old one no longer works. Shown only this once:")


def _revoke(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import revoke_user

    user = revoke_user(conn, ledger, args.email, now, actor)
    return Output(stderr=f"revoked {user.email}; their token no longer works")


def _set_password(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import normalise_email, set_password

    set_password(conn, ledger, args.email, args.password, now, actor)
    return Output(stderr=f"password set for {normalise_email(args.email)}; their console sessions were ended")


def _reading_password(change: Handler) -> Handler:
    """Ask for the password before the command opens the database."""

    def run(args: argparse.Namespace) -> int:
        args.password = _read_password(args.password_stdin)
        return change(args)

    return run


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise CommandError("no password on stdin (--password-stdin reads one line)")
        return line.removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("New console password: ")
    if getpass.getpass("Again: ") != first:
        raise CommandError("the two passwords differ; nothing changed")
    return first


def _invite(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import create_invite, normalise_email

    found = settings(args)
    ttl = found.invite_ttl_seconds if args.ttl is None else args.ttl
    token = create_invite(conn, ledger, args.email, now, actor, ttl)
    return Output(f"{console_address(found.public_url, found.host, found.port)}/invite/{token}",
                  f"invite for {normalise_email(args.email)}, valid until {iso(now + ttl)} and usable once; "
                  "older invites of theirs no longer work. The link, shown only this once:")  # fmt: skip


def console_address(public_url: str, host: str, port: int) -> str:
    """Where people open the console: `public_url`, else the listening address. A loopback
    address is written `localhost`, the name passkeys accept (WebAuthn refuses IP addresses)."""
    if public_url:
        return f"{public_url.rstrip('/')}/console"
    if host in ("127.0.0.1", "localhost", "0.0.0.0", "::"):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/console"
