"""The one way the gateway writes: a unit of work in one transaction, committed durably.

Every state change (a decision, an approval, an execution's outcome, an identity, an incident,
the kill switch) is a *unit of work*: a function of one connection that changes the gateway's
rows and appends the audit entries recording them. `Writer.run(work)` runs it as one
transaction:

    1. on PostgreSQL, lock the audit log's head before anything else: one lock order for every
       writer, so concurrent units queue instead of deadlocking (on SQLite, `BEGIN IMMEDIATE`
       already serialises writers);
    2. run the work;
    3. sign a checkpoint if one is due (when the writer has a checkpointer);
    4. commit durably: through the group committer when there is one (many units share one
       commit, each under its own savepoint), else in a transaction of its own.

A unit that raises leaves nothing behind (its rows and its entries roll back together) and its
caller gets the exception. `run` returns only once the unit is committed, so nobody answers for
a change that is not on disk. One `Writer` is built per process, by the runtime, and handed to
everything that writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from ledger.checkpointer import Checkpointer
from ledger.group_commit import GroupCommitter
from ledger.store import Ledger

T = TypeVar("T")


class Writer:
    """Runs units of work against `engine`, appending to `ledger`."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        *,
        committer: GroupCommitter | None = None,
        checkpointer: Checkpointer | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.committer = committer
        self.checkpointer = checkpointer
        self._listeners: list[Callable[[], None]] = []

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every unit this writer commits (it must be quick and must not
        raise: the console's live feed uses it to read the log at once rather than at its next poll)."""
        self._listeners.append(listener)

    def run(self, work: Callable[[Connection], T]) -> T:
        """Run `work(conn)` as one unit; returns its result once committed."""
        if self.committer is not None:
            result = self.committer.run(lambda conn: self._unit(conn, work))
        else:
            with self.engine.begin() as conn:
                result = self._unit(conn, work)
        for listener in self._listeners:
            listener()
        return result

    def _unit(self, conn: Connection, work: Callable[[Connection], T]) -> T:
        if conn.dialect.name == "postgresql":
            self.ledger.lock_head(conn)
        result = work(conn)
        if self.checkpointer is not None:
            self.checkpointer.maybe_sign(conn)
        return result
