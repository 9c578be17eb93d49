"""Group commit: many callers' transactions share one durable commit.

With durability on, a commit costs an fsync (SQLite's WAL, PostgreSQL's WAL flush), and every
append holds the log head until its commit: one transaction per decision caps a gateway at about
one decision per fsync. `GroupCommitter` runs the callers' units of work back to back inside one
database transaction on a single writer thread, each unit under its own SAVEPOINT, and commits
once for the whole group:

- a unit that raises is rolled back to its savepoint alone (its state change and its ledger
  entries vanish together, leaving no gap in seq) and its caller gets the exception;
- when the shared commit fails, every caller in the group gets that error: nothing of the group
  is committed, so nothing was acknowledged that is not durable;
- `run()` returns only after the commit, so a caller never answers before its entry is on disk.

A unit runs on the writer thread: it must use only the connection it is given and must not wait
for another unit. Use it as `committer.run(lambda conn: record_decision(conn, ...))`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")
Work = Callable[[Connection], Any]


@dataclass
class _Unit:
    work: Work
    future: Future[Any]


class GroupCommitterClosed(RuntimeError):
    """The committer was closed; no more work is accepted."""


class GroupCommitter:
    """One writer thread that commits queued units of work in groups of up to `max_group`."""

    def __init__(self, engine: Engine, *, max_group: int = 256) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="warden-group-commit", daemon=True)
        self._thread.start()

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)` in a shared transaction; return its result once it is committed."""
        return self.submit(work).result()

    def submit(self, work: Callable[[Connection], T]) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise GroupCommitterClosed("the group committer is closed")
            self._queue.put(_Unit(work, future))
        return future

    def close(self) -> None:
        """Finish the queued work, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self._max_group:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    stopping = True
                    break
                group.append(unit)
            self._commit(group)

    def _commit(self, group: list[_Unit]) -> None:
        done: list[tuple[_Unit, Any]] = []
        failed: list[tuple[_Unit, Exception]] = []
        try:
            with self._engine.begin() as conn:
                for unit in group:
                    if not unit.future.set_running_or_notify_cancel():
                        continue
                    try:
                        with conn.begin_nested():
                            result = unit.work(conn)
                    except Exception as exc:  # the unit's own failure: only its savepoint rolls back
                        failed.append((unit, exc))
                    else:
                        done.append((unit, result))
        except Exception as exc:  # the shared commit failed: nothing of the group is durable
            for unit in group:
                if not unit.future.done():
                    unit.future.set_exception(exc)
            return
        # Answer only now, after the commit, failures included: a unit that failed because of
        # another unit of its group (a unique key, say) then sees that unit's work committed.
        for unit, error in failed:
            unit.future.set_exception(error)
        for unit, result in done:
            unit.future.set_result(result)
