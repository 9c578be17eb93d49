"""A connector with real behaviour for the outbox tests, a clock the test moves, and helpers that
write decisions the way the pipeline does (decision row + outbox row in one transaction).

`RecordingConnector` implements `connectors.base.Connector`: it records every call, carries out
each idempotency key once (a second call with the key answers the first result, `replayed=True`)
and raises the failures a test scripts for a key, or for every call.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, Row, insert, select

from connectors.base import ExecutionResult, ToolSpec
from gateway.engine.models import Decision
from gateway.execution.outbox import enqueue
from gateway.store.records import load_decision, new_decision_id
from gateway.store.schema import decisions, executions, incidents, upgrade
from ledger.database import make_engine
from ledger.entry import Entry, decode_entry
from ledger.store import Ledger

START = 1_750_000_000.0


class FakeClock:
    """UNIX seconds that move only when the test says so."""

    def __init__(self, start: float = START) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingConnector:
    name = "stripe"
    mode = "sandbox"
    tools: tuple[ToolSpec, ...] = ()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any], str]] = []  # every call, in order
        self.performed: dict[str, ExecutionResult] = {}  # idempotency key -> first result
        self.scripted: dict[str, list[Exception]] = {}
        self.always: Exception | None = None

    def fail(self, key: str, *errors: Exception) -> None:
        """The next calls with `key` raise `errors`, one each, before it succeeds."""
        self.scripted.setdefault(key, []).extend(errors)

    def execute(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult:
        with self._lock:
            self.calls.append((tool, dict(params), idempotency_key))
            if idempotency_key in self.performed:
                return dataclasses.replace(self.performed[idempotency_key], replayed=True)
            queue = self.scripted.get(idempotency_key)
            if queue:
                raise queue.pop(0)
            if self.always is not None:
                raise self.always
            result = ExecutionResult(
                external_id=f"re_{len(self.performed) + 1:04d}",
                summary={"tool": tool, "amount": params.get("amount")},
            )
            self.performed[idempotency_key] = result
            return result

    def keys_called(self) -> list[str]:
        with self._lock:
            return [key for _tool, _params, key in self.calls]


def migrated_engine(url: str) -> Engine:
    engine = make_engine(url)
    upgrade(engine)
    return engine


def add_decision(
    engine: Engine,
    now: float,
    *,
    tool: str = "stripe.refund",
    params: Mapping[str, Any] | None = None,
    agent: str = "refund-bot",
) -> str:
    """An allowed decision (status "executing") and its queued execution, as the pipeline writes them."""
    decision_id = new_decision_id()
    params = dict(params or {"charge": "ch_1", "amount": 1200, "currency": "usd"})
    decision = Decision(
        decision_id=decision_id, packet_id=f"p-{decision_id}", status="executing", risk="L1",
        autonomy="A2", policy_digest="sha256:" + "0" * 64,
    )
    with engine.begin() as conn:
        conn.execute(
            insert(decisions).values(
                decision_id=decision_id, agent=agent, packet_id=decision.packet_id,
                packet_hash="sha256:" + "1" * 64, tool=tool, status="executing", risk=1,
                policy_digest=decision.policy_digest, packet="{}", decision=decision.model_dump_json(),
                created_at=now, updated_at=now,
            )
        )
        enqueue(conn, decision_id=decision_id, tool=tool, params=params, now=now)
    return decision_id


def execution_row(engine: Engine, decision_id: str) -> Row[Any]:
    with engine.connect() as conn:
        return conn.execute(select(executions).where(executions.c.decision_id == decision_id)).one()


def stored_decision(engine: Engine, decision_id: str) -> Decision:
    with engine.connect() as conn:
        decision = load_decision(conn, decision_id)
    assert decision is not None
    return decision


def audit_entries(engine: Engine, kind: str | None = None) -> list[Entry]:
    with engine.connect() as conn:
        entries = [decode_entry(body) for body in Ledger().iter_entries(conn)]
    return [e for e in entries if kind is None or e.kind == kind]


def incident_rows(engine: Engine) -> list[Row[Any]]:
    with engine.connect() as conn:
        return list(conn.execute(select(incidents).order_by(incidents.c.id)).all())


class TopOfRange:
    """An rng for the backoff whose "random" draw is always the top of the range, so the tests
    can name the exact delays (0.5 s, 1 s, 2 s, ...)."""

    def uniform(self, low: float, high: float) -> float:
        return high


class ReconcilingConnector(RecordingConnector):
    """A connector that can also say what it holds for a key (`reconcile`), and can act and
    then lose its answer (`act_then_fail`), as a provider whose answer never arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.lost_answers: dict[str, list[Exception]] = {}
        self.reconcile_errors: dict[str, list[Exception]] = {}
        self.reconciled: list[str] = []

    def act_then_fail(self, key: str, *errors: Exception) -> None:
        """The next calls with `key` take effect, then raise `errors` (the answer is lost)."""
        self.lost_answers.setdefault(key, []).extend(errors)

    def execute(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str) -> ExecutionResult:
        result = super().execute(tool, params, idempotency_key=idempotency_key)
        with self._lock:
            queue = self.lost_answers.get(idempotency_key)
            if queue:
                raise queue.pop(0)
        return result

    def reconcile(self, tool: str, params: Mapping[str, Any], *, idempotency_key: str,
                  first_attempt_at: float) -> ExecutionResult | None:
        with self._lock:
            self.reconciled.append(idempotency_key)
            queue = self.reconcile_errors.get(idempotency_key)
            if queue:
                raise queue.pop(0)
            found = self.performed.get(idempotency_key)
        return None if found is None else dataclasses.replace(found, reconciled=True)
