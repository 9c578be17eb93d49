"""Background threads that drain the execution outbox.

Each thread loops `Outbox.run_due` and, when nothing was due, waits `poll_seconds` or until
`wake()` (for a caller that wants a due row run without waiting for the next poll). `start()` first re-drives what a crash left
running, with `Outbox.recover_in_flight`, when `recover_on_start` is set: right for a single
gateway process; with several processes sharing one PostgreSQL pass `recover_on_start=False` and
let lease expiry hand a dead process's rows to the living ones.
"""

from __future__ import annotations

import logging
import threading

from gateway.execution.outbox import Outbox

log = logging.getLogger("warden.outbox")


class Worker:
    """`threads` threads running `outbox.run_due(batch)` until `stop()`."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        threads: int = 2,
        poll_seconds: float = 0.2,
        batch: int = 16,
        recover_on_start: bool = True,
    ) -> None:
        if threads < 1 or poll_seconds <= 0 or batch < 1:
            raise ValueError("a worker needs threads >= 1, poll_seconds > 0 and batch >= 1")
        self.outbox = outbox
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.recover_on_start = recover_on_start
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the outbox worker is already running")
        if self.recover_on_start:
            recovered = self.outbox.recover_in_flight()
            if recovered:
                log.info("re-driving %d execution(s) left running by a previous process", recovered)
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._loop, name=f"warden-outbox-{n}", daemon=True)
            for n in range(self.threads)
        ]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Look for due work now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the claims in hand are done (a claim is never abandoned half-recorded)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = self.outbox.run_due(self.batch)
            except Exception:  # the database is away: try again at the next poll
                log.exception("the outbox worker could not claim executions")
                ran = 0
            if ran == 0 and not self._stop.is_set():
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
