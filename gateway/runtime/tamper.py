"""Watching the live audit log for tampering: the gateway re-verifies what it wrote.

`TamperWatch.check(engine)` reads the entries appended since its last check and verifies, for
each, that its stored leaf hash is the hash of its stored bytes, that its `seq` is its position
and that its `prev` is the previous entry's leaf hash; then that the tree head recomputed from all
leaf hashes equals the stored head's root, and that every signed checkpoint's root is the root of
the tree at its size. Incremental: each check reads only the new entries and checkpoints; a full
check re-reads everything. `TamperWatch.tick(engine)` is what the gateway runs every second: the
incremental check, or a full one when `full_check_seconds` have passed since the last full check
began. An entry edited before it was checked is caught by the next tick; one edited after is
caught by the next full check, so within `full_check_seconds` plus a tick and that check's own
duration.

A failure is an alarm (once per distinct failure), and an alarm fails closed (`fail_closed`): in
one transaction, a `tamper_alarm` incident and the kill switch engaged by `warden`, its reason
naming the incident. Nothing executes and every new packet is denied until a founder releases the
switch (`POST /v1/kill-switch`); the same failure found again does not engage it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError

from gateway.store.killswitch import KillSwitch, set_kill_switch
from gateway.store.records import record_incident
from ledger import merkle
from ledger.compact import MerkleAccumulator
from ledger.database import read_only
from ledger.entry import EntryError, chain_fields, decode_entry
from ledger.checkpoint import open_checkpoint
from ledger.keys import signing_keys
from ledger.note import NoteError, Verifier
from ledger.schema import checkpoints, entries
from ledger.store import Ledger

log = logging.getLogger("warden.tamper")

#: Errors that mean the database cannot be reached now, not that what it holds is wrong.
UNREACHABLE = (OperationalError, InterfaceError, DisconnectionError, SQLAlchemyTimeoutError)
ZERO = bytes(32)
ACTOR = "warden"
_REASON = "tamper alarm: "


def fail_closed(conn: Connection, ledger: Ledger, problem: str, detail: dict[str, object], now: float) -> KillSwitch:
    """Open the `tamper_alarm` incident for `problem` and engage the kill switch, naming it, in the
    caller's transaction; returns the switch as engaged."""
    incident = record_incident(conn, ledger, kind="tamper_alarm", now=now,
                               summary=f"the audit log failed verification: {problem}",
                               detail={"problem": problem, **detail})
    reason = f"{_REASON}incident {incident}: {problem}"
    return set_kill_switch(conn, ledger, engaged=True, reason=reason, by=ACTOR, now=now)


def alarm_of(state: KillSwitch) -> str | None:
    """The reason of a kill switch a tamper alarm engaged and no founder has released yet."""
    if state.engaged and state.by == ACTOR and state.reason is not None and state.reason.startswith(_REASON):
        return state.reason
    return None


@dataclass
class TamperWatch:
    """Re-verifies the live log; `record(problem, detail)` is called once per distinct failure
    (again on a later check if it raised), and `tick` runs a full check every
    `full_check_seconds` (on the `clock`, monotonic seconds)."""

    ledger: Ledger
    record: Callable[[str, dict[str, object]], None]
    batch: int = 5000
    full_check_seconds: float = 3600.0
    clock: Callable[[], float] = time.monotonic
    _last_full: float | None = None
    _tree: MerkleAccumulator = field(default_factory=MerkleAccumulator)
    _prev: bytes = ZERO
    _roots: dict[int, bytes] = field(default_factory=dict)
    _checked_checkpoints: int = 0
    _alarmed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # one check at a time

    def tick(self, engine: Engine) -> str | None:
        """The periodic check: a full one when `full_check_seconds` have passed since the last
        full check began (the first tick only starts the count), otherwise an incremental one."""
        now = self.clock()
        if self._last_full is None:
            self._last_full = now
        full = now - self._last_full >= self.full_check_seconds
        if full:
            self._last_full = now
        return self.check(engine, full=full)

    def check(self, engine: Engine, *, full: bool = False) -> str | None:
        """Verify what is new (`full`: everything again, from entry 0); returns the failure
        found, None when the log is sound. An incremental check cannot see an edit to an entry it
        already verified: `tick` runs a full one every `full_check_seconds` (the `tamper_full_check_seconds` setting)."""
        with self._lock:
            return self._check(engine, full)

    def _check(self, engine: Engine, full: bool) -> str | None:
        if full:
            self._tree, self._prev, self._roots, self._checked_checkpoints = MerkleAccumulator(), ZERO, {}, 0
        try:
            with read_only(engine.connect()) as conn:
                head = self.ledger.head(conn)
                pending = conn.execute(
                    select(checkpoints.c.size, checkpoints.c.note)
                    .where(checkpoints.c.size > self._checked_checkpoints).order_by(checkpoints.c.size)
                ).all()
                wanted = {int(size) for size, _note in pending}
                problem = self._entries(conn, head.size, wanted)
                if problem is None and self._tree.root() != head.root:
                    problem = "the stored tree head does not match the entries"
                if problem is None:
                    problem = self._checkpoints(conn, pending)
        except UNREACHABLE as exc:  # the database is away: not an alarm; the next tick retries
            log.warning("tamper check could not run: %s", type(exc).__name__)
            return None
        except Exception as exc:  # what is stored cannot even be read as a log: that is an alarm
            problem = f"the stored log cannot be read: {type(exc).__name__}: {exc}"
        # Problems never name the log's size: the alarm appends entries itself, and the same
        # failure seen again at a larger size must not raise a second alarm.
        if problem is not None and problem not in self._alarmed:
            log.error("audit log verification failed", extra={"problem": problem})
            self.record(problem, {"verified_size": self._tree.size})
            self._alarmed.add(problem)  # only once recorded: an alarm that could not be is raised again
        return problem

    def _entries(self, conn: Connection, size: int, wanted: set[int]) -> str | None:
        while self._tree.size < size:
            start = self._tree.size
            rows = conn.execute(
                select(entries.c.seq, entries.c.leaf_hash, entries.c.body)
                .where(entries.c.seq >= start).order_by(entries.c.seq).limit(self.batch)
            ).all()
            if not rows:
                return f"the entries from {start} on are missing"
            for seq, stored_leaf, body in rows:
                if seq >= size:
                    break
                body = bytes(body)
                if seq != self._tree.size:
                    return f"entry {self._tree.size} is missing (the next stored one is {seq})"
                leaf = merkle.leaf_hash(body)
                if bytes(stored_leaf) != leaf:
                    return f"entry {seq}: the stored leaf hash does not match its bytes"
                try:
                    fields = chain_fields(body)  # the fast path; None means "decode it fully"
                    if fields is None:
                        entry = decode_entry(body)
                        fields = (entry.seq, entry.kind, entry.prev, entry.data)
                except EntryError as exc:
                    return f"entry {seq}: {exc}"
                if fields[0] != seq:
                    return f"entry {seq}: its seq field is not its position"
                if fields[2] != self._prev.hex():
                    return f"entry {seq}: prev does not match entry {seq - 1}'s leaf hash"
                self._tree.append(leaf)
                self._prev = leaf
                if self._tree.size in wanted:
                    self._roots[self._tree.size] = self._tree.root()
        return None

    def _checkpoints(self, conn: Connection, pending: Sequence[Any]) -> str | None:
        verifiers = [Verifier.from_string(k.verifier_key) for k in signing_keys(conn)]
        for size, note in pending:
            size = int(size)
            if size > self._tree.size:
                break
            expected = self._roots.pop(size, None)
            if expected is None:  # signed after this watch had passed that size
                expected = self.ledger.root(conn, size)
            try:
                checkpoint = open_checkpoint(str(note), verifiers)
            except NoteError as exc:
                return f"checkpoint {size}: {exc}"
            if checkpoint.size != size or checkpoint.root != expected:
                return f"checkpoint {size}: its root does not match the log"
            self._checked_checkpoints = size
        return None


