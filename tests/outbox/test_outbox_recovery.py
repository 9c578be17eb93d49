"""After a crash: rows left running are re-driven with the same idempotency key (so the action
happens once), and a worker whose lease was taken over cannot record a second outcome."""

from __future__ import annotations

import time

from outbox_support import (
    FakeClock,
    RecordingConnector,
    add_decision,
    audit_entries,
    execution_row,
    stored_decision,
)
from sqlalchemy import Engine

from connectors.base import TransientError
from gateway.execution.outbox import Outbox
from gateway.execution.worker import Worker
from gateway.store.writer import Writer
from ledger.store import Ledger


def make_outbox(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> Outbox:
    return Outbox(Writer(engine, Ledger()), connector, clock=clock, lease_seconds=30.0)


def test_crash_after_the_call_is_redriven_with_the_same_key_and_acts_once(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    crashed = make_outbox(engine, connector, clock)
    [claim] = crashed.claim(16)
    # The connector carried out the action, then the process died before recording it.
    connector.execute(claim.tool, claim.params, idempotency_key=claim.decision_id)
    del crashed

    restarted = make_outbox(engine, connector, clock)  # the external system remembers the key
    clock.advance(29.9)
    assert restarted.run_due() == 0, "took over a lease that had not expired"
    clock.advance(0.1)
    assert restarted.run_due() == 1
    assert connector.keys_called() == [decision_id, decision_id]
    assert list(connector.performed) == [decision_id]  # acted once
    row = execution_row(engine, decision_id)
    assert (row.state, row.attempts) == ("succeeded", 2)
    assert '"replayed":true' in row.result
    decision = stored_decision(engine, decision_id)
    assert decision.status == "executed" and decision.execution is not None
    assert decision.execution["external_id"] == connector.performed[decision_id].external_id
    assert len(audit_entries(engine, "execution")) == 1


def test_crash_before_the_call_executes_once_on_redrive(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    decision_id = add_decision(engine, clock())
    make_outbox(engine, connector, clock).claim(16)
    clock.advance(31)
    assert make_outbox(engine, connector, clock).run_due() == 1
    assert connector.keys_called() == [decision_id]
    assert stored_decision(engine, decision_id).status == "executed"


def test_recover_in_flight_redrives_at_once(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    running = add_decision(engine, clock())
    outbox = make_outbox(engine, connector, clock)
    outbox.claim(16)
    done = add_decision(engine, clock())
    outbox.run_due()  # `done` succeeds; `running` is still leased
    assert connector.keys_called() == [done]
    assert outbox.recover_in_flight() == 1
    assert outbox.run_due() == 1
    assert connector.keys_called() == [done, running]
    assert execution_row(engine, running).attempts == 2
    assert outbox.recover_in_flight() == 0


def test_stale_lease_holder_records_nothing(engine: Engine, connector: RecordingConnector, clock: FakeClock) -> None:
    decision_id = add_decision(engine, clock())
    slow, other = make_outbox(engine, connector, clock), make_outbox(engine, connector, clock)
    [stale] = slow.claim(1)
    clock.advance(31)
    [fresh] = other.claim(1)
    assert (stale.attempts, fresh.attempts) == (1, 2)

    # The slow worker finally returns while the row is running under the new lease.
    connector.fail(decision_id, TransientError("late 503"))
    slow.run_claim(stale)
    row = execution_row(engine, decision_id)
    assert (row.state, row.attempts, row.error) == ("running", 2, None)
    assert stored_decision(engine, decision_id).execution is None

    assert other.run_claim(fresh) == "succeeded"
    assert (execution_row(engine, decision_id).state, stored_decision(engine, decision_id).status) == ("succeeded", "executed")

    # ... and once the row is done, a stale success records nothing either.
    slow.run_claim(stale)
    assert execution_row(engine, decision_id).attempts == 2
    assert len(audit_entries(engine)) == 1
    assert list(connector.performed) == [decision_id]


def test_worker_recovers_on_start_and_drains_the_queue(
    engine: Engine, connector: RecordingConnector, clock: FakeClock
) -> None:
    left_running = add_decision(engine, clock())
    outbox = make_outbox(engine, connector, clock)
    outbox.claim(16)  # a previous process died holding this lease
    worker = Worker(outbox, threads=2, poll_seconds=0.05)
    worker.start()
    try:
        queued = [add_decision(engine, clock()) for _ in range(5)]
        worker.wake()
        wanted = [left_running, *queued]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            execution_row(engine, i).state == "succeeded" for i in wanted
        ):
            time.sleep(0.02)
    finally:
        worker.stop()
    assert not worker.running
    assert sorted(connector.keys_called()) == sorted(wanted)
    assert all(stored_decision(engine, i).status == "executed" for i in wanted)
