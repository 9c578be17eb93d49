"""`warden connectors check`: one read-only call per connector with the configured credentials.

    connectors check [--json]

Live mode: Stripe reads the balance, Shopify the shop, the CRM the account, each within the
connector timeout; a system without credentials shows "not configured". Exit 0 when every
configured connector answered and at least one is configured, 1 otherwise. Sandbox mode says
that there is nothing to reach (exit 0). Credentials never appear in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.exits import EXIT_CHECK_FAILED, EXIT_OK
from gateway.cli.options import add_config_option, command_group, settings
from gateway.cli.registry import table


def register(subparsers: Any) -> None:
    """Add `warden connectors` to the `warden` command."""
    group = command_group(subparsers, "connectors", "check the connectors' credentials")
    check = group.add_parser("check", help="a read-only call per configured connector",
                             description="a read-only call per configured connector: what works")
    check.add_argument("--json", action="store_true", help="one JSON object: connector → result")
    add_config_option(check)
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    from gateway.runtime.connectors import connectors_for

    configured = settings(args)
    registry = connectors_for(configured)
    try:
        results = registry.check()
    finally:
        registry.close()
    rows = {name: {"ok": r.ok, "status": _status(r.ok, r.code), "detail": r.detail, "code": r.code}
            for name, r in results.items()}
    if args.json:
        print(json.dumps({"mode": registry.mode, "connectors": rows}, indent=2))
    else:
        if registry.mode == "sandbox":
            print("sandbox mode: the connectors answer without the network; nothing to reach "
                  "(connectors_mode = live for the real APIs)", file=sys.stderr)
        print(table(["CONNECTOR", "STATUS", "DETAIL"],
                    [[name, row["status"], row["detail"]] for name, row in rows.items()]))
    configured_rows = [row for row in rows.values() if row["code"] != "not_configured"]
    return EXIT_OK if configured_rows and all(row["ok"] for row in configured_rows) else EXIT_CHECK_FAILED


def _status(ok: bool, code: str | None) -> str:
    if ok:
        return "ok"
    return "not configured" if code == "not_configured" else f"failed ({code})"
