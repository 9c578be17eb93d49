"""Circuit breakers, one per connector: stop calling an external system that keeps failing.

    closed ──(`failures` consecutive transient failures)──► open
    open ──(`cooldown` seconds)──► half_open
    half_open ──(one trial call: success)──► closed
    half_open ──(one trial call: failure)──► open (a new cooldown)

Only transient failures (timeouts, 429, 5xx, anything unexpected) count; an answer that refuses
the request (a permanent error) shows the system is up and counts as a success here. While a
half-open trial is in flight other callers are refused; a trial that never reports back (its
thread died) frees the slot again after one cooldown, so a breaker cannot stay stuck half-open.

State lives in the process (each gateway process judges the connectors it calls itself), behind
one lock, so worker threads and the request path share it safely.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]

#: How long a caller refused during a half-open trial should wait before asking again.
TRIAL_RETRY_SECONDS = 1.0


@dataclass
class _Circuit:
    failures: int = 0  # consecutive transient failures while closed
    opened_at: float | None = None  # set while open or half-open
    trial_started: float | None = None  # set while a half-open trial is in flight


class CircuitBreakers:
    """Per-connector breakers: `allow(name)` before a call, then `record_success(name)` or
    `record_failure(name)` after it."""

    def __init__(
        self, failures: int = 5, cooldown: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or cooldown <= 0:
            raise ValueError("a circuit breaker needs failures >= 1 and cooldown > 0")
        self.failures = failures
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._circuits: dict[str, _Circuit] = {}

    def allow(self, name: str) -> bool:
        """May a call to connector `name` go ahead now? In the half-open state the first caller
        gets the trial and must report its outcome; everyone else is refused until then."""
        with self._lock:
            circuit = self._circuit(name)
            now = self._clock()
            state = self._state(circuit, now)
            if state == "closed":
                return True
            if state == "open":
                return False
            if circuit.trial_started is not None and now - circuit.trial_started < self.cooldown:
                return False
            circuit.trial_started = now
            return True

    def record_success(self, name: str) -> None:
        with self._lock:
            self._circuits[name] = _Circuit()

    def record_failure(self, name: str) -> None:
        with self._lock:
            circuit = self._circuit(name)
            now = self._clock()
            if circuit.opened_at is not None:
                # A failed half-open trial (or a call let through before the breaker opened):
                # open again for a whole cooldown.
                circuit.opened_at = now
                circuit.trial_started = None
                return
            circuit.failures += 1
            if circuit.failures >= self.failures:
                circuit.opened_at = now

    def state(self, name: str) -> BreakerState:
        with self._lock:
            circuit = self._circuits.get(name)
            return "closed" if circuit is None else self._state(circuit, self._clock())

    def states(self) -> dict[str, BreakerState]:
        """Every connector seen so far and its state (for metrics and `/readyz`)."""
        with self._lock:
            now = self._clock()
            return {name: self._state(circuit, now) for name, circuit in sorted(self._circuits.items())}

    def retry_in(self, name: str) -> float:
        """Seconds until a refused caller should try again: the rest of the cooldown while open,
        a short wait while a half-open trial is in flight, 0 when a call would be allowed."""
        with self._lock:
            circuit = self._circuits.get(name)
            if circuit is None or circuit.opened_at is None:
                return 0.0
            now = self._clock()
            if self._state(circuit, now) == "open":
                return max(0.0, circuit.opened_at + self.cooldown - now)
            if circuit.trial_started is not None and now - circuit.trial_started < self.cooldown:
                return min(TRIAL_RETRY_SECONDS, self.cooldown)
            return 0.0

    def _circuit(self, name: str) -> _Circuit:
        circuit = self._circuits.get(name)
        if circuit is None:
            circuit = self._circuits[name] = _Circuit()
        return circuit

    def _state(self, circuit: _Circuit, now: float) -> BreakerState:
        if circuit.opened_at is None:
            return "closed"
        if now - circuit.opened_at < self.cooldown:
            return "open"
        return "half_open"
