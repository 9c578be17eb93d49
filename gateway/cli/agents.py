"""`warden agents`: register the agents that may call Warden, and their tokens.

    agents add NAME --autonomy A2 --tools 'stripe.*,crm.log_note' [--owner EMAIL]   prints the token once
    agents list [--json]
    agents set NAME [--autonomy A3] [--tools GLOBS] [--owner EMAIL]   (--owner '' clears it)
    agents rotate-token NAME                                   prints the new token once
    agents revoke NAME

Each runs as one registry change (`gateway.cli.registry`): `--db`, `--config`, token alone on
stdout. Bad input (unknown agent, duplicate, bad autonomy, glob or email) is an `IdentityError`:
one line on stderr and exit code 2.
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

AUTONOMY_METAVAR = "{A0,A1,A2,A3,A4}"


def register(subparsers: Any) -> None:
    """Add `warden agents` to the `warden` command."""
    agents = command_group(subparsers, "agents", "register agents and their tokens")
    add = add_command(agents, "add", "register an agent; prints its token once", _add)
    add.add_argument("name", metavar="NAME")
    add.add_argument("--autonomy", required=True, metavar=AUTONOMY_METAVAR, help="how far it may act alone")
    add.add_argument("--tools", required=True, metavar="GLOB[,GLOB]", help="tools it may call, e.g. 'stripe.*'")
    add.add_argument("--owner", metavar="EMAIL", help="the person who answers for it")
    add_command(agents, "list", "list agents", _list).add_argument("--json", action="store_true")
    change = add_command(agents, "set", "change an agent's autonomy, tools or owner", _set)
    change.add_argument("name", metavar="NAME")
    change.add_argument("--autonomy", metavar=AUTONOMY_METAVAR)
    change.add_argument("--tools", metavar="GLOB[,GLOB]")
    change.add_argument("--owner", metavar="EMAIL", help="'' clears it")
    add_command(agents, "rotate-token", "issue a new token; the old one stops working", _rotate).add_argument(
        "name", metavar="NAME")
    add_command(agents, "revoke", "revoke an agent: its token stops working", _revoke).add_argument(
        "name", metavar="NAME")


def _globs(text: str) -> list[str]:
    return [glob.strip() for glob in text.split(",") if glob.strip()]


def _add(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import add_agent

    agent, token = add_agent(conn, ledger, args.name, args.autonomy, _globs(args.tools), args.owner, now, actor)
    tools = ", ".join(agent.tools) or "no tools"
    return Output(token, f"registered agent {agent.name} ({agent.autonomy.name}; {tools}). Its token, shown "
                         "only this once (Warden keeps only its hash):")


def _list(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import list_agents

    records = list_agents(conn)
    rows: list[dict[str, Any]] = [
        {"name": r.agent.name, "autonomy": r.agent.autonomy.name, "owner": r.agent.owner, "tools": list(r.agent.tools),
         "created_at": iso(r.created_at), "revoked_at": iso(r.revoked_at)}
        for r in records]  # fmt: skip
    if args.json:
        return Output(json.dumps(rows, indent=2))
    cells = [[row["name"], row["autonomy"], row["owner"] or "-", ",".join(row["tools"]) or "-",
              "revoked" if row["revoked_at"] else "active", row["created_at"]] for row in rows]  # fmt: skip
    return Output(table(["NAME", "AUTONOMY", "OWNER", "TOOLS", "STATUS", "CREATED"], cells))


def _set(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import IdentityError, get_agent, set_autonomy, set_owner, set_tools

    if args.autonomy is None and args.tools is None and args.owner is None:
        raise IdentityError("invalid_agent", "nothing to change: give --autonomy, --tools or --owner")
    before = get_agent(conn, args.name).agent
    agent = before
    if args.autonomy is not None:
        agent = set_autonomy(conn, ledger, args.name, args.autonomy, now, actor)
    if args.tools is not None:
        agent = set_tools(conn, ledger, args.name, _globs(args.tools), now, actor)
    if args.owner is not None:
        agent = set_owner(conn, ledger, args.name, args.owner or None, now, actor)
    changed = [field for field in ("autonomy", "tools", "owner") if getattr(agent, field) != getattr(before, field)]
    return Output(stderr=f"agent {agent.name}: " + (f"changed {', '.join(changed)}" if changed else "no change"))


def _rotate(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import rotate_agent_token

    token = rotate_agent_token(conn, ledger, args.name, now, actor)
    return Output(token, f"new token for agent {args.name}; the old one no longer works. Shown only this once:")


def _revoke(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.store.identities import revoke_agent

    revoke_agent(conn, ledger, args.name, now, actor)
    return Output(stderr=f"revoked agent {args.name}; its token no longer works")
