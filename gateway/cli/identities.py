"""`warden agents | users | config`: the registry of who may call Warden, and its settings.

    agents add NAME --autonomy A2 --tools 'stripe.*,crm.log_note' [--owner EMAIL]   prints the token once
    agents list [--json]
    agents set NAME [--autonomy A3] [--tools GLOBS] [--owner EMAIL]   (--owner '' clears it)
    agents rotate-token NAME                                   prints the new token once
    agents revoke NAME
    users add EMAIL --role founder|approver|auditor|viewer     prints the token once
    users list [--json]
    users set-role EMAIL --role ROLE
    users rotate-token EMAIL                                   prints the new token once
    users revoke EMAIL
    config show [--json]                                       every setting, where it came from
    config list                                                every setting: type, default, help

Registry commands take `--db URL` (default: the `database_url` setting) and `--config FILE`, and
create the schema if it is missing. A token is the only thing on stdout, so
`TOKEN=$(warden agents add ...)` works; what it is goes to stderr. Changes are recorded in the
audit log as made by `cli:<os user>`. Bad input (unknown agent, duplicate, bad autonomy, glob,
email or config, unreachable database) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli.exits import EXIT_OK, EXIT_USAGE

if TYPE_CHECKING:  # SQLAlchemy and the ledger load only when a registry command runs
    from sqlalchemy import Connection

    from gateway.config import Loaded
    from ledger.store import Ledger

Handler = Callable[[argparse.Namespace], int]
ROLE_METAVAR = "{founder,approver,auditor,viewer}"
AUTONOMY_METAVAR = "{A0,A1,A2,A3,A4}"


@dataclass(frozen=True)
class Output:
    """What a registry command prints once its transaction has committed."""

    stdout: str | None = None
    stderr: str | None = None


Change = Callable[[argparse.Namespace, "Connection", "Ledger", str, float], Output]


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `warden agents`, `warden users` and `warden config` to the `warden` command."""
    agents = _group(subparsers, "agents", "register agents and their tokens")
    add = _command(agents, "add", "register an agent; prints its token once", _agents_add)
    add.add_argument("name", metavar="NAME")
    add.add_argument("--autonomy", required=True, metavar=AUTONOMY_METAVAR, help="how far it may act alone")
    add.add_argument("--tools", required=True, metavar="GLOB[,GLOB]", help="tools it may call, e.g. 'stripe.*'")
    add.add_argument("--owner", metavar="EMAIL", help="the person who answers for it")
    _command(agents, "list", "list agents", _agents_list).add_argument("--json", action="store_true")
    change = _command(agents, "set", "change an agent's autonomy, tools or owner", _agents_set)
    change.add_argument("name", metavar="NAME")
    change.add_argument("--autonomy", metavar=AUTONOMY_METAVAR)
    change.add_argument("--tools", metavar="GLOB[,GLOB]")
    change.add_argument("--owner", metavar="EMAIL", help="'' clears it")
    _command(agents, "rotate-token", "issue a new token; the old one stops working", _agents_rotate).add_argument("name", metavar="NAME")
    _command(agents, "revoke", "revoke an agent: its token stops working", _agents_revoke).add_argument("name", metavar="NAME")

    users = _group(subparsers, "users", "give people accounts and roles")
    add = _command(users, "add", "add a person; prints their token once", _users_add)
    add.add_argument("email", metavar="EMAIL")
    add.add_argument("--role", required=True, metavar=ROLE_METAVAR)
    _command(users, "list", "list users", _users_list).add_argument("--json", action="store_true")
    role = _command(users, "set-role", "change a person's role", _users_set_role)
    role.add_argument("email", metavar="EMAIL")
    role.add_argument("--role", required=True, metavar=ROLE_METAVAR)
    _command(users, "rotate-token", "issue a new token; the old one stops working", _users_rotate).add_argument("email", metavar="EMAIL")
    _command(users, "revoke", "revoke a person's access", _users_revoke).add_argument("email", metavar="EMAIL")

    config = _group(subparsers, "config", "Warden's settings (warden.toml, WARDEN_* variables)")
    show = config.add_parser("show", help="every setting's value and where it came from (secrets masked)")
    show.add_argument("--config", type=Path, metavar="FILE", help="config file (default: $WARDEN_CONFIG or ./warden.toml)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_guarded(config_show_command))
    listing = config.add_parser("list", help="every setting: type, default, variable, help")
    listing.set_defaults(handler=_guarded(config_list_command))


def _group(subparsers: Any, name: str, help: str) -> Any:
    parser = subparsers.add_parser(name, help=help, description=help)
    commands = parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    commands.required = True
    return commands


def _command(group: Any, name: str, help: str, change: Change) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = group.add_parser(name, help=help, description=help)
    parser.add_argument("--db", metavar="URL", help="database URL (default: the database_url setting)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="config file (default: $WARDEN_CONFIG or ./warden.toml)")
    parser.set_defaults(handler=_guarded(_registry_command(change), database=True))
    return parser


# -- running a command --------------------------------------------------------------------------


def _guarded(command: Callable[[argparse.Namespace], Output], *, database: bool = False) -> Handler:
    """Run a command, then print its output. Expected failures → one line on stderr, exit 2
    (database and file errors through the ledger commands' guard)."""

    def handler(args: argparse.Namespace) -> int:
        from gateway.config import ConfigError

        produced: list[Output] = []

        def run(args: argparse.Namespace) -> int:
            produced.append(command(args))
            return EXIT_OK

        runner: Handler = run
        expected: tuple[type[Exception], ...] = (ConfigError,)
        if database:  # SQLAlchemy, the ledger and the registry: loaded only for these commands
            from gateway.store.identities import IdentityError
            from gateway.cli.ledger_commands import guarded

            runner, expected = guarded(run), (ConfigError, IdentityError)
        try:
            code = runner(args)
        except expected as exc:
            print(f"warden: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for output in produced:  # after the commit: a token is shown only once it is valid
            if output.stderr:
                print(output.stderr, file=sys.stderr)
            if output.stdout is not None:
                print(output.stdout)
        return code

    return handler


def _settings(args: argparse.Namespace) -> "Loaded":
    from gateway.config import resolve

    loaded = resolve(getattr(args, "config", None))
    for message in loaded.warnings:
        print(f"warden: warning: {message}", file=sys.stderr)
    return loaded


def _registry_command(change: Change) -> Callable[[argparse.Namespace], Output]:
    def run(args: argparse.Namespace) -> Output:
        from gateway.store.schema import upgrade
        from ledger.database import make_engine
        from ledger.store import Ledger

        args.db = args.db or _settings(args).settings.database_url
        engine = make_engine(args.db)
        try:
            upgrade(engine)
            with engine.begin() as conn:
                return change(args, conn, Ledger(), _actor(), time.time())
        finally:
            engine.dispose()

    return run


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"cli:uid-{os.getuid()}"


# -- agents -------------------------------------------------------------------------------------


def _globs(text: str) -> list[str]:
    return [glob.strip() for glob in text.split(",") if glob.strip()]


def _agents_add(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import add_agent

    agent, token = add_agent(conn, ledger, args.name, args.autonomy, _globs(args.tools), args.owner, now, actor)
    tools = ", ".join(agent.tools) or "no tools"
    return Output(token, f"registered agent {agent.name} ({agent.autonomy.name}; {tools}). Its token, shown "
                         "only this once (Warden keeps only its hash):")


def _agents_list(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import list_agents

    records = list_agents(conn)
    rows = [{"name": r.agent.name, "autonomy": r.agent.autonomy.name, "owner": r.agent.owner,
             "tools": list(r.agent.tools), "created_at": _iso(r.created_at), "revoked_at": _iso(r.revoked_at)}
            for r in records]  # fmt: skip
    if args.json:
        return Output(json.dumps(rows, indent=2))
    table = [[row["name"], row["autonomy"], row["owner"] or "-", ",".join(row["tools"]) or "-",
              "revoked" if row["revoked_at"] else "active", row["created_at"]] for row in rows]  # fmt: skip
    return Output(_table(["NAME", "AUTONOMY", "OWNER", "TOOLS", "STATUS", "CREATED"], table))


def _agents_set(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
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


def _agents_rotate(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import rotate_agent_token

    token = rotate_agent_token(conn, ledger, args.name, now, actor)
    return Output(token, f"new token for agent {args.name}; the old one no longer works. Shown only this once:")


def _agents_revoke(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import revoke_agent

    revoke_agent(conn, ledger, args.name, now, actor)
    return Output(stderr=f"revoked agent {args.name}; its token no longer works")


# -- users --------------------------------------------------------------------------------------


def _users_add(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import add_user

    user, token = add_user(conn, ledger, args.email, args.role, now, actor)
    return Output(token, f"added {user.email} as {user.role}. Their token, shown only this once "
                         "(Warden keeps only its hash):")


def _users_list(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import list_users

    rows = [{"email": r.user.email, "role": r.user.role, "created_at": _iso(r.created_at),
             "revoked_at": _iso(r.revoked_at)} for r in list_users(conn)]  # fmt: skip
    if args.json:
        return Output(json.dumps(rows, indent=2))
    table = [[row["email"], row["role"], "revoked" if row["revoked_at"] else "active", row["created_at"]] for row in rows]
    return Output(_table(["EMAIL", "ROLE", "STATUS", "CREATED"], table))


def _users_set_role(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import set_role

    user = set_role(conn, ledger, args.email, args.role, now, actor)
    return Output(stderr=f"{user.email} is now {user.role}")


def _users_rotate(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import normalise_email, rotate_user_token

    token = rotate_user_token(conn, ledger, args.email, now, actor)
    return Output(token, f"new token for {normalise_email(args.email)}; the old one no longer works. Shown only this once:")


def _users_revoke(args: argparse.Namespace, conn: "Connection", ledger: "Ledger", actor: str, now: float) -> Output:
    from gateway.store.identities import revoke_user

    user = revoke_user(conn, ledger, args.email, now, actor)
    return Output(stderr=f"revoked {user.email}; their token no longer works")


# -- config -------------------------------------------------------------------------------------


def config_show_command(args: argparse.Namespace) -> Output:
    from gateway.config import SETTINGS

    loaded = _settings(args)
    shown = loaded.settings.masked()
    if args.json:
        document = {spec.name: {"value": shown[spec.name], "source": loaded.sources[spec.name]} for spec in SETTINGS}
        return Output(json.dumps(document, indent=2))
    lines = [(f"{spec.name} = {_toml_value(shown[spec.name])}", loaded.sources[spec.name]) for spec in SETTINGS]
    width = max(len(line) for line, _ in lines)
    body = "\n".join(f"{line.ljust(width)}  # {source}" for line, source in lines)
    return Output(f"# config file: {loaded.config_file or 'none'}\n{body}")


def config_list_command(args: argparse.Namespace) -> Output:
    from gateway.config import SETTINGS

    entries = []
    for spec in SETTINGS:
        default = _toml_value(spec.masked(spec.default))
        where = f"{spec.env} or {spec.env}_FILE; a password only there, never in the file" if spec.secret else spec.env
        entries.append(f"{spec.name} ({spec.type_name}, default {default})  {where}\n    {spec.help}")
    return Output("\n".join(entries))


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [header, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)
