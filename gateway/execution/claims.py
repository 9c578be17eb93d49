"""Leases on executions: the `Claim` a process holds while it runs one, and the SQL that takes it.

A claim is the right to run one execution now. It is taken in a short transaction of its own
(`take_due`): due rows are pending rows whose `next_attempt_at` has come and running rows whose
lease expired (the process running them died or hung). PostgreSQL selects them `FOR UPDATE SKIP
LOCKED`, so processes never claim the same row; on SQLite `BEGIN IMMEDIATE` serialises claims.
Each claim counts one attempt, and that count identifies the lease: an outcome is written only
while the row is still running with the same `attempts` (`gateway.execution.outbox`).

A claim says whether the previous attempt's outcome is unknown (`reconcile`): the row was marked
so (a timeout, a connection dropped after the request left), or its lease expired while it was
running (the process died mid-call). Such a claim asks the provider what happened before it sends
anything. The first claim stamps `first_attempt_at`, the time the idempotency key was first used.

The statements are built once, here; building one costs more than running it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, Select, and_, bindparam, func, or_, select, update

from gateway.store.schema import executions


@dataclass(frozen=True)
class Claim:
    """One leased execution: `attempts` counts this attempt and identifies the lease."""

    decision_id: str
    tool: str
    params_json: str
    attempts: int
    lease_until: float
    #: the previous attempt's outcome is unknown: reconcile before calling
    reconcile: bool = False
    #: when the first call with this key was made (epoch seconds)
    first_attempt_at: float | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(json.loads(self.params_json))

    @property
    def connector(self) -> str:
        return self.tool.split(".", 1)[0]


def _due(*, one: bool, locking: bool) -> Select[Any]:
    now: BindParameter[float] = bindparam("now")
    query = select(
        executions.c.decision_id, executions.c.tool, executions.c.params,
        executions.c.state, executions.c.attempts, executions.c.outcome_unknown,
        executions.c.first_attempt_at,
    ).where(or_(
        and_(executions.c.state == "pending", executions.c.next_attempt_at <= now),
        and_(executions.c.state == "running", executions.c.lease_until <= now),
    ))
    if one:
        query = query.where(executions.c.decision_id == bindparam("decision_id"))
    query = query.order_by(executions.c.next_attempt_at).limit(bindparam("limit"))
    return query.with_for_update(skip_locked=True) if locking else query


#: (only one decision's row, PostgreSQL) → the due rows, oldest first.
_DUE = {(one, locking): _due(one=one, locking=locking) for one in (False, True) for locking in (False, True)}
_TAKE = (
    update(executions)
    .where(executions.c.decision_id == bindparam("id"), executions.c.state == bindparam("was_state"),
           executions.c.attempts == bindparam("was_attempts"))
    .values(state="running", attempts=bindparam("new_attempts"), lease_until=bindparam("lease"),
            updated_at=bindparam("now"),
            first_attempt_at=func.coalesce(executions.c.first_attempt_at, bindparam("now")))
)
_EXPIRE_LEASES = (
    update(executions).where(executions.c.state == "running")
    .values(lease_until=bindparam("now"), updated_at=bindparam("now"))
)


def take_due(
    conn: Connection, limit: int, *, now: float, lease_until: float, decision_id: str | None = None
) -> list[Claim]:
    """Lease up to `limit` due executions (only `decision_id`'s when given), in `conn`'s
    transaction: each becomes running until `lease_until`, one attempt more."""
    query = _DUE[decision_id is not None, conn.dialect.name == "postgresql"]
    claims: list[Claim] = []
    for row in conn.execute(query, {"now": now, "limit": limit, "decision_id": decision_id}).all():
        taken = conn.execute(_TAKE, {
            "id": row.decision_id, "was_state": row.state, "was_attempts": row.attempts,
            "new_attempts": row.attempts + 1, "lease": lease_until, "now": now,
        })
        if taken.rowcount == 1:
            unknown = bool(row.outcome_unknown) or row.state == "running"
            claims.append(Claim(row.decision_id, row.tool, row.params, row.attempts + 1, lease_until,
                                reconcile=unknown and row.attempts > 0,
                                first_attempt_at=row.first_attempt_at if row.first_attempt_at is not None else now))
    return claims


def expire_leases(conn: Connection, now: float) -> int:
    """End every running row's lease now, so the next claim re-drives it; returns how many."""
    return int(conn.execute(_EXPIRE_LEASES, {"now": now}).rowcount)
