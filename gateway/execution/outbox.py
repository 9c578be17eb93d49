"""The execution outbox: run each allowed action once, through its connector, and record how it went.

    enqueue (in the decision's transaction) ─► pending ─► claim ─► running ─► connector call
        ─► succeeded | pending again (transient error, backoff) | failed (permanent / exhausted)

- `enqueue` writes the `executions` row in the transaction that records the decision, so an
  allowed action is never lost and never queued without its decision.
- `Outbox.claim` takes due rows in one short transaction and leases them (`lease_seconds`):
  pending rows whose `next_attempt_at` has come, and running rows whose lease expired (their
  process crashed or hung). PostgreSQL: `FOR UPDATE SKIP LOCKED`, so processes never claim the
  same row; SQLite: `BEGIN IMMEDIATE` serialises claims. Each claim counts one attempt.
- `Outbox.run_claim` checks the kill switch and the connector's circuit breaker (a refusal puts
  the row back without counting the attempt), then calls the connector outside any transaction
  with the decision id as the idempotency key, then records the outcome (the row, the decision,
  an `execution` audit entry, an incident on failure) in one transaction. The outcome is written
  only if the row is still running under this claim (`attempts` unchanged): a worker whose lease
  expired and whose row was re-driven elsewhere records nothing.
- A crash anywhere leaves the row pending or running; it is re-driven with the same key, and the
  connector answers a key it has seen with its first result (`replayed`), so the action happens
  once. What each outcome writes is in `gateway.outbox_records`; `Worker` runs the loop in
  background threads (`gateway.outbox_worker`). `Claim`, `enqueue` and `Worker` are re-exported here.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal, Protocol

from sqlalchemy import Connection, Engine, and_, or_, select, update

from connectors.base import ExecutionResult, PermanentError, TransientError
from gateway.execution.breaker import CircuitBreakers
from gateway.store.killswitch import read_kill_switch
from gateway.engine.models import Decision
from gateway.execution.outcomes import (
    Claim,
    ExecutionError,
    enqueue,
    record_failure,
    record_retry,
    record_success,
    release,
)
from gateway.execution.worker import Worker
from gateway.store.records import load_decision
from gateway.store.schema import executions
from ledger.checkpointer import Checkpointer
from ledger.database import read_only
from ledger.store import Ledger

log = logging.getLogger("warden.outbox")

Outcome = Literal["succeeded", "transient_error", "permanent_error", "breaker_open", "kill_switch"]
CallHook = Callable[[str, str, Outcome, float], None]
Write = Callable[[Callable[[Connection], Any]], Any]  # runs one unit of work in a durable commit
KILL_SWITCH_RETRY_SECONDS = 1.0
BREAKER_MIN_WAIT_SECONDS = 0.1


class ExecutesTools(Protocol):
    """What the outbox needs of the connector registry."""

    def execute(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult: ...


def backoff_delay(
    attempts: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt number `attempts` (1-based): "full jitter", a uniform
    draw below min(cap, base * 2**(attempts - 1)), but never sooner than the API's `retry_after`."""
    exponent = min(max(attempts - 1, 0), 60)  # 2**60 * base is past any sane cap already
    delay = rng.uniform(0.0, max(0.0, min(cap, base * 2.0**exponent)))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
        delay = max(delay, retry_after)
    return delay


class Outbox:
    """Claims due executions, runs them through the connectors and records their outcomes."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        connectors: ExecutesTools,
        *,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        lease_seconds: float = 30.0,
        breaker: CircuitBreakers | None = None,
        on_call: CallHook | None = None,
        checkpointer: Checkpointer | None = None,
        rng: random.Random | None = None,
        write: Write | None = None,
    ) -> None:
        if max_attempts < 1 or lease_seconds <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("outbox needs max_attempts >= 1, lease_seconds > 0 and backoff >= 0")
        self.engine = engine
        self.ledger = ledger
        self.connectors = connectors
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.lease_seconds = lease_seconds
        self.breaker = breaker if breaker is not None else CircuitBreakers(failures=5, cooldown=60.0)
        self.on_call = on_call
        self.checkpointer = checkpointer
        self.rng = rng if rng is not None else random.Random()
        self.write = write
        self._recorded = threading.local()  # the decision the last success on this thread stored

    def _write(self, work: Callable[[Connection], Any]) -> Any:
        """Run one recording unit durably: through the shared group committer when the gateway
        gave one (many requests' writes share a commit), else in a transaction of its own."""
        def unit(conn: Connection) -> Any:
            if conn.dialect.name == "postgresql":  # the gateway's lock order: the log's head first
                self.ledger.lock_head(conn)
            return work(conn)

        if self.write is not None:
            return self.write(unit)
        with self.engine.begin() as conn:
            return unit(conn)

    def open_breakers(self) -> dict[str, bool]:
        """{connector: True while its breaker refuses calls (open or half-open)} for metrics."""
        return {name: state != "closed" for name, state in self.breaker.states().items()}

    # -- claiming -----------------------------------------------------------------------------

    def claim(self, limit: int, *, decision_id: str | None = None) -> list[Claim]:
        """Lease up to `limit` due executions (only `decision_id`'s when given)."""
        now = self.clock()
        lease_until = now + self.lease_seconds
        due = or_(
            and_(executions.c.state == "pending", executions.c.next_attempt_at <= now),
            and_(executions.c.state == "running", executions.c.lease_until <= now),
        )
        query = select(
            executions.c.decision_id, executions.c.tool, executions.c.params,
            executions.c.state, executions.c.attempts,
        ).where(due)
        if decision_id is not None:
            query = query.where(executions.c.decision_id == decision_id)
        query = query.order_by(executions.c.next_attempt_at).limit(limit)
        claims: list[Claim] = []
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            for row in conn.execute(query).all():
                taken = conn.execute(
                    update(executions)
                    .where(executions.c.decision_id == row.decision_id)
                    .where(executions.c.state == row.state, executions.c.attempts == row.attempts)
                    .values(state="running", attempts=row.attempts + 1, lease_until=lease_until, updated_at=now)
                )
                if taken.rowcount == 1:
                    claims.append(Claim(row.decision_id, row.tool, row.params, row.attempts + 1, lease_until))
        return claims

    def recover_in_flight(self) -> int:
        """Make every running row claimable now (its lease ends now); returns how many.

        Only safe when this is the only process running executions (start-up of a single
        gateway): it would also take over rows another live process is running. With several
        processes, rely on lease expiry instead."""
        now = self.clock()
        with self.engine.begin() as conn:
            done = conn.execute(
                update(executions).where(executions.c.state == "running").values(lease_until=now, updated_at=now)
            )
        return int(done.rowcount)

    # -- running ------------------------------------------------------------------------------

    def run_due(self, limit: int = 16) -> int:
        """Claim and run what is due; returns how many claims ran (none while the kill switch is
        engaged). One failing claim (say, the database went away while recording) is logged and
        leaves its row to lease expiry."""
        if self._kill_switch_engaged():  # claim nothing: held rows would only churn
            return 0
        ran = 0
        for claim in self.claim(limit):
            try:
                self.run_claim(claim)
            except Exception:
                log.exception("execution of %s could not be recorded; it will be re-driven", claim.decision_id)
            ran += 1
        return ran

    def execute_now(self, decision_id: str) -> Decision | None:
        """Run one decision's execution right away if it is due (the request path, just after
        the decision committed); returns the decision as stored afterwards."""
        for claim in self.claim(1, decision_id=decision_id):
            self.run_claim(claim)
        with self.engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                return load_decision(conn, decision_id)

    def run_now(self, claim: Claim) -> Decision | None:
        """Run a claim the caller took in its own transaction (`enqueue(..., lease_until=)`);
        returns the decision as stored afterwards. A failure to record is logged and leaves the
        row to lease expiry, like `run_due`."""
        self._recorded.decision = None
        try:
            self.run_claim(claim)
        except Exception:
            log.exception("execution of %s could not be recorded; it will be re-driven", claim.decision_id)
        if (recorded := self._recorded.decision) is not None:  # as just committed
            self._recorded.decision = None
            return recorded
        with self.engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                return load_decision(conn, claim.decision_id)

    def run_claim(self, claim: Claim) -> Outcome:
        """Run one claim: gates, the connector call, the recorded outcome. Returns the outcome."""
        if self._kill_switch_engaged():
            self._release(claim, self.clock() + KILL_SWITCH_RETRY_SECONDS, "kill switch engaged")
            return self._report(claim, "kill_switch", 0.0)
        if not self.breaker.allow(claim.connector):
            wait = max(self.breaker.retry_in(claim.connector), BREAKER_MIN_WAIT_SECONDS)
            self._release(claim, self.clock() + wait, f"circuit breaker for {claim.connector} is open")
            return self._report(claim, "breaker_open", 0.0)
        started = time.monotonic()
        try:
            result = self.connectors.execute(claim.tool, claim.params, idempotency_key=claim.decision_id)
        except PermanentError as exc:
            self.breaker.record_success(claim.connector)  # it answered: the system is up
            seconds = time.monotonic() - started
            self._record_failure(claim, exc)
            return self._report(claim, "permanent_error", seconds)
        except Exception as exc:  # TransientError, timeouts, anything unexpected
            self.breaker.record_failure(claim.connector)
            seconds = time.monotonic() - started
            if claim.attempts >= self.max_attempts:
                self._record_failure(claim, exc)
            else:
                self._record_retry(claim, exc)
            return self._report(claim, "transient_error", seconds)
        self.breaker.record_success(claim.connector)
        seconds = time.monotonic() - started
        self._record_success(claim, result)
        return self._report(claim, "succeeded", seconds)

    def _kill_switch_engaged(self) -> bool:
        with self.engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                return read_kill_switch(conn).engaged

    def _report(self, claim: Claim, outcome: Outcome, seconds: float) -> Outcome:
        if self.on_call is not None:
            try:
                self.on_call(claim.connector, claim.tool, outcome, seconds)
            except Exception:
                log.exception("the outbox's on_call hook failed")
        return outcome

    # -- recording (one transaction each; see gateway.outbox_records) ----------------------

    def _release(self, claim: Claim, next_attempt_at: float, why: str) -> None:
        """Put the row back without counting the attempt (kill switch, open breaker)."""
        self._write(lambda conn: release(conn, claim, next_attempt_at=next_attempt_at, now=self.clock()))
        log.info("execution of %s held back: %s", claim.decision_id, why)

    def _record_success(self, claim: Claim, result: ExecutionResult) -> None:
        def work(conn: Connection) -> Decision | bool:
            stored = record_success(conn, self.ledger, claim, result, now=self.clock())
            if stored:
                self._maybe_sign(conn)
            return stored

        stored = self._write(work)
        self._recorded.decision = stored if isinstance(stored, Decision) else None

    def _record_retry(self, claim: Claim, exc: Exception) -> None:
        now = self.clock()
        error = ExecutionError.of(exc)
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        delay = backoff_delay(claim.attempts, base=self.backoff_base, cap=self.backoff_max,
                              retry_after=retry_after, rng=self.rng)
        self._write(lambda conn: record_retry(conn, claim, error, next_attempt_at=now + delay, now=now))
        log.info("execution of %s failed (attempt %d, %s); retrying in %.2fs",
                 claim.decision_id, claim.attempts, error.code, delay)

    def _record_failure(self, claim: Claim, exc: Exception) -> None:
        error = ExecutionError.of(exc)
        def work(conn: Connection) -> None:
            if record_failure(conn, self.ledger, claim, error, now=self.clock()):
                self._maybe_sign(conn)

        self._write(work)
        log.warning("execution of %s failed for good: %s", claim.decision_id, error.code)

    def _maybe_sign(self, conn: Connection) -> None:
        if self.checkpointer is not None:
            self.checkpointer.maybe_sign(conn)


__all__ = ["Claim", "ExecutionError", "Outbox", "Outcome", "Worker", "backoff_delay", "enqueue"]
