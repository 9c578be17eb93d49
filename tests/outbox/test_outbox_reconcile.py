"""Executions whose outcome is unknown (a timeout, a connection dropped after the request left):
reconciled with the provider before anything is sent again, each step in the audit log, and
never retried forever."""

from __future__ import annotations

from typing import Any

import pytest
from outbox_support import (
    FakeClock,
    ReconcilingConnector,
    TopOfRange,
    add_decision,
    audit_entries,
    execution_row,
    incident_rows,
    stored_decision,
)
from sqlalchemy import Engine

from connectors.base import IdempotencyConflictError, PermanentError, TransientError, UnknownOutcomeError
from gateway.execution.outbox import Outbox
from gateway.store.writer import Writer
from ledger.store import Ledger


@pytest.fixture
def provider() -> ReconcilingConnector:
    return ReconcilingConnector()


def make_outbox(engine: Engine, connector: ReconcilingConnector, clock: FakeClock, **options: Any) -> Outbox:
    options.setdefault("rng", TopOfRange())
    seen: list[tuple[str, str, str]] = []
    outbox = Outbox(Writer(engine, Ledger()), connector, clock=clock,
                    on_reconcile=lambda *args: seen.append(args), **options)
    outbox.reconciliations = seen  # type: ignore[attr-defined]
    return outbox


def _outcomes(engine: Engine) -> list[tuple[str, Any]]:
    return [(e.kind, e.data.get("outcome", e.data.get("found"))) for e in audit_entries(engine)]


def test_an_answer_lost_after_the_effect_is_found_and_not_sent_again(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    provider.act_then_fail(decision_id, UnknownOutcomeError("connection dropped after the request was sent"))
    outbox = make_outbox(engine, provider, clock)
    assert outbox.run_due() == 1
    assert execution_row(engine, decision_id).outcome_unknown == 1
    execution = stored_decision(engine, decision_id).execution
    assert execution is not None and execution["state"] == "unknown"
    assert execution["last_error"]["code"] == "outcome_unknown"
    clock.advance(60)
    assert outbox.run_due() == 1
    assert provider.keys_called() == [decision_id]  # one call: the second attempt only asked
    assert provider.reconciled == [decision_id]
    decision = stored_decision(engine, decision_id)
    assert decision.status == "executed" and decision.execution is not None
    assert decision.execution["reconciled"] is True and decision.execution["attempts"] == 2
    assert _outcomes(engine) == [("execution", "unknown"), ("reconciliation", True), ("execution", "succeeded")]
    assert outbox.reconciliations == [("stripe", "stripe.refund", "found")]  # type: ignore[attr-defined]
    assert execution_row(engine, decision_id).outcome_unknown == 0


def test_no_effect_at_the_provider_means_the_call_is_sent(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    provider.fail(decision_id, UnknownOutcomeError("no answer within 30 s", code="timeout"))
    outbox = make_outbox(engine, provider, clock)
    outbox.run_due()
    clock.advance(60)
    outbox.run_due()
    assert provider.keys_called() == [decision_id, decision_id]
    assert stored_decision(engine, decision_id).status == "executed"
    assert _outcomes(engine) == [("execution", "unknown"), ("reconciliation", False), ("execution", "succeeded")]


def test_a_reconciliation_that_cannot_tell_keeps_the_outcome_unknown(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    provider.act_then_fail(decision_id, UnknownOutcomeError("read timed out"))
    provider.reconcile_errors[decision_id] = [TransientError("503 from the provider", code="provider_error"),
                                              PermanentError("key revoked", code="credentials_refused")]
    outbox = make_outbox(engine, provider, clock)
    for _ in range(3):
        outbox.run_due()
        assert execution_row(engine, decision_id).outcome_unknown == 1
        clock.advance(120)
    outbox.run_due()
    assert provider.keys_called() == [decision_id]  # never sent again while unknown
    assert stored_decision(engine, decision_id).status == "executed"
    assert [r for *_, r in outbox.reconciliations] == ["error", "error", "found"]  # type: ignore[attr-defined]


def test_a_refusal_replayed_by_the_provider_settles_it_as_failed(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    provider.fail(decision_id, UnknownOutcomeError("read timed out"))
    provider.reconcile_errors[decision_id] = [PermanentError("Your card was declined.", code="card_declined")]
    outbox = make_outbox(engine, provider, clock)
    outbox.run_due()
    clock.advance(60)
    outbox.run_due()
    decision = stored_decision(engine, decision_id)
    assert decision.status == "failed" and decision.execution is not None
    assert decision.execution["error"]["code"] == "card_declined"
    assert [row.kind for row in incident_rows(engine)] == ["connector_failure"]


def test_an_outcome_still_unknown_at_the_last_attempt_fails_with_an_incident(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock(), agent="refund-bot")
    provider.always = UnknownOutcomeError("read timed out", code="timeout")
    outbox = make_outbox(engine, provider, clock, max_attempts=3, breaker=None)
    for _ in range(5):
        outbox.run_due()
        clock.advance(600)
    assert len(provider.reconciled) == 2 and len(provider.keys_called()) == 3
    decision = stored_decision(engine, decision_id)
    assert decision.status == "failed" and decision.execution is not None
    assert decision.execution["unresolved"] is True
    [incident] = incident_rows(engine)
    assert (incident.kind, incident.agent) == ("execution_unresolved", "refund-bot")
    assert decision_id in incident.summary and "unknown" in incident.summary
    assert execution_row(engine, decision_id).state == "failed"
    assert outbox.run_due() == 0  # never retried forever


def test_an_idempotency_conflict_fails_with_an_incident_of_its_own(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    provider.fail(decision_id, IdempotencyConflictError("Keys for idempotent requests can only be used with the "
                                                        "same parameters they were first used with."))
    make_outbox(engine, provider, clock).run_due()
    decision = stored_decision(engine, decision_id)
    assert decision.status == "failed" and decision.execution is not None
    assert decision.execution["error"]["code"] == "idempotency_conflict"
    assert [row.kind for row in incident_rows(engine)] == ["idempotency_conflict"]


def test_an_unexpected_error_is_treated_as_an_unknown_outcome(
    engine: Engine, provider: ReconcilingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    provider.act_then_fail(decision_id, KeyError("id"))  # the answer could not be read
    outbox = make_outbox(engine, provider, clock)
    outbox.run_due()
    assert execution_row(engine, decision_id).outcome_unknown == 1
    clock.advance(60)
    outbox.run_due()
    assert provider.keys_called() == [decision_id]
    assert stored_decision(engine, decision_id).status == "executed"
