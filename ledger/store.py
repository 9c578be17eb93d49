"""The audit ledger in the database: appends, tree heads, proofs and reads.

`Ledger.append` works inside the caller's transaction, so an entry commits together with the
state change it records, or neither does. Every write starts by locking the single head row
(PostgreSQL: `SELECT ... FOR UPDATE`; SQLite: the database write lock, taken by the no-op update
below and by `BEGIN IMMEDIATE`), so appends from many processes line up into one gap-free
sequence; a rolled-back transaction leaves no entry and no hole because seq comes from the head.

Errors: `LedgerError` (bad request: unknown seq, impossible sizes, unencodable data)
         └ `LedgerCorruptError` (the stored tree is inconsistent with itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError

from ledger import merkle
from ledger.appender import AppendError, Appender
from ledger.appender import AppendResult as AppendResult  # re-exported: where appends are read about
from ledger.database import WRITE_LOCKED
from ledger.entry import EntryData, EntryError, encode_entry
from ledger.schema import HEAD_ID, SchemaError, checkpoints, entries, head, is_missing_table, nodes
from ledger.compact import MerkleAccumulator
from ledger.subtrees import SubtreeReader, pack_frontier, push_leaf, unpack_frontier

Clock = Callable[[], datetime]

#: `conn.info` key: the `Appender` of the log writer whose transaction this connection is in.
#: While it is set, `lock_head`, `head` and `append` use the writer's head in memory.
APPENDER = "warden_appender"

_HEAD = select(head.c.size, head.c.last_leaf, head.c.frontier).where(head.c.id == HEAD_ID)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()
_TAKE_WRITE_LOCK = update(head).where(head.c.id == HEAD_ID).values(size=head.c.size)
_CHECKPOINT_NOTE = select(checkpoints.c.note).where(checkpoints.c.size == bindparam("size"))
# Built once: building a statement costs more than running it on the hot path of every append.
_INSERT_ENTRIES = insert(entries)
_INSERT_NODES = insert(nodes)
_UPDATE_HEAD = update(head).where(head.c.id == HEAD_ID).values(
    size=bindparam("new_size"), last_leaf=bindparam("new_last_leaf"), frontier=bindparam("new_frontier")
)


class LedgerError(Exception):
    """A request the ledger cannot satisfy as asked."""


class LedgerCorruptError(LedgerError):
    """The stored log contradicts itself (e.g. a subtree hash is missing)."""


@dataclass(frozen=True)
class NewEntry:
    """One entry to append; `data` must be JSON-like (RFC 8785 has no NaN or infinities)."""

    kind: str
    actor: str
    subject: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Head:
    size: int
    last_leaf: bytes
    frontier: MerkleAccumulator

    @property
    def root(self) -> bytes:
        return self.frontier.root()


@dataclass(frozen=True)
class InclusionReceipt:
    """Proof that entry `seq` (leaf hash `leaf_hash`) is in the tree of `size` with head `root`;
    `checkpoint` is the signed note for that size when one was signed."""

    seq: int
    size: int
    leaf_hash: bytes
    root: bytes
    proof: list[bytes]
    checkpoint: str | None


@dataclass(frozen=True)
class ConsistencyReceipt:
    """Proof that the tree of `size2` extends the tree of `size1`."""

    size1: int
    size2: int
    root1: bytes
    root2: bytes
    proof: list[bytes]
    checkpoint1: str | None
    checkpoint2: str | None


@contextmanager
def _schema_required() -> Iterator[None]:
    """Turn "no such table" into a message saying what to run."""
    try:
        yield
    except DBAPIError as exc:
        if is_missing_table(exc):
            raise SchemaError("the database has no audit ledger yet; run `warden db upgrade`") from exc
        raise


def utc_now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """The log's operations over a SQLAlchemy connection; holds no state beyond the clock."""

    def __init__(self, clock: Clock = utc_now) -> None:
        self._clock = clock

    def appender(self, dialect: str, *, on_statement: Callable[[str], None] | None = None) -> Appender:
        """The in-memory head for the one writer of a process (`ledger.appender`), with this
        ledger's clock."""
        return Appender(dialect, self._clock, on_statement=on_statement)

    # -- the head -----------------------------------------------------------------------------

    def lock_head(self, conn: Connection) -> Head:
        """Read the head holding the log's write lock until the caller's transaction ends."""
        appender = conn.info.get(APPENDER)
        if appender is not None:  # the writer locked it when its transaction began
            return Head(appender.size, appender.last_leaf, appender.frontier)
        if conn.dialect.name == "sqlite":
            if not conn.info.get(WRITE_LOCKED):
                # Take SQLite's write lock now (a no-op update): the transaction began deferred.
                with _schema_required():
                    conn.execute(_TAKE_WRITE_LOCK)
            return self._read_head(conn, for_update=False)
        return self._read_head(conn, for_update=True)

    def head(self, conn: Connection) -> Head:
        """The head as of this transaction's snapshot, without locking."""
        appender = conn.info.get(APPENDER)
        if appender is not None:
            return Head(appender.size, appender.last_leaf, appender.frontier)
        return self._read_head(conn, for_update=False)

    def _read_head(self, conn: Connection, *, for_update: bool) -> Head:
        with _schema_required():
            row = conn.execute(_HEAD_FOR_UPDATE if for_update else _HEAD).one_or_none()
        if row is None:
            raise LedgerCorruptError("the ledger head row is missing")
        size = int(row.size)
        try:
            frontier = unpack_frontier(size, bytes(row.frontier))
        except ValueError as exc:
            raise LedgerCorruptError(str(exc)) from exc
        return Head(size, bytes(row.last_leaf), frontier)

    # -- appending ----------------------------------------------------------------------------

    def append(
        self, conn: Connection, kind: str, actor: str, subject: str, data: Mapping[str, Any]
    ) -> AppendResult:
        """Append one entry in the caller's transaction (commit/rollback is the caller's)."""
        return self.append_many(conn, [NewEntry(kind, actor, subject, data)])[0]

    def append_many(self, conn: Connection, items: Iterable[NewEntry]) -> list[AppendResult]:
        """Append entries in order under one head lock: one round of inserts, one head update."""
        appender = conn.info.get(APPENDER)
        if appender is not None:
            return self._append_through(conn, appender, items)
        current = self.lock_head(conn)
        results, rows, completed, after = self._encode(current, items)
        if not rows:
            return []
        conn.execute(_INSERT_ENTRIES, rows)
        if completed:
            conn.execute(_INSERT_NODES, completed)
        conn.execute(_UPDATE_HEAD, {
            "new_size": after.size, "new_last_leaf": results[-1].leaf_hash,
            "new_frontier": pack_frontier(after),
        })
        return results

    @staticmethod
    def _append_through(conn: Connection, appender: Appender, items: Iterable[NewEntry]) -> list[AppendResult]:
        """Append through the log writer's head in memory, written before the unit goes on."""
        results: list[AppendResult] = []
        for item in items:
            try:
                data = EntryData.of(item.data)
            except EntryError as exc:
                raise LedgerError(f"cannot record {item.kind!r} entry: {exc}") from exc
            try:
                results.append(appender.append(item.kind, item.actor, item.subject, data))
            except AppendError as exc:
                raise LedgerError(str(exc)) from exc
        appender.flush(conn.connection.dbapi_connection.cursor())  # type: ignore[union-attr]
        return results

    def _encode(
        self, current: Head, items: Iterable[NewEntry]
    ) -> tuple[list[AppendResult], list[dict[str, Any]], list[dict[str, object]], MerkleAccumulator]:
        results: list[AppendResult] = []
        rows: list[dict[str, Any]] = []
        completed: list[dict[str, object]] = []
        frontier = current.frontier.copy()
        prev = current.last_leaf
        for item in items:
            seq = frontier.size
            try:
                body = encode_entry(
                    seq, self._clock(), item.kind, item.actor, item.subject, dict(item.data), prev.hex()
                )
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"cannot record {item.kind!r} entry: {exc}") from exc
            leaf = merkle.leaf_hash(body)
            rows.append({"seq": seq, "leaf_hash": leaf, "body": body})
            results.append(AppendResult(seq, leaf))
            push_leaf(frontier, leaf, completed)
            prev = leaf
        return results, rows, completed, frontier

    # -- tree heads and proofs ----------------------------------------------------------------

    def root(self, conn: Connection, size: int) -> bytes:
        """The tree head over the first `size` entries (any size up to the current one)."""
        current = self.head(conn)
        if not 0 <= size <= current.size:
            raise LedgerError(f"no tree of size {size}: the log has {current.size} entries")
        if size == current.size:
            return current.root
        return self._reader(conn).ranges([(0, size)])[(0, size)]

    def inclusion(self, conn: Connection, seq: int, size: int | None = None) -> InclusionReceipt:
        """Inclusion proof of entry `seq` in the tree of `size` (default: the latest checkpoint)."""
        size = self._default_size(conn, size)
        if not 0 <= seq < size:
            raise LedgerError(f"entry {seq} is not in a tree of size {size}")
        self._check_size(conn, size)
        spans = merkle.inclusion_ranges(seq, size)
        known = self._reader(conn).ranges([*spans, (seq, seq + 1), (0, size)])
        proof = [known[span] for span in spans]
        return InclusionReceipt(
            seq, size, known[(seq, seq + 1)], known[(0, size)], proof, self.checkpoint_note(conn, size)
        )

    def consistency(self, conn: Connection, size1: int, size2: int | None = None) -> ConsistencyReceipt:
        """Consistency proof that the tree of `size2` (default: latest checkpoint) extends `size1`."""
        size2 = self._default_size(conn, size2)
        if not 0 < size1 <= size2:
            raise LedgerError(f"no consistency proof from size {size1} to size {size2}")
        self._check_size(conn, size2)
        spans = merkle.consistency_ranges(size1, size2)
        known = self._reader(conn).ranges([*spans, (0, size1), (0, size2)])
        proof = [known[span] for span in spans]
        return ConsistencyReceipt(
            size1,
            size2,
            known[(0, size1)],
            known[(0, size2)],
            proof,
            self.checkpoint_note(conn, size1),
            self.checkpoint_note(conn, size2),
        )

    def _default_size(self, conn: Connection, size: int | None) -> int:
        if size is not None:
            return size
        latest = self.latest_checkpoint(conn)
        if latest is None:
            raise LedgerError("no checkpoint has been signed yet; give a tree size")
        return latest[0]

    def _check_size(self, conn: Connection, size: int) -> None:
        current = self.head(conn).size
        if size > current:
            raise LedgerError(f"no tree of size {size}: the log has {current} entries")

    @staticmethod
    def _reader(conn: Connection) -> SubtreeReader:
        return SubtreeReader(conn)

    # -- reading ------------------------------------------------------------------------------

    def entry(self, conn: Connection, seq: int) -> bytes:
        """The exact stored bytes of entry `seq`."""
        body = conn.execute(select(entries.c.body).where(entries.c.seq == seq)).scalar_one_or_none()
        if body is None:
            raise LedgerError(f"no entry {seq}")
        return bytes(body)

    def iter_entries(
        self, conn: Connection, start: int = 0, end: int | None = None, batch: int = 20_000
    ) -> Iterator[bytes]:
        """Stream entry bytes in seq order, `batch` rows per query (keyset pagination, so memory
        stays flat on a million-entry log and no server-side cursor is needed). A missing row
        is not papered over: the verifier sees the jump in seq."""
        position = start
        while end is None or position < end:
            query = select(entries.c.seq, entries.c.body).where(entries.c.seq >= position)
            if end is not None:
                query = query.where(entries.c.seq < end)
            rows = conn.execute(query.order_by(entries.c.seq).limit(batch)).all()
            for _seq, body in rows:
                yield bytes(body)
            if len(rows) < batch:
                return
            position = int(rows[-1][0]) + 1

    def checkpoint_note(self, conn: Connection, size: int) -> str | None:
        return conn.execute(_CHECKPOINT_NOTE, {"size": size}).scalar_one_or_none()

    def latest_checkpoint(self, conn: Connection) -> tuple[int, str] | None:
        row = conn.execute(
            select(checkpoints.c.size, checkpoints.c.note).order_by(checkpoints.c.size.desc()).limit(1)
        ).one_or_none()
        return None if row is None else (int(row.size), str(row.note))

    def checkpoint_notes(self, conn: Connection, up_to: int | None = None) -> list[tuple[int, str]]:
        """Every signed checkpoint (size, note), smallest first; at most `up_to` in size."""
        query = select(checkpoints.c.size, checkpoints.c.note).order_by(checkpoints.c.size)
        if up_to is not None:
            query = query.where(checkpoints.c.size <= up_to)
        return [(int(size), str(note)) for size, note in conn.execute(query)]
