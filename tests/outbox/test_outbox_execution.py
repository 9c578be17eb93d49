"""Running an allowed decision through its connector: success, retries, failures, and what is
recorded for each (the outbox row, the decision, the audit entry, the incident)."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from outbox_support import (
    FakeClock,
    RecordingConnector,
    TopOfRange,
    add_decision,
    audit_entries,
    execution_row,
    incident_rows,
    stored_decision,
)
from sqlalchemy import Engine, select

from connectors.base import PermanentError, TransientError
from gateway.execution.outbox import Outbox
from gateway.store.writer import Writer
from ledger.checkpointer import CheckpointPolicy, Checkpointer
from ledger.note import generate_key
from ledger.schema import checkpoints
from ledger.store import Ledger


def make_outbox(engine: Engine, connector: RecordingConnector, clock: FakeClock, **options: Any) -> Outbox:
    options.setdefault("rng", TopOfRange())
    return Outbox(Writer(engine, Ledger()), connector, clock=clock, **options)


def test_success_records_row_decision_and_audit_entry(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock(), params={"charge": "ch_9", "amount": 4200, "currency": "usd"})
    outbox = make_outbox(engine, connector, clock)
    assert outbox.run_due() == 1
    assert connector.calls == [("stripe.refund", {"charge": "ch_9", "amount": 4200, "currency": "usd"}, decision_id)]
    row = execution_row(engine, decision_id)
    assert (row.state, row.attempts, row.lease_until, row.error) == ("succeeded", 1, None, None)
    assert json.loads(row.result) == {"external_id": "re_0001", "summary": {"tool": "stripe.refund", "amount": 4200}, "replayed": False}
    decision = stored_decision(engine, decision_id)
    assert decision.status == "executed"
    assert decision.execution == {
        "state": "succeeded", "external_id": "re_0001", "summary": {"tool": "stripe.refund", "amount": 4200},
        "attempts": 1, "idempotency_key": decision_id, "executed_at": "2025-06-15T15:06:40.000Z",
    }
    [entry] = audit_entries(engine)
    assert (entry.kind, entry.actor, entry.subject) == ("execution", "warden", decision_id)
    assert entry.data == {
        "decision_id": decision_id, "tool": "stripe.refund", "outcome": "succeeded", "external_id": "re_0001",
        "summary": {"tool": "stripe.refund", "amount": 4200}, "attempts": 1, "idempotency_key": decision_id,
    }
    assert outbox.run_due() == 0  # nothing left: the action ran once
    assert len(connector.calls) == 1


def test_execute_now_runs_only_that_decision(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    other = add_decision(engine, clock())
    mine = add_decision(engine, clock())
    outbox = make_outbox(engine, connector, clock)
    decision = outbox.execute_now(mine)
    assert decision is not None and decision.status == "executed"
    assert decision.execution is not None and decision.execution["idempotency_key"] == mine
    assert connector.keys_called() == [mine]
    assert execution_row(engine, other).state == "pending"
    assert outbox.execute_now("dec_missing") is None


def test_transient_failures_back_off_then_succeed(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock())
    connector.fail(decision_id, TransientError("upstream 503"), TransientError("upstream 503"), TimeoutError("read timed out"))
    outbox = make_outbox(engine, connector, clock, backoff_base=0.5, backoff_max=60.0)
    for attempt, delay in [(1, 0.5), (2, 1.0), (3, 2.0)]:
        started = clock()
        assert outbox.run_due() == 1
        row = execution_row(engine, decision_id)
        assert (row.state, row.attempts) == ("pending", attempt)
        assert row.next_attempt_at == pytest.approx(started + delay)
        decision = stored_decision(engine, decision_id)
        assert decision.status == "executing"
        # a timeout may have left after the request: its outcome is unknown (reconciled first)
        state = "unknown" if attempt == 3 else "retrying"
        assert decision.execution is not None and decision.execution["state"] == state
        assert decision.execution["attempts"] == attempt
        assert execution_row(engine, decision_id).outcome_unknown == (attempt == 3)
        clock.advance(delay / 2)
        assert outbox.run_due() == 0, "retried before its backoff ended"
        clock.advance(delay / 2)
    last_error = stored_decision(engine, decision_id).execution["last_error"]  # type: ignore[index]
    assert last_error == {"code": "timeout", "message": "TimeoutError: read timed out"}
    assert outbox.run_due() == 1
    assert stored_decision(engine, decision_id).status == "executed"
    assert execution_row(engine, decision_id).attempts == 4
    assert connector.keys_called() == [decision_id] * 4
    # every attempt is in the audit log, not only the last
    assert [e.data["outcome"] for e in audit_entries(engine)] == ["retrying", "retrying", "unknown", "succeeded"]
    assert execution_row(engine, decision_id).outcome_unknown == 0


def test_retry_error_is_recorded_on_the_decision(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock())
    connector.fail(decision_id, TransientError("Stripe answered 429", code="rate_limited"))
    make_outbox(engine, connector, clock).run_due()
    execution = stored_decision(engine, decision_id).execution
    assert execution == {
        "state": "retrying", "attempts": 1,
        "last_error": {"code": "rate_limited", "message": "Stripe answered 429"},
        "next_attempt_at": "2025-06-15T15:06:40.500Z",
    }
    assert execution_row(engine, decision_id).error == "rate_limited: Stripe answered 429"


def test_retry_after_is_honoured(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock())
    connector.fail(decision_id, TransientError("slow down", code="rate_limited", retry_after=30.0))
    outbox = make_outbox(engine, connector, clock)
    outbox.run_due()
    assert execution_row(engine, decision_id).next_attempt_at == clock() + 30.0
    clock.advance(29.9)
    assert outbox.run_due() == 0
    clock.advance(0.1)
    assert outbox.run_due() == 1
    assert stored_decision(engine, decision_id).status == "executed"


def test_attempts_exhausted_fail_with_incident_and_audit_entry(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock(), agent="refund-bot")
    connector.always = TransientError("upstream 502", code="bad_gateway")
    outbox = make_outbox(engine, connector, clock, max_attempts=3, breaker=None)
    for _ in range(3):
        assert outbox.run_due() == 1
        clock.advance(60)
    assert outbox.run_due() == 0
    assert connector.keys_called() == [decision_id] * 3
    row = execution_row(engine, decision_id)
    assert (row.state, row.attempts, row.error) == ("failed", 3, "bad_gateway: upstream 502")
    decision = stored_decision(engine, decision_id)
    assert decision.status == "failed"
    assert decision.execution == {"state": "failed", "error": {"code": "bad_gateway", "message": "upstream 502"}, "attempts": 3}
    *retries, execution, incident = audit_entries(engine)
    assert [(e.kind, e.data["outcome"], e.data["attempts"]) for e in retries] == [
        ("execution", "retrying", 1), ("execution", "retrying", 2)]
    assert execution.kind == "execution" and execution.data["outcome"] == "failed"
    assert execution.data["error"] == {"code": "bad_gateway", "message": "upstream 502"}
    assert execution.data["attempts"] == 3 and execution.data["idempotency_key"] == decision_id
    assert incident.kind == "incident" and incident.data["kind"] == "connector_failure"
    [row] = incident_rows(engine)
    assert (row.kind, row.agent, row.decision_id, row.audit_seq) == ("connector_failure", "refund-bot", decision_id, incident.seq)


def test_permanent_error_fails_at_once(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock())
    connector.fail(decision_id, PermanentError("charge ch_1 was already refunded", code="charge_already_refunded"))
    outbox = make_outbox(engine, connector, clock)
    assert outbox.run_due() == 1
    clock.advance(3600)
    assert outbox.run_due() == 0
    assert connector.keys_called() == [decision_id]
    decision = stored_decision(engine, decision_id)
    assert decision.status == "failed"
    assert decision.execution == {
        "state": "failed", "attempts": 1,
        "error": {"code": "charge_already_refunded", "message": "charge ch_1 was already refunded"},
    }
    assert [e.kind for e in audit_entries(engine)] == ["execution", "incident"]
    assert len(incident_rows(engine)) == 1


def test_hook_sees_each_call_and_its_failures_change_nothing(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    seen: list[tuple[str, str, str]] = []

    def hook(connector_name: str, tool: str, outcome: str, seconds: float) -> None:
        seen.append((connector_name, tool, outcome))
        assert seconds >= 0
        raise RuntimeError("metrics backend down")

    first = add_decision(engine, clock())
    connector.fail(first, TransientError("503"))
    outbox = make_outbox(engine, connector, clock, on_call=hook)
    outbox.run_due()
    clock.advance(1)
    outbox.run_due()
    assert seen == [("stripe", "stripe.refund", "transient_error"), ("stripe", "stripe.refund", "succeeded")]
    assert stored_decision(engine, first).status == "executed"


def test_recording_transaction_signs_checkpoints(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    checkpointer = Checkpointer(generate_key("warden.test/log"), CheckpointPolicy(every_entries=1))
    add_decision(engine, clock())
    outbox = Outbox(Writer(engine, Ledger(), checkpointer=checkpointer), connector, clock=clock, rng=TopOfRange())
    outbox.run_due()
    with engine.connect() as conn:
        assert conn.execute(select(checkpoints.c.size)).scalars().all() == [1]


def test_real_rng_keeps_retries_within_the_bound(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock())
    connector.fail(decision_id, *[TransientError("503") for _ in range(4)])  # 5 would open the breaker
    outbox = make_outbox(engine, connector, clock, rng=random.Random(3), backoff_base=1.0, backoff_max=4.0)
    for attempt in range(1, 5):
        started = clock()
        outbox.run_due()
        wait = execution_row(engine, decision_id).next_attempt_at - started
        assert 0 <= wait <= min(4.0, 2 ** (attempt - 1))
        clock.advance(4.0)
    outbox.run_due()
    assert stored_decision(engine, decision_id).status == "executed"
