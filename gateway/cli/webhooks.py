"""`warden webhooks`: the endpoints that receive Warden's events, signed (Standard Webhooks).

    webhooks add URL --events decision,execution …   prints the signing secret (whsec_…) once
    webhooks list [--json]
    webhooks disable ID [--reason TEXT]    stop sending; pending deliveries wait
    webhooks enable ID                     send again, the pending deliveries first
    webhooks remove ID                     forget it, its deliveries and their attempts
    webhooks deliveries ID [--json] [--limit N]

Each runs as one registry change (`gateway.cli.registry`), as a founder would: `--db`, `--config`,
the secret alone on stdout. Bad input (an unknown kind or endpoint, a URL that is not http(s) or
holds credentials) is one line on stderr and exit code 2.
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


def register(subparsers: Any) -> None:
    """Add `warden webhooks` to the `warden` command."""
    hooks = command_group(subparsers, "webhooks", "endpoints that receive Warden's events")
    add = add_command(hooks, "add", "register an endpoint; prints its signing secret once", _add)
    add.add_argument("url", metavar="URL")
    add.add_argument("--events", required=True, nargs="+", metavar="KIND",
                     help="event kinds (decision approval rejection expiry execution incident kill_switch "
                          "policy_activated), separated by spaces or commas")
    add_command(hooks, "list", "list endpoints", _list).add_argument("--json", action="store_true")
    disable = add_command(hooks, "disable", "stop sending to an endpoint; its pending deliveries wait", _disable)
    disable.add_argument("id", metavar="ID")
    disable.add_argument("--reason", default="disabled by an operator")
    add_command(hooks, "enable", "send to a disabled endpoint again", _enable).add_argument("id", metavar="ID")
    add_command(hooks, "remove", "forget an endpoint and its deliveries", _remove).add_argument("id", metavar="ID")
    shown = add_command(hooks, "deliveries", "an endpoint's deliveries and their attempts", _deliveries)
    shown.add_argument("id", metavar="ID")
    shown.add_argument("--limit", type=int, default=50)
    shown.add_argument("--json", action="store_true")


def _add(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.events.webhooks import add_endpoint

    endpoint, secret = add_endpoint(conn, ledger, args.url, args.events, actor, now)
    return Output(secret, f"registered webhook {endpoint.id} for {', '.join(endpoint.kinds)} at {endpoint.url}. "
                          "Its signing secret, shown only this once:")


def _list(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.events.webhooks import list_endpoints

    endpoints = list_endpoints(conn)
    if args.json:
        return Output(json.dumps([e.document() for e in endpoints], indent=2))
    return Output(table(["ID", "URL", "EVENTS", "STATE", "PENDING", "CREATED"],
                        [[e.id, e.url, ",".join(e.kinds), e.state, e.pending, iso(e.created_at)] for e in endpoints]))


def _disable(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.events.webhooks import disable_endpoint

    changed = disable_endpoint(conn, ledger, args.id, actor, args.reason, now)
    return Output(stderr=f"webhook {args.id}: " + ("disabled" if changed else "already disabled"))


def _enable(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.events.webhooks import enable_endpoint

    changed = enable_endpoint(conn, ledger, args.id, actor, now)
    return Output(stderr=f"webhook {args.id}: " + ("enabled" if changed else "already active"))


def _remove(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.events.webhooks import remove_endpoint

    remove_endpoint(conn, ledger, args.id, actor)
    return Output(stderr=f"removed webhook {args.id}")


def _deliveries(args: argparse.Namespace, conn: Connection, ledger: Ledger, actor: str, now: float) -> Output:
    from gateway.events.webhooks import deliveries

    found = deliveries(conn, args.id, limit=max(1, min(args.limit, 1000)))
    if args.json:
        return Output(json.dumps(found, indent=2))
    rows = [[d["event_id"], d["kind"], d["decision_id"] or "-", d["state"], len(d["attempts"]),
             (d["attempts"][-1]["error"] or d["attempts"][-1]["status_code"]) if d["attempts"] else "-"]
            for d in found]
    return Output(table(["EVENT", "KIND", "DECISION", "STATE", "ATTEMPTS", "LAST"], rows))
