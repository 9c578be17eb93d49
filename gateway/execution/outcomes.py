"""What the outbox writes for each step of an execution, in the caller's transaction.

Every outcome is conditional on the lease: a row moves on only while it is still `running`
under the claim that ran it (`attempts` unchanged). A worker whose lease expired and whose row
was claimed again elsewhere gets `False` back and writes nothing else, so one execution never
records two outcomes.

    enqueue         pending row, written with the decision
    release         back to pending, attempt not counted (kill switch, open breaker)
    record_retry    back to pending after a transient error; decision stays "executing"
    record_success  succeeded; decision "executed"; `execution` audit entry
    record_failure  failed; decision "failed"; `execution` audit entry; connector_failure incident
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from connectors.base import ConnectorError, ExecutionResult
from gateway.engine.models import Decision
from gateway.store.records import dumps, load_decision, record_incident, store_decision_update
from gateway.store.schema import decisions, executions
from ledger.store import Ledger

log = logging.getLogger("warden.outbox")
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Claim:
    """One leased execution: `attempts` counts this attempt and identifies the lease."""

    decision_id: str
    tool: str
    params_json: str
    attempts: int
    lease_until: float

    @property
    def params(self) -> dict[str, Any]:
        return dict(json.loads(self.params_json))

    @property
    def connector(self) -> str:
        return self.tool.split(".", 1)[0]


@dataclass(frozen=True)
class ExecutionError:
    code: str
    message: str

    @classmethod
    def of(cls, exc: BaseException) -> ExecutionError:
        """A connector's own errors are already safe to record; anything else is reduced to its
        type and a bounded message."""
        if isinstance(exc, ConnectorError):
            return cls(exc.code, str(exc)[:MAX_ERROR_CHARS])
        code = "timeout" if isinstance(exc, TimeoutError) else "unexpected_error"
        return cls(code, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS])

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def enqueue(
    conn: Connection, *, decision_id: str, tool: str, params: Mapping[str, Any], now: float,
    lease_until: float | None = None,
) -> Claim | None:
    """Queue the execution of an allowed decision, inside the caller's (the decision's) transaction.

    With `lease_until`, the row is written already claimed by the caller (state running, first
    attempt) and the claim is returned: the request path then runs it at once without a claim
    transaction of its own. If the caller dies first, the lease expires and a worker re-drives it.
    """
    text = dumps(dict(params))
    claimed = lease_until is not None
    conn.execute(_INSERT_EXECUTION, {
        "decision_id": decision_id, "tool": tool, "params": text,
        "state": "running" if claimed else "pending", "attempts": 1 if claimed else 0,
        "next_attempt_at": now, "lease_until": lease_until, "created_at": now, "updated_at": now,
    })
    return Claim(decision_id, tool, text, 1, lease_until) if lease_until is not None else None


_INSERT_EXECUTION = insert(executions)
#: One prebuilt UPDATE per set of changed columns (building a statement costs more than running it).
_TRANSITIONS: dict[tuple[str, ...], Any] = {}


def _transition(conn: Connection, claim: Claim, now: float, **values: Any) -> bool:
    """Move the row on, if it is still running under this claim."""
    statement = _TRANSITIONS.get(tuple(sorted(values)))
    if statement is None:
        statement = _TRANSITIONS[tuple(sorted(values))] = (
            update(executions)
            .where(executions.c.decision_id == bindparam("claim_id"))
            .where(executions.c.state == "running", executions.c.attempts == bindparam("claim_attempts"))
            .values(lease_until=None, updated_at=bindparam("now"),
                    **{name: bindparam(f"new_{name}") for name in values})
        )
    done = conn.execute(statement, {
        "claim_id": claim.decision_id, "claim_attempts": claim.attempts, "now": now,
        **{f"new_{name}": value for name, value in values.items()},
    })
    if done.rowcount != 1:
        log.warning("execution %s was re-driven elsewhere; attempt %d records nothing", claim.decision_id, claim.attempts)
        return False
    return True


def release(conn: Connection, claim: Claim, *, next_attempt_at: float, now: float) -> bool:
    return _transition(conn, claim, now, state="pending", attempts=claim.attempts - 1, next_attempt_at=next_attempt_at)


def record_retry(conn: Connection, claim: Claim, error: ExecutionError, *, next_attempt_at: float, now: float) -> bool:
    decision = load_decision(conn, claim.decision_id, for_update=True)  # lock order: decision, then row
    if not _transition(conn, claim, now, state="pending", next_attempt_at=next_attempt_at, error=str(error)):
        return False
    _store(conn, decision, "executing", {
        "state": "retrying", "attempts": claim.attempts, "last_error": error.to_json(),
        "next_attempt_at": iso_time(next_attempt_at),
    }, now)
    return True


def record_success(
    conn: Connection, ledger: Ledger, claim: Claim, result: ExecutionResult, *, now: float
) -> Decision | bool:
    """Record a success; returns the decision as now stored (False: the lease was lost)."""
    decision = load_decision(conn, claim.decision_id, for_update=True)
    summary = dict(result.summary)
    document = {"external_id": result.external_id, "summary": summary, "replayed": result.replayed}
    if not _transition(conn, claim, now, state="succeeded", result=dumps(document), error=None):
        return False
    stored = _store(conn, decision, "executed", {
        "state": "succeeded", "external_id": result.external_id, "summary": summary,
        "attempts": claim.attempts, "idempotency_key": claim.decision_id, "executed_at": iso_time(now),
    }, now)
    ledger.append(conn, "execution", "warden", claim.decision_id, {
        "decision_id": claim.decision_id, "tool": claim.tool, "outcome": "succeeded",
        "external_id": result.external_id, "summary": summary, "attempts": claim.attempts,
        "idempotency_key": claim.decision_id,
    })
    return stored if stored is not None else True


def record_failure(conn: Connection, ledger: Ledger, claim: Claim, error: ExecutionError, *, now: float) -> bool:
    decision = load_decision(conn, claim.decision_id, for_update=True)
    if not _transition(conn, claim, now, state="failed", error=str(error)):
        return False
    _store(conn, decision, "failed", {"state": "failed", "error": error.to_json(), "attempts": claim.attempts}, now)
    ledger.append(conn, "execution", "warden", claim.decision_id, {
        "decision_id": claim.decision_id, "tool": claim.tool, "outcome": "failed", "error": error.to_json(),
        "attempts": claim.attempts, "idempotency_key": claim.decision_id,
    })
    agent = conn.execute(
        select(decisions.c.agent).where(decisions.c.decision_id == claim.decision_id)
    ).scalar_one_or_none()
    record_incident(
        conn, ledger, kind="connector_failure",
        summary=f"{claim.tool} failed after {claim.attempts} attempt(s): {error.code}",
        detail={"tool": claim.tool, "error": error.to_json(), "attempts": claim.attempts},
        now=now, agent=agent, decision_id=claim.decision_id,
    )
    return True


def _store(conn: Connection, decision: Any, status: str, execution: dict[str, Any], now: float) -> Decision | None:
    if decision is None:
        log.error("execution of a decision that has no row: %s", execution)
        return None
    changed = decision.model_copy(update={"status": status, "execution": execution})
    store_decision_update(conn, changed, now=now)
    return changed
