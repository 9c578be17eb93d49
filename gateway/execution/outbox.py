"""The execution of an allowed action: one state machine over its row in `executions`.

                  ┌─────────────── release, retry ───────────────┐
                  ▼                                              │
    enqueue ──► pending ──── claim ────► running ───── call ─────┼──► succeeded
       │                                  ▲  ▲ │                 └──► failed
       └──── claimed with the decision ───┘  └─┘
                                      claim again: the lease expired

    enqueue   ─► pending    with the decision, one row per decision: never lost, never without it
    enqueue   ─► running    the request path: written already claimed (first attempt), run at once
    pending   ─► running    claim: `next_attempt_at` has come; one attempt more, leased
    running   ─► running    claim: the lease expired (the process died or hung); same key
    running   ─► pending    release: kill switch engaged or breaker open; attempt not counted
    running   ─► succeeded  the connector confirmed; decision "executed", `execution` entry
    running   ─► pending    retry: transient error, attempts left; after a backoff; decision
                            "executing" with the error
    running   ─► failed     permanent error, or no attempts left; decision "failed",
                            `execution` entry, `connector_failure` incident (an idempotency
                            conflict: `idempotency_conflict`; an outcome still unknown at the
                            last attempt: `execution_unresolved`)

An outcome can be unknown: the call timed out, or the connection dropped after the request
left, or the process died mid-call (its lease expired while running). The row is marked
(`outcome_unknown`), and the next claim reconciles first: it asks the provider what the key did
(`reconcile`). Found: succeeded, without a second call. Not found: the call is sent. Every
attempt that does not settle (`execution` entry, outcome "retrying" or "unknown") and every
reconciliation (`reconciliation` entry) is in the audit log. Attempts are capped
(`max_attempts`): an execution is never retried forever.

- Claims are taken in a short transaction of their own (`gateway.execution.claims`); the
  request path's claim is written with the decision (`enqueue(..., lease_until=)`, `run_now`).
- The connector is called outside any transaction, with the decision id as the idempotency key.
- Each outcome is one job of the gateway's log writer: the row, the decision, the audit entry
  (and the incident) commit together or not at all. A success is staged work (serialised before
  the writer, written with its next batch); failures, retries and releases are units of work. It is written only while the row is
  still running under this claim (`attempts` unchanged): a process whose lease expired and whose
  row was claimed again elsewhere records nothing, so an execution never has two outcomes.
- A crash anywhere leaves the row pending or running; it is re-driven with the same key, and the
  connector answers a key it has seen with its first result (`replayed`), so the action happens
  once. `gateway.execution.worker` runs `run_due` in background threads.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from sqlalchemy import Connection, Update, bindparam, insert, select, update

from connectors.base import (
    ConnectorError,
    ExecutionResult,
    IdempotencyConflictError,
    PermanentError,
    TransientError,
    UnknownOutcomeError,
)
from gateway.engine.models import Decision
from gateway.execution.backoff import backoff_delay
from gateway.execution.breaker import CircuitBreakers
from gateway.execution.claims import Claim, expire_leases, take_due
from gateway.store.killswitch import read_kill_switch
from gateway.store.records import (
    SELECT_DECISION, UPDATE_SETTLED, dumps, insert_sql, load_decision, record_incident, store_decision_update,
)
from gateway.store.schema import decisions, executions
from gateway.store.writer import Batch, Writer
from ledger.entry import EntryData
from ledger.database import read_only

log = logging.getLogger("warden.outbox")

#: Refusals during a reconciliation that say nothing about the action: its outcome stays unknown.
_UNRESOLVED_CODES = frozenset({"credentials_refused", "forbidden", "not_configured"})

Outcome = Literal["succeeded", "transient_error", "permanent_error", "breaker_open", "kill_switch",
                  "unknown_outcome", "idempotency_conflict", "lease_lost"]
CallHook = Callable[[str, str, Outcome, float], None]
#: (connector, tool, "found" | "not_found" | "error") after every reconciliation
ReconcileHook = Callable[[str, str, str], None]
KILL_SWITCH_RETRY_SECONDS = 1.0
BREAKER_MIN_WAIT_SECONDS = 0.1
MAX_ERROR_CHARS = 500


class ExecutesTools(Protocol):
    """What the outbox needs of the connector registry."""

    def execute(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult: ...


@runtime_checkable
class Reconciles(Protocol):
    """What the outbox uses, when the connectors offer it, before re-sending a call whose outcome
    is unknown (without it, the call is sent again with the same key: `execute` promises that a
    key never acts twice)."""

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None: ...


@dataclass(frozen=True)
class ExecutionError:
    """A failed call as recorded on the row, the decision and the audit entry."""

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


# -- enqueue ─► pending ---------------------------------------------------------------------------

_INSERT = insert(executions)
_COLUMNS = ("decision_id", "tool", "params", "state", "attempts", "next_attempt_at", "lease_until",
            "created_at", "updated_at", "first_attempt_at")
_INSERT_STAGED = insert_sql(executions, _COLUMNS)


def _new_row(decision_id: str, tool: str, params_json: str, now: float, lease_until: float | None) -> tuple[Any, ...]:
    claimed = lease_until is not None
    return (decision_id, tool, params_json, "running" if claimed else "pending", 1 if claimed else 0,
            now, lease_until, now, now, now if claimed else None)


def enqueue(
    conn: Connection, *, decision_id: str, tool: str, params: Mapping[str, Any], now: float,
    lease_until: float | None = None,
) -> Claim | None:
    """Queue the execution of an allowed decision, inside the caller's (the decision's) transaction.

    With `lease_until`, the row is written already claimed by the caller (running, first attempt)
    and the claim is returned: the request path then runs it at once without a claim transaction
    of its own. If the caller dies first, the lease expires and a worker re-drives it.
    """
    text = dumps(dict(params))
    conn.execute(_INSERT, dict(zip(_COLUMNS, _new_row(decision_id, tool, text, now, lease_until), strict=True)))
    return Claim(decision_id, tool, text, 1, lease_until, first_attempt_at=now) if lease_until is not None else None


def stage_enqueue(batch: Batch, *, decision_id: str, tool: str, params_json: str, now: float,
                  lease_until: float) -> Claim:
    """`enqueue` as staged work, claimed by the caller (the request path), `params_json` the
    params serialised beforehand (`gateway.store.records.dumps`)."""
    batch.queue(_INSERT_STAGED, _new_row(decision_id, tool, params_json, now, lease_until))
    return Claim(decision_id, tool, params_json, 1, lease_until, first_attempt_at=now)


# -- running ─► an outcome: each statement moves the row only while it is running under the claim --


def _leased(**values: Any) -> Update:
    return (
        update(executions)
        .where(executions.c.decision_id == bindparam("claim_id"), executions.c.state == "running",
               executions.c.attempts == bindparam("claim_attempts"))
        .values(lease_until=None, updated_at=bindparam("now"), **values)
    )


_RELEASE = _leased(state="pending", attempts=bindparam("new_attempts"), next_attempt_at=bindparam("new_next"))
_RETRY = _leased(state="pending", next_attempt_at=bindparam("new_next"), error=bindparam("new_error"),
                 outcome_unknown=bindparam("new_unknown"))
#: Reconciliation found no effect: the call is sent now, under the same claim.
_RECONCILED_NONE = _leased(state="running", outcome_unknown=0).values(lease_until=bindparam("lease"))
#: (result, now, decision_id, attempts), for staged work.
_SUCCEED_STAGED = (f"UPDATE {executions.name} SET state = 'succeeded', result = ?, error = NULL, outcome_unknown = 0, "
                   "lease_until = NULL, updated_at = ? WHERE decision_id = ? AND state = 'running' AND attempts = ?")
_FAIL = _leased(state="failed", error=bindparam("new_error"))
_AGENT = select(decisions.c.agent).where(decisions.c.decision_id == bindparam("id"))


class Outbox:
    """Claims due executions, runs them through the connectors and records their outcomes."""

    def __init__(
        self,
        writer: Writer,
        connectors: ExecutesTools,
        *,
        clock: Callable[[], float] = time.time,
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        lease_seconds: float = 30.0,
        breaker: CircuitBreakers | None = None,
        on_call: CallHook | None = None,
        on_reconcile: ReconcileHook | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_attempts < 1 or lease_seconds <= 0 or backoff_base < 0 or backoff_max < 0:
            raise ValueError("outbox needs max_attempts >= 1, lease_seconds > 0 and backoff >= 0")
        self.writer = writer
        self.engine = writer.engine
        self.ledger = writer.ledger
        self.connectors = connectors
        self.clock = clock
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.lease_seconds = lease_seconds
        self.breaker = breaker if breaker is not None else CircuitBreakers(failures=5, cooldown=60.0)
        self.on_call = on_call
        self.on_reconcile = on_reconcile
        self.rng = rng if rng is not None else random.Random()

    def open_breakers(self) -> dict[str, bool]:
        """{connector: True while its breaker refuses calls (open or half-open)} for metrics."""
        return {name: state != "closed" for name, state in self.breaker.states().items()}

    # -- pending ─► running -------------------------------------------------------------------

    def claim(self, limit: int, *, decision_id: str | None = None) -> list[Claim]:
        """Lease up to `limit` due executions (only `decision_id`'s when given)."""
        now = self.clock()
        with self.engine.begin() as conn:
            return take_due(conn, limit, now=now, lease_until=now + self.lease_seconds, decision_id=decision_id)

    def recover_in_flight(self) -> int:
        """Make every running row claimable now (its lease ends now); returns how many.

        Only safe when this is the only process running executions (start-up of a single
        gateway): it would also take over rows another live process is running. With several
        processes, rely on lease expiry instead."""
        with self.engine.begin() as conn:
            return expire_leases(conn, self.clock())

    # -- running ─► the gates, the call, an outcome -----------------------------------------------

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
        return self._stored(decision_id)

    def run_now(self, claim: Claim) -> Decision | None:
        """Run a claim the caller took in its own transaction (`enqueue(..., lease_until=)`);
        returns the decision as stored afterwards. A failure to record is logged and leaves the
        row to lease expiry, like `run_due`."""
        try:
            _outcome, stored = self._run(claim)
        except Exception:
            log.exception("execution of %s could not be recorded; it will be re-driven", claim.decision_id)
            stored = None
        return stored if stored is not None else self._stored(claim.decision_id)

    async def run_now_async(self, claim: Claim, decision: Decision) -> Decision:
        """`run_now` for the event loop, given the decision as the caller recorded it: the
        connector is awaited (`Registry.execute_async`: on a thread unless the connector can be
        awaited) and a success is recorded as staged work with the log writer's next batch, so
        no thread waits on the request's behalf. The answer waits for that commit: what an
        agent is told is what the log holds. Anything but a plain success (the kill switch, an
        open breaker, an error) takes `run_now`'s path on a thread."""
        loop = asyncio.get_running_loop()
        if self.writer.kill_switch.engaged or not self.breaker.allow(claim.connector):
            return await loop.run_in_executor(None, self._run_now_or_stored, claim, decision)
        started = time.monotonic()
        try:
            result = await self._call_async(claim)
        except Exception as exc:
            return await loop.run_in_executor(None, self._after_error, claim, exc, started, decision)
        self.breaker.record_success(claim.connector)
        seconds = time.monotonic() - started
        try:
            stored = await self.writer.stage_async(self._success_work(claim, result, decision))
        except Exception:
            log.exception("execution of %s could not be recorded; it will be re-driven", claim.decision_id)
            stored = None
        self._report(claim, "succeeded", seconds)
        if stored is None:
            return await loop.run_in_executor(None, self._stored_or, claim.decision_id, decision)
        return stored

    def _run_now_or_stored(self, claim: Claim, decision: Decision) -> Decision:
        return self.run_now(claim) or decision

    def _stored_or(self, decision_id: str, decision: Decision) -> Decision:
        return self._stored(decision_id) or decision

    def _call(self, claim: Claim) -> ExecutionResult:
        return self.connectors.execute(claim.tool, claim.params, idempotency_key=claim.decision_id)

    async def _call_async(self, claim: Claim) -> ExecutionResult:
        awaitable = getattr(self.connectors, "execute_async", None)
        if awaitable is None:
            return await asyncio.to_thread(self._call, claim)
        result: ExecutionResult = await awaitable(claim.tool, claim.params, idempotency_key=claim.decision_id)
        return result

    def _after_error(self, claim: Claim, exc: Exception, started: float, decision: Decision) -> Decision:
        """A failed call, recorded as `_run` records it; returns the decision as stored."""
        try:
            self._failed_call(claim, exc, started)
        except Exception:
            log.exception("execution of %s could not be recorded; it will be re-driven", claim.decision_id)
        return self._stored_or(claim.decision_id, decision)

    def run_claim(self, claim: Claim) -> Outcome:
        """Run one claim: gates, the connector call, the recorded outcome. Returns the outcome."""
        return self._run(claim)[0]

    def _run(self, claim: Claim) -> tuple[Outcome, Decision | None]:
        """`run_claim`, with the decision as a success stored it (None for any other outcome)."""
        if self._kill_switch_engaged():
            self._release(claim, self.clock() + KILL_SWITCH_RETRY_SECONDS, "kill switch engaged")
            return self._report(claim, "kill_switch", 0.0), None
        if not self.breaker.allow(claim.connector):
            wait = max(self.breaker.retry_in(claim.connector), BREAKER_MIN_WAIT_SECONDS)
            self._release(claim, self.clock() + wait, f"circuit breaker for {claim.connector} is open")
            return self._report(claim, "breaker_open", 0.0), None
        started = time.monotonic()
        if claim.reconcile and hasattr(self.connectors, "reconcile"):
            settled = self._reconcile(claim, started)
            if settled is not None:
                return settled
        try:
            result = self._call(claim)
        except Exception as exc:
            return self._failed_call(claim, exc, started), None
        return self._succeeded(claim, result, started)

    def _succeeded(self, claim: Claim, result: ExecutionResult, started: float) -> tuple[Outcome, Decision | None]:
        self.breaker.record_success(claim.connector)
        seconds = time.monotonic() - started
        stored = self.writer.run_staged(self._success_work(claim, result, None))
        return self._report(claim, "succeeded", seconds), stored

    def _reconcile(self, claim: Claim, started: float) -> tuple[Outcome, Decision | None] | None:
        """The previous attempt's outcome is unknown: ask the provider. Returns the settled
        outcome (found: succeeded without a call; failed; or retried while it cannot tell), or
        None when the provider shows no effect and the call is to be sent."""
        assert isinstance(self.connectors, Reconciles)
        try:
            found = self.connectors.reconcile(claim.tool, claim.params, idempotency_key=claim.decision_id,
                                              first_attempt_at=claim.first_attempt_at or self.clock())
        except Exception as exc:
            self._reconciled(claim, "error")
            if not isinstance(exc, PermanentError) or exc.code in _UNRESOLVED_CODES:
                exc = UnknownOutcomeError(f"reconciliation failed: {ExecutionError.of(exc).message}",
                                          code=getattr(exc, "code", "outcome_unknown"),
                                          retry_after=getattr(exc, "retry_after", None))
            return self._failed_call(claim, exc, started), None
        if found is not None:
            self._reconciled(claim, "found")
            return self._succeeded(claim, found, started)
        self._reconciled(claim, "not_found")
        if not self._none_found(claim):
            return self._report(claim, "lease_lost", 0.0), None
        return None

    def _reconciled(self, claim: Claim, result: str) -> None:
        if self.on_reconcile is not None:
            try:
                self.on_reconcile(claim.connector, claim.tool, result)
            except Exception:
                log.exception("the outbox's on_reconcile hook failed")

    def _none_found(self, claim: Claim) -> bool:
        """Reconciliation found no effect: a `reconciliation` entry, and the row no longer
        unknown, its lease renewed for the call about to be sent. False if the lease was lost."""
        now = self.clock()
        moved = False

        def unit(conn: Connection) -> None:
            nonlocal moved
            moved = _move(conn, claim, _RECONCILED_NONE, now, lease=now + self.lease_seconds)
            if moved:
                self.ledger.append(conn, "reconciliation", "warden", claim.decision_id, {
                    "decision_id": claim.decision_id, "tool": claim.tool, "attempts": claim.attempts,
                    "found": False, "idempotency_key": claim.decision_id,
                })

        self.writer.run(unit)
        log.info("execution of %s: the provider shows no effect; sending it (attempt %d)",
                 claim.decision_id, claim.attempts)
        return moved

    def _failed_call(self, claim: Claim, exc: Exception, started: float) -> Outcome:
        """Record a call that raised: failed for good (a permanent error, or no attempts left)
        or retried after a backoff, reconciled first when its outcome is unknown."""
        if isinstance(exc, PermanentError):
            self.breaker.record_success(claim.connector)  # it answered: the system is up
            seconds = time.monotonic() - started
            conflict = isinstance(exc, IdempotencyConflictError)
            self._fail(claim, exc, incident="idempotency_conflict" if conflict else "connector_failure")
            return self._report(claim, "idempotency_conflict" if conflict else "permanent_error", seconds)
        # TransientError, an unknown outcome, anything unexpected (it may have failed after the
        # request left: reconciled, like an unknown outcome)
        unknown = isinstance(exc, UnknownOutcomeError) or not isinstance(exc, ConnectorError)
        self.breaker.record_failure(claim.connector)
        seconds = time.monotonic() - started
        if claim.attempts >= self.max_attempts:
            self._fail(claim, exc, incident="execution_unresolved" if unknown else "connector_failure")
        else:
            self._retry(claim, exc, unknown=unknown)
        return self._report(claim, "unknown_outcome" if unknown else "transient_error", seconds)

    # -- the outcomes: one unit of work each ----------------------------------------------------

    def _release(self, claim: Claim, next_attempt_at: float, why: str) -> None:
        """running ─► pending, the attempt not counted: a gate refused the call."""
        self.writer.run(lambda conn: _move(conn, claim, _RELEASE, self.clock(),
                                           new_attempts=claim.attempts - 1, new_next=next_attempt_at))
        log.info("execution of %s held back: %s", claim.decision_id, why)

    def _retry(self, claim: Claim, exc: Exception, *, unknown: bool = False) -> None:
        """running ─► pending after a backoff; the decision stays "executing" and shows the error;
        an `execution` entry records the attempt. `unknown`: the next claim reconciles first."""
        now = self.clock()
        error = ExecutionError.of(exc)
        retry_after = exc.retry_after if isinstance(exc, TransientError) else None
        delay = backoff_delay(claim.attempts, base=self.backoff_base, cap=self.backoff_max,
                              retry_after=retry_after, rng=self.rng)
        state = "unknown" if unknown else "retrying"

        def unit(conn: Connection) -> None:
            decision = load_decision(conn, claim.decision_id, for_update=True)  # the decision, then the row
            if _move(conn, claim, _RETRY, now, new_next=now + delay, new_error=str(error), new_unknown=int(unknown)):
                _update_decision(conn, decision, "executing", {
                    "state": state, "attempts": claim.attempts, "last_error": error.to_json(),
                    "next_attempt_at": iso_time(now + delay),
                }, now)
                self.ledger.append(conn, "execution", "warden", claim.decision_id, {
                    "decision_id": claim.decision_id, "tool": claim.tool, "outcome": state,
                    "error": error.to_json(), "attempts": claim.attempts,
                    "next_attempt_at": iso_time(now + delay), "idempotency_key": claim.decision_id,
                })

        self.writer.run(unit)
        log.info("execution of %s %s (attempt %d, %s); retrying in %.2fs", claim.decision_id,
                 "has an unknown outcome" if unknown else "failed", claim.attempts, error.code, delay)

    def _success_work(self, claim: Claim, result: ExecutionResult,
                      decision: Decision | None) -> Callable[[Batch], Decision | None]:
        """running ─► succeeded; the decision "executed"; an `execution` entry: staged work for
        the log writer, serialised here, before it. Its result is the decision as stored (None
        when the lease was lost or the decision has no row). `decision` is the decision as the
        request path recorded it (None: read it in the batch)."""
        now = self.clock()
        summary = dict(result.summary)
        document = dumps({"external_id": result.external_id, "summary": summary, "replayed": result.replayed})
        execution = {
            "state": "succeeded", "external_id": result.external_id, "summary": summary,
            "attempts": claim.attempts, "idempotency_key": claim.decision_id, "executed_at": iso_time(now),
        }
        entry = EntryData.of({
            "decision_id": claim.decision_id, "tool": claim.tool, "outcome": "succeeded",
            "external_id": result.external_id, "summary": summary, "attempts": claim.attempts,
            "idempotency_key": claim.decision_id, **({"reconciled": True} if result.reconciled else {}),
        })
        found = EntryData.of({
            "decision_id": claim.decision_id, "tool": claim.tool, "attempts": claim.attempts, "found": True,
            "external_id": result.external_id, "idempotency_key": claim.decision_id,
        }) if result.reconciled else None
        if result.reconciled:
            execution["reconciled"] = True
        settled = None if decision is None else _settled(decision, "executed", execution)

        def work(batch: Batch) -> Decision | None:
            if not batch.guard(_SUCCEED_STAGED, (document, now, claim.decision_id, claim.attempts)):
                _lost_lease(claim)
                return None
            changed = settled
            if changed is None:
                row = batch.execute(SELECT_DECISION, (claim.decision_id,)).fetchone()
                if row is None:
                    log.error("execution of a decision that has no row: %s", execution)
                    return None
                changed = _settled(Decision.model_validate_json(row[0]), "executed", execution)
            batch.queue(UPDATE_SETTLED, (changed.status, changed.model_dump_json(), now, claim.decision_id))
            if found is not None:
                batch.append("reconciliation", "warden", claim.decision_id, found)
            batch.append("execution", "warden", claim.decision_id, entry)
            return changed

        return work

    def _fail(self, claim: Claim, exc: Exception, *, incident: str = "connector_failure") -> None:
        """running ─► failed; the decision "failed"; an `execution` entry; an incident of the
        given kind (`execution_unresolved`: whether the action took effect is still unknown)."""
        error = ExecutionError.of(exc)
        unresolved = incident == "execution_unresolved"
        summary = (f"{claim.tool}: outcome still unknown after {claim.attempts} attempt(s) ({error.code}); check the "
                   f"provider for idempotency key {claim.decision_id}" if unresolved else
                   f"{claim.tool} failed after {claim.attempts} attempt(s): {error.code}")

        def unit(conn: Connection) -> None:
            now = self.clock()
            decision = load_decision(conn, claim.decision_id, for_update=True)
            if not _move(conn, claim, _FAIL, now, new_error=str(error)):
                return
            extra = {"unresolved": True} if unresolved else {}
            _update_decision(conn, decision, "failed",
                             {"state": "failed", "error": error.to_json(), "attempts": claim.attempts, **extra}, now)
            self.ledger.append(conn, "execution", "warden", claim.decision_id, {
                "decision_id": claim.decision_id, "tool": claim.tool, "outcome": "failed",
                "error": error.to_json(), "attempts": claim.attempts, "idempotency_key": claim.decision_id, **extra,
            })
            record_incident(
                conn, self.ledger, kind=incident, summary=summary,
                detail={"tool": claim.tool, "error": error.to_json(), "attempts": claim.attempts},
                now=now, agent=conn.execute(_AGENT, {"id": claim.decision_id}).scalar_one_or_none(),
                decision_id=claim.decision_id,
            )

        self.writer.run(unit)
        log.warning("execution of %s failed for good: %s", claim.decision_id, error.code)

    # -- reads and reports ----------------------------------------------------------------------

    def _kill_switch_engaged(self) -> bool:
        with self.engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                return read_kill_switch(conn).engaged

    def _stored(self, decision_id: str) -> Decision | None:
        with self.engine.connect() as conn:
            read_only(conn)
            with conn.begin():
                return load_decision(conn, decision_id)

    def _report(self, claim: Claim, outcome: Outcome, seconds: float) -> Outcome:
        if self.on_call is not None:
            try:
                self.on_call(claim.connector, claim.tool, outcome, seconds)
            except Exception:
                log.exception("the outbox's on_call hook failed")
        return outcome


def _move(conn: Connection, claim: Claim, statement: Update, now: float, **values: Any) -> bool:
    """Apply an outcome's statement; False, with nothing written, when the lease was lost (the
    row was claimed again elsewhere)."""
    done = conn.execute(statement, {"claim_id": claim.decision_id, "claim_attempts": claim.attempts,
                                    "now": now, **values})
    if done.rowcount != 1:
        _lost_lease(claim)
        return False
    return True


def _lost_lease(claim: Claim) -> None:
    log.warning("execution %s was re-driven elsewhere; attempt %d records nothing", claim.decision_id, claim.attempts)


def _settled(decision: Decision, status: str, execution: dict[str, Any]) -> Decision:
    return decision.model_copy(update={"status": status, "execution": execution})


def _update_decision(
    conn: Connection, decision: Decision | None, status: str, execution: dict[str, Any], now: float
) -> Decision | None:
    """The decision with its new status and execution document, written back to its row."""
    if decision is None:
        log.error("execution of a decision that has no row: %s", execution)
        return None
    changed = _settled(decision, status, execution)
    store_decision_update(conn, changed, now=now)
    return changed


def iso_time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


__all__ = ["Claim", "ExecutionError", "Outbox", "Outcome", "enqueue", "stage_enqueue"]
