"""The webhook threads: fan the log out into the delivery outbox, then send what is due.

Each thread loops: when an active endpoint's events are behind the cursor, run `fan_out` in the
log writer (one thread of the process at a time); then lease endpoints with due deliveries and
send them (`Sender.run_once`) until none is due; then wait `poll_seconds` or until `wake()`
(the runtime wakes it at every commit it hears of, so a delivery leaves at once).
"""

from __future__ import annotations

import logging
import threading

from gateway.events.delivery import Sender
from gateway.events.webhooks import fan_out, fan_out_due
from ledger.database import read_only

log = logging.getLogger("warden.webhooks")


class DeliveryWorker:
    def __init__(self, sender: Sender, *, threads: int = 1, poll_seconds: float = 0.5,
                 release_on_start: bool = True) -> None:
        if threads < 1 or poll_seconds <= 0:
            raise ValueError("a delivery worker needs threads >= 1 and poll_seconds > 0")
        self.sender = sender
        self.threads = threads
        self.poll_seconds = poll_seconds
        self.release_on_start = release_on_start
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._fanning = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.release_on_start:
            released = self.sender.release_all()
            if released:
                log.info("sending again to %d webhook endpoint(s) a previous process held", released)
        self._stop.clear()
        self._threads = [threading.Thread(target=self._loop, args=(str(n),), name=f"warden-webhooks-{n}", daemon=True)
                         for n in range(self.threads)]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self.sender.close()

    def fan_out(self) -> int:
        """Deliveries made from the log now (0 when nothing was behind)."""
        if not self._fanning.acquire(blocking=False):
            return 0
        try:
            made = 0
            while not self._stop.is_set():
                with read_only(self.sender.engine.connect()) as conn:
                    if not fan_out_due(conn):
                        return made
                made += self.sender.writer.run(lambda conn: fan_out(conn, self.sender.clock()))
            return made
        finally:
            self._fanning.release()

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.fan_out()
                while not self._stop.is_set():
                    if self.sender.run_once(name) < 0:  # nothing due: wait for a wake-up or the poll
                        break
            except Exception:  # the database is away: try again at the next poll
                log.exception("the webhook worker failed; trying again")
            self._wake.wait(self.poll_seconds)
