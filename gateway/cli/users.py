"""`warden users`: give people accounts and roles.

    users add EMAIL --role founder|approver|auditor|viewer     prints the token once
    users list [--json]
    users set-role EMAIL --role ROLE
    users rotate-token EMAIL                                   prints the new token once
    users revoke EMAIL

Each runs as one registry change (`gateway.cli.registry`): `--db`, `--config`, token alone on
stdout. Bad input (unknown or duplicate user, bad email or role, the last active founder revoked
or demoted) is an `IdentityError`: one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from gateway.cli.options import command_group
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
