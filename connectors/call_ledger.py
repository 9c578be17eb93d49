"""The sandbox call ledger: the durable record of every sandbox call, keyed by idempotency key.

`SandboxCallLedger` is a SQLite file of its own (`<data_dir>/sandbox-calls.db`, WAL,
synchronous=NORMAL: a commit survives the crash of any process, the kill -9 drills included,
though not a power cut; it stands in for a remote API's records, and an fsync per call would make
the fake system, not the gateway, the bottleneck), shared safely by threads and processes. A call
is recorded in the same transaction that produces its answer, before the answer is returned, so
after any crash the file says exactly which idempotency keys were executed, and how many times
(once, or it is a bug).

    same key, same tool and params   → the first answer again, `replayed=True`, replays + 1
    same key, other tool or params   → IdempotencyConflictError(code="idempotency_mismatch"), as Stripe

The sandbox connectors (`connectors.sandbox`) build the answers; a builder reads earlier answers
through `LedgerView`, inside the recording transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.base import IdempotencyConflictError

#: external_id, the API's response object, the summary safe for the audit log
Answer = tuple[str, dict[str, Any], dict[str, Any]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY, tool TEXT NOT NULL, params_hash TEXT NOT NULL,
    external_id TEXT NOT NULL, response TEXT NOT NULL, summary TEXT NOT NULL,
    created_at REAL NOT NULL, replays INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, tool TEXT NOT NULL,
    params_hash TEXT NOT NULL, replayed INTEGER NOT NULL, at REAL NOT NULL, pid INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_key ON calls (key);
CREATE INDEX IF NOT EXISTS answers_tool ON answers (tool, created_at);
"""


def params_hash(tool: str, params: Mapping[str, Any]) -> str:
    canonical = json.dumps({"tool": tool, "params": params}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class StoredAnswer:
    """The answer recorded for one idempotency key, as a call received it."""

    key: str
    tool: str
    params_hash: str
    external_id: str
    response: dict[str, Any]
    summary: dict[str, Any]
    created_at: float
    replays: int
    replayed: bool  # this call found the key already executed


@dataclass(frozen=True)
class CallRecord:
    """One call as the ledger logged it: executed (`replayed=False`) or answered from the key."""

    seq: int
    key: str
    tool: str
    params_hash: str
    replayed: bool
    at: float
    pid: int
    external_id: str
    response: dict[str, Any]


class LedgerView:
    """What an answer builder may read: earlier answers, inside the recording transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def responses(self, tool: str, where: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
        """Earlier responses of `tool`, oldest first, whose JSON paths equal the given values
        (e.g. `{"$.inventory_level.inventory_item_id": 42}`)."""
        sql, args = "SELECT response FROM answers WHERE tool = ?", [tool]
        for path, value in (where or {}).items():
            sql += " AND json_extract(response, ?) = ?"
            args += [path, value]
        for (text,) in self._conn.execute(sql + " ORDER BY created_at, rowid", args):
            yield json.loads(text)


class SandboxCallLedger:
    """The durable record of every sandbox call, keyed by idempotency key (None: in memory)."""

    def __init__(self, path: Path | None = None, *, busy_timeout: float = 60.0) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path) if path else ":memory:", timeout=busy_timeout,
                                     isolation_level=None, check_same_thread=False)
        with self._lock:
            if path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    self._conn.execute(statement)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SandboxCallLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the one write

    def record(self, key: str, tool: str, params: Mapping[str, Any],
               build: Callable[[LedgerView], Answer], *, now: float | None = None) -> StoredAnswer:
        """The answer for `key`: the stored one (a replay), or `build`'s, recorded before it is
        returned. Raises IdempotencyConflictError(code="idempotency_mismatch") when the key was used for
        another tool or other params."""
        digest = params_hash(tool, params)
        with self._lock:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                at = time.time() if now is None else now
                row = conn.execute(
                    "SELECT tool, params_hash, external_id, response, summary, created_at, replays"
                    " FROM answers WHERE key = ?", (key,)).fetchone()
                if row is not None:
                    if row[1] != digest:
                        raise IdempotencyConflictError(
                            f"idempotency key {key!r} was already used for a {row[0]} call with "
                            "other params", code="idempotency_mismatch")
                    conn.execute("UPDATE answers SET replays = replays + 1 WHERE key = ?", (key,))
                    stored = StoredAnswer(key, row[0], row[1], row[2], json.loads(row[3]),
                                          json.loads(row[4]), row[5], row[6] + 1, True)
                else:
                    external_id, response, summary = build(LedgerView(conn))
                    conn.execute(
                        "INSERT INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                        (key, tool, digest, external_id, json.dumps(response),
                         json.dumps(summary), at))
                    stored = StoredAnswer(key, tool, digest, external_id, response, summary,
                                          at, 0, False)
                conn.execute("INSERT INTO calls (key, tool, params_hash, replayed, at, pid) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (key, tool, digest, int(stored.replayed), at, os.getpid()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return stored

    # ------------------------------------------------------------------ reading (tests, tools)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def calls(self, key: str | None = None) -> list[CallRecord]:
        """Every call, in the order they were recorded (optionally those with one key)."""
        sql = ("SELECT c.seq, c.key, c.tool, c.params_hash, c.replayed, c.at, c.pid, "
               "a.external_id, a.response FROM calls c JOIN answers a ON a.key = c.key")
        rows = self._rows(sql + (" WHERE c.key = ?" if key else "") + " ORDER BY c.seq",
                          (key,) if key else ())
        return [CallRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7],
                           json.loads(r[8])) for r in rows]

    def count(self, key: str) -> int:
        """How many calls used `key` (the execution and its replays)."""
        return int(self._rows("SELECT count(*) FROM calls WHERE key = ?", (key,))[0][0])

    def executions_by_key(self) -> dict[str, int]:
        """How many times each key was executed (not replayed): 1 for every key, or a bug."""
        rows = self._rows("SELECT key, count(*) FROM calls WHERE replayed = 0 GROUP BY key")
        return {str(key): int(count) for key, count in rows}

    def answer(self, key: str) -> StoredAnswer | None:
        """The answer stored for `key`, without counting a call."""
        rows = self._rows("SELECT tool, params_hash, external_id, response, summary, created_at,"
                          " replays FROM answers WHERE key = ?", (key,))
        if not rows:
            return None
        r = rows[0]
        return StoredAnswer(key, r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5],
                            r[6], False)
