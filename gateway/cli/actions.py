"""`warden actions compensate ID --as EMAIL`: undo an executed action, as the console's and the
API's `POST /v1/actions/{id}/compensate` do.

The compensation is a packet of the original agent, decided under the active policies and
recorded in the audit log; it executes here at once when allowed, or waits for an approver. The
person asking must hold an active founder or approver account. Prints the compensating decision
(`--json`: as the API returns it). An action that has not executed, or whose tool cannot be
undone, is refused with the reason (exit 2).
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.exits import EXIT_OK
from gateway.cli.guard import CommandError
from gateway.cli.options import add_config_option, add_db_option, command_group, settings


def register(subparsers: Any) -> None:
    """Add `warden actions` to the `warden` command."""
    group = command_group(subparsers, "actions", "act on recorded actions")
    compensate = group.add_parser("compensate", help="undo an executed action with its compensation",
                                  description="undo an executed action with the catalog's compensation")
    compensate.add_argument("decision_id", metavar="ID", help="the executed action's decision id")
    compensate.add_argument("--as", dest="person", required=True, metavar="EMAIL",
                            help="who asks: an active founder or approver")
    compensate.add_argument("--json", action="store_true", help="print the decision as JSON")
    add_db_option(compensate)
    add_config_option(compensate)
    compensate.set_defaults(handler=_compensate)


def _compensate(args: argparse.Namespace) -> int:
    from gateway.pipeline.approvals import APPROVER_ROLES, Person
    from gateway.pipeline.errors import PipelineError
    from gateway.runtime.runtime import Runtime
    from gateway.store.identities import get_user
    from ledger.database import read_only

    configured = settings(args)
    if getattr(args, "db", None):
        configured = configured.model_copy(update={"database_url": args.db})
    runtime = Runtime(configured)
    try:
        with read_only(runtime.db.connect()) as conn:
            record = get_user(conn, args.person)
        if not record.active:
            raise CommandError(f"{record.user.email} is revoked")
        if record.user.role not in APPROVER_ROLES:
            raise CommandError(f"{record.user.email} is {record.user.role}: only a founder or an approver may "
                               "ask for a compensation")
        try:
            decision = runtime.compensations.compensate(Person(record.user.email, record.user.role), args.decision_id)
        except PipelineError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
    finally:
        runtime.stop()
    if args.json:
        print(decision.model_dump_json(indent=2))
    else:
        reasons = "; ".join(r.message for r in decision.reasons if r.message)[:300]
        print(f"compensation {decision.decision_id} of {args.decision_id}: {decision.status}"
              + (f" ({reasons})" if reasons and decision.status != "executed" else ""))
    return EXIT_OK
