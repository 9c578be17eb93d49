"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

import threading

import pytest
from outbox_support import FakeClock

from gateway.execution.breaker import CircuitBreakers


def open_breaker(breaker: CircuitBreakers, name: str = "stripe") -> None:
    for _ in range(breaker.failures):
        assert breaker.allow(name)
        breaker.record_failure(name)


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreakers(failures=3, cooldown=10.0, clock=FakeClock())
    breaker.record_failure("stripe")
    breaker.record_failure("stripe")
    breaker.record_success("stripe")  # not consecutive any more
    breaker.record_failure("stripe")
    breaker.record_failure("stripe")
    assert breaker.state("stripe") == "closed" and breaker.allow("stripe")
    breaker.record_failure("stripe")
    assert breaker.state("stripe") == "open"
    assert not breaker.allow("stripe")


def test_half_open_lets_one_trial_through_and_success_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreakers(failures=2, cooldown=10.0, clock=clock)
    open_breaker(breaker)
    assert breaker.retry_in("stripe") == 10.0
    clock.advance(9.9)
    assert breaker.state("stripe") == "open" and not breaker.allow("stripe")
    clock.advance(0.1)
    assert breaker.state("stripe") == "half_open"
    assert breaker.allow("stripe")
    assert not breaker.allow("stripe"), "a second trial while the first is in flight"
    assert 0 < breaker.retry_in("stripe") <= 1.0
    breaker.record_success("stripe")
    assert breaker.state("stripe") == "closed"
    assert breaker.allow("stripe") and breaker.allow("stripe")
    assert breaker.retry_in("stripe") == 0.0


def test_failed_trial_reopens_for_a_whole_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreakers(failures=2, cooldown=10.0, clock=clock)
    open_breaker(breaker)
    clock.advance(10)
    assert breaker.allow("stripe")
    breaker.record_failure("stripe")
    assert breaker.state("stripe") == "open"
    clock.advance(9)
    assert not breaker.allow("stripe")
    clock.advance(1)
    assert breaker.allow("stripe")


def test_a_trial_that_never_reports_frees_the_slot_after_a_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreakers(failures=1, cooldown=10.0, clock=clock)
    open_breaker(breaker)
    clock.advance(10)
    assert breaker.allow("stripe")  # this caller dies without reporting
    clock.advance(5)
    assert not breaker.allow("stripe")
    clock.advance(5)
    assert breaker.allow("stripe")


def test_connectors_are_independent() -> None:
    breaker = CircuitBreakers(failures=1, cooldown=10.0, clock=FakeClock())
    open_breaker(breaker, "stripe")
    assert breaker.allow("shopify")
    assert breaker.states() == {"shopify": "closed", "stripe": "open"}
    assert breaker.state("crm") == "closed"


def test_only_one_trial_among_many_threads() -> None:
    clock = FakeClock()
    breaker = CircuitBreakers(failures=1, cooldown=10.0, clock=clock)
    open_breaker(breaker)
    clock.advance(10)
    start = threading.Barrier(8)
    allowed: list[bool] = []

    def ask() -> None:
        start.wait()
        allowed.append(breaker.allow("stripe"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(allowed) == [False] * 7 + [True]


@pytest.mark.parametrize(("failures", "cooldown"), [(0, 1.0), (1, 0.0), (3, -1.0)])
def test_refuses_settings_that_would_never_close_or_never_open(failures: int, cooldown: float) -> None:
    with pytest.raises(ValueError, match="failures >= 1 and cooldown > 0"):
        CircuitBreakers(failures=failures, cooldown=cooldown)
