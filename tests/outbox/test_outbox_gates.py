"""What stops a call before it reaches the connector: the kill switch and the circuit breaker.
Neither counts as an attempt; both put the row back to be run later."""

from __future__ import annotations

from outbox_support import FakeClock, RecordingConnector, TopOfRange, add_decision, execution_row, stored_decision
from sqlalchemy import Engine

from connectors.base import PermanentError, TransientError
from gateway.execution.breaker import CircuitBreakers
from gateway.store.killswitch import RELEASED, KillSwitch, write_kill_switch
from gateway.execution.outbox import Outbox
from gateway.store.writer import Writer
from ledger.store import Ledger


def set_kill_switch(engine: Engine, state: KillSwitch) -> None:
    with engine.begin() as conn:
        write_kill_switch(conn, state)


def test_kill_switch_holds_every_execution_until_released(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    ids = [add_decision(engine, clock()) for _ in range(3)]
    outcomes: list[str] = []
    outbox = Outbox(Writer(engine, Ledger()), connector, clock=clock, on_call=lambda c, t, outcome, s: outcomes.append(outcome))
    set_kill_switch(engine, KillSwitch(engaged=True, reason="fraud spike", by="founder@example.com", at=clock()))
    assert outbox.run_due() == 0  # the worker claims nothing while engaged
    # A claim taken just before the switch was engaged, and the request path, are held back.
    for decision_id in ids[:2]:
        [claim] = outbox.claim(1, decision_id=decision_id)
        assert outbox.run_claim(claim) == "kill_switch"
    assert outbox.execute_now(ids[2]) is not None
    assert connector.calls == []
    assert outcomes == ["kill_switch"] * 3
    for decision_id in ids:
        row = execution_row(engine, decision_id)
        assert (row.state, row.attempts, row.next_attempt_at) == ("pending", 0, clock() + 1.0)
        assert stored_decision(engine, decision_id).status == "executing"
    clock.advance(5)
    assert outbox.run_due() == 0  # still engaged
    assert connector.calls == []
    set_kill_switch(engine, RELEASED)
    assert outbox.run_due() == 3
    assert sorted(connector.keys_called()) == sorted(ids)
    for decision_id in ids:
        assert execution_row(engine, decision_id).attempts == 1
        assert stored_decision(engine, decision_id).status == "executed"


def test_open_breakers_for_metrics(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    breaker = CircuitBreakers(failures=1, cooldown=60.0, clock=clock)
    outbox = Outbox(Writer(engine, Ledger()), connector, clock=clock, breaker=breaker)
    connector.fail(add_decision(engine, clock(), tool="stripe.refund"), TransientError("503"))
    outbox.execute_now(add_decision(engine, clock(), tool="crm.log_note", params={"record_id": "r", "body": "b"}))
    outbox.run_due()
    assert outbox.open_breakers() == {"crm": False, "stripe": True}
    clock.advance(60)
    assert outbox.open_breakers() == {"crm": False, "stripe": True}  # half-open still refuses most calls


def test_breaker_opens_after_five_failures_and_half_opens_after_cooldown(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    breaker = CircuitBreakers(failures=5, cooldown=60.0, clock=clock)
    outcomes: list[str] = []
    outbox = Outbox(
        Writer(engine, Ledger()), connector, clock=clock, breaker=breaker, rng=TopOfRange(), max_attempts=8,
        on_call=lambda c, t, outcome, s: outcomes.append(outcome),
    )
    ids = [add_decision(engine, clock()) for _ in range(7)]
    connector.always = TransientError("upstream 503")
    assert outbox.run_due() == 7
    assert len(connector.calls) == 5, "calls went through an open breaker"
    assert outcomes == ["transient_error"] * 5 + ["breaker_open"] * 2
    assert breaker.state("stripe") == "open"
    held = [i for i in ids if execution_row(engine, i).attempts == 0]
    assert len(held) == 2
    for decision_id in held:
        row = execution_row(engine, decision_id)
        assert (row.state, row.next_attempt_at) == ("pending", clock() + 60.0)

    clock.advance(30)  # the failed rows are due again, but the breaker is still open
    assert outbox.run_due() == 5
    assert len(connector.calls) == 5

    clock.advance(30)  # half-open: one trial, which fails and re-opens the breaker
    assert breaker.state("stripe") == "half_open"
    assert outbox.run_due() == 7
    assert len(connector.calls) == 6
    assert breaker.state("stripe") == "open"

    clock.advance(60)  # half-open again; the trial succeeds and closes it, the rest go through
    connector.always = None
    outbox.run_due()
    assert breaker.state("stripe") == "closed"
    clock.advance(1)
    outbox.run_due()
    assert all(stored_decision(engine, i).status == "executed" for i in ids)
    assert sorted(connector.performed) == sorted(ids)
    assert max(execution_row(engine, i).attempts for i in ids) <= 3


def test_breaker_is_per_connector(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    breaker = CircuitBreakers(failures=2, cooldown=60.0, clock=clock)
    outbox = Outbox(Writer(engine, Ledger()), connector, clock=clock, breaker=breaker)
    for _ in range(2):
        connector.fail(add_decision(engine, clock(), tool="stripe.refund"), TransientError("503"))
    outbox.run_due()
    assert breaker.states() == {"stripe": "open"}
    note = add_decision(engine, clock(), tool="crm.log_note", params={"record_id": "r1", "body": "hi"})
    outbox.execute_now(note)
    assert stored_decision(engine, note).status == "executed"
    assert breaker.states() == {"crm": "closed", "stripe": "open"}


def test_a_refusal_shows_the_system_is_up(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    breaker = CircuitBreakers(failures=2, cooldown=60.0, clock=clock)
    outbox = Outbox(Writer(engine, Ledger()), connector, clock=clock, breaker=breaker)
    for error in (TransientError("503"), PermanentError("card declined", code="card_declined"), TransientError("503")):
        connector.fail(add_decision(engine, clock()), error)
        outbox.run_due()
    assert breaker.state("stripe") == "closed"
