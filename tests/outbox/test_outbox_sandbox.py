"""The outbox against the shipped sandbox connectors (`build_registry("sandbox")`): their durable
call ledger shows each idempotency key executed once, through retries and a crash re-drive."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from outbox_support import FakeClock, TopOfRange, add_decision, audit_entries, execution_row, stored_decision
from sqlalchemy import Engine

from connectors.registry import Registry, build_registry
from gateway.execution.outbox import Outbox
from gateway.store.writer import Writer
from ledger.store import Ledger

REFUND = {"charge": "ch_3PqL0a2eZvKYlo2C", "amount": 1500, "currency": "usd"}


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    registry = build_registry("sandbox", data_dir=tmp_path / "sandbox")
    try:
        yield registry
    finally:
        registry.close()


def test_sandbox_refund_executes_once(engine: Engine, registry: Registry, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock(), params=REFUND)
    decision = Outbox(Writer(engine, Ledger()), registry, clock=clock).execute_now(decision_id)
    assert decision is not None and decision.status == "executed"
    assert decision.execution is not None and registry.call_ledger is not None
    answer = registry.call_ledger.answer(decision_id)
    assert answer is not None and decision.execution["external_id"] == answer.external_id
    assert registry.call_ledger.executions_by_key() == {decision_id: 1}


def test_sandbox_faults_are_retried_honouring_retry_after(engine: Engine, registry: Registry, clock: FakeClock) -> None:
    assert registry.faults is not None
    registry.faults.fail_next("stripe.refund", times=2, kind="transient", retry_after=5.0)
    decision_id = add_decision(engine, clock(), params=REFUND)
    outbox = Outbox(Writer(engine, Ledger()), registry, clock=clock, rng=TopOfRange())
    for _ in range(2):
        started = clock()
        assert outbox.run_due() == 1
        assert execution_row(engine, decision_id).next_attempt_at == started + 5.0
        clock.advance(5.0)
    outbox.run_due()
    assert stored_decision(engine, decision_id).status == "executed"
    assert registry.call_ledger is not None and registry.call_ledger.executions_by_key() == {decision_id: 1}


def test_sandbox_refusal_fails_the_decision(engine: Engine, registry: Registry, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock(), params={**REFUND, "charge": "ch_sandbox_refunded"})
    decision = Outbox(Writer(engine, Ledger()), registry, clock=clock).execute_now(decision_id)
    assert decision is not None and decision.status == "failed"
    assert decision.execution is not None and decision.execution["error"]["code"] == "charge_already_refunded"
    assert [e.kind for e in audit_entries(engine)] == ["execution", "incident"]


def test_crash_redrive_executes_once_in_the_sandbox(engine: Engine, registry: Registry, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock(), params=REFUND)
    [claim] = Outbox(Writer(engine, Ledger()), registry, clock=clock).claim(1)
    first = registry.execute(claim.tool, claim.params, idempotency_key=claim.decision_id)  # then the crash
    clock.advance(31)
    assert Outbox(Writer(engine, Ledger()), registry, clock=clock).run_due() == 1
    assert registry.call_ledger is not None
    # the lease expired while running: the outcome was unknown, and reconciliation found the
    # call in the sandbox's records, so nothing was sent again
    assert registry.call_ledger.count(decision_id) == 1
    assert registry.call_ledger.executions_by_key() == {decision_id: 1}
    decision = stored_decision(engine, decision_id)
    assert decision.execution is not None and decision.execution["external_id"] == first.external_id
    assert decision.execution["reconciled"] is True
    found, execution = audit_entries(engine)
    assert (found.kind, found.data["found"], found.data["external_id"]) == ("reconciliation", True, first.external_id)
    assert (execution.kind, execution.data["outcome"], execution.data["reconciled"]) == ("execution", "succeeded", True)


def test_a_crash_before_the_call_is_reconciled_then_sent_once(engine: Engine, registry: Registry,
                                                              clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock(), params=REFUND)
    Outbox(Writer(engine, Ledger()), registry, clock=clock).claim(1)  # then the crash, before any call
    clock.advance(31)
    assert Outbox(Writer(engine, Ledger()), registry, clock=clock).run_due() == 1
    assert registry.call_ledger is not None and registry.call_ledger.executions_by_key() == {decision_id: 1}
    assert stored_decision(engine, decision_id).status == "executed"
    none_found, execution = audit_entries(engine)
    assert (none_found.kind, none_found.data["found"]) == ("reconciliation", False)
    assert (execution.data["outcome"], execution.data["attempts"]) == ("succeeded", 2)
    assert execution_row(engine, decision_id).outcome_unknown == 0
