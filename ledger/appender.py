"""The log's one writer per process: the head kept in memory, appends written a batch at a time
through the database driver itself.

`Ledger.append` (in `ledger.store`) reads the head row, appends and writes the head back for every
transaction, through SQLAlchemy: right for a one-off change (a command line tool), too costly for
a gateway that appends thousands of entries a second. An `Appender` belongs to the one thread of a
process that writes the log (`gateway.store.writer`). Each of its transactions:

    open(cursor)     read the head row, holding the log's write lock (SQLite: the transaction
                     began IMMEDIATE; PostgreSQL: `FOR UPDATE` on the row); when it is what the
                     appender left (nobody else appended), keep the frontier in memory, else
                     unpack the stored one
    append(...)      assign seq, build the entry from data serialised beforehand
                     (`ledger.entry.EntryData`), hash it, push the leaf: memory only
    flush(cursor)    one `executemany` for the entries, one for the completed subtrees, one
                     update of the head row
    mark()/rewind()  undo the appends since a mark (a unit of work rolled back to its savepoint)
    forget()         after a rollback or a failed commit: the next `open` trusts only the row

Reading the head row in every transaction is what keeps the log one gap-free sequence when
another process appends too (a `warden` command beside the server, or several gateway processes
on one PostgreSQL): the row is the truth, the memory only spares unpacking it.

The statements are plain SQL in the driver's parameter style (`qmark` for sqlite3, `format` for
psycopg), written once here beside `ledger.schema`'s table definitions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ledger import merkle
from ledger.compact import MerkleAccumulator
from ledger.entry import EntryData, EntryError, encode_with_data, format_time
from ledger.schema import HEAD_ID, entries, head, nodes, node_key
from ledger.subtrees import pack_frontier, unpack_frontier

Clock = Callable[[], datetime]


class Cursor(Protocol):
    """What the appender needs of a DB-API cursor (sqlite3's and psycopg's both fit)."""

    def execute(self, sql: str, params: Any = ...) -> Any: ...
    def executemany(self, sql: str, params: Any) -> Any: ...
    def fetchone(self) -> Any: ...


#: Parameters per multi-row INSERT on SQLite: the limit of builds before 3.32 (32,766 since).
_PARAMETERS_PER_INSERT = 999


def insert_rows(cursor: Cursor, sql: str, rows: list[tuple[Any, ...]], dialect: str) -> None:
    """`executemany` of a one-row `INSERT ... VALUES (...)`, as few statements as it takes.

    sqlite3 releases and takes back the GIL around every row of an `executemany`, and under load
    each taking back waits for the thread that holds it; on SQLite the rows therefore go in
    multi-row `VALUES` lists, one step each. psycopg sends an `executemany` as one pipeline."""
    if dialect != "sqlite" or len(rows) == 1:
        cursor.executemany(sql, rows)
        return
    head, _, values = sql.partition(" VALUES ")
    per_insert = max(1, _PARAMETERS_PER_INSERT // len(rows[0]))
    for start in range(0, len(rows), per_insert):
        chunk = rows[start : start + per_insert]
        cursor.execute(f"{head} VALUES {', '.join([values] * len(chunk))}",
                       [value for row in chunk for value in row])


class AppendError(ValueError):
    """An entry that cannot be recorded (its fields are not what an entry allows)."""


@dataclass(frozen=True)
class AppendResult:
    """Where an entry went: its seq and its RFC 6962 leaf hash."""

    seq: int
    leaf_hash: bytes


@dataclass(frozen=True)
class Statements:
    """The appender's SQL for one driver's parameter style."""

    read_head: str
    head_columns: str
    lock: str
    insert_entries: str
    insert_nodes: str
    update_head: str

    def read_head_and(self, scalar: str) -> str:
        """The head row and one more value (a scalar subquery), in one statement."""
        lock = f"{self.lock} OF {head.name}" if self.lock else ""
        return (f"SELECT {self.head_columns}, ({scalar}) FROM {head.name} WHERE id = {HEAD_ID}{lock}")

    @classmethod
    def for_dialect(cls, dialect: str) -> Statements:
        mark = "?" if dialect == "sqlite" else "%s"
        lock = "" if dialect == "sqlite" else " FOR UPDATE"

        def marks(n: int) -> str:
            return ", ".join([mark] * n)

        columns = "size, last_leaf, frontier"
        return cls(
            read_head=f"SELECT {columns} FROM {head.name} WHERE id = {HEAD_ID}{lock}",
            head_columns=columns, lock=lock,
            insert_entries=f"INSERT INTO {entries.name} (seq, leaf_hash, body) VALUES ({marks(3)})",
            insert_nodes=f"INSERT INTO {nodes.name} (node, hash) VALUES ({marks(2)})",
            update_head=f"UPDATE {head.name} SET size = {mark}, last_leaf = {mark}, frontier = {mark} "
                        f"WHERE id = {HEAD_ID}",
        )


@dataclass(frozen=True)
class Mark:
    frontier: MerkleAccumulator
    last: bytes
    flushed: int
    subjects: int


class Appender:
    """Appends for one writer thread over its own transactions (see the module docstring)."""

    def __init__(self, dialect: str, clock: Clock, *, on_statement: Callable[[str], None] | None = None) -> None:
        self.dialect = dialect
        self.sql = Statements.for_dialect(dialect)
        self._clock = clock
        self._on_statement = on_statement
        self._frontier: MerkleAccumulator | None = None
        self._last = b""
        self._flushed = 0  # the size the head row holds in this transaction
        self._opened = 0  # the size when the transaction began
        self._time = ""
        self._entries: list[tuple[int, bytes, bytes]] = []
        self._nodes: list[tuple[int, bytes]] = []
        self.subjects: list[str] = []  # of this transaction's entries, in order

    # -- a transaction --------------------------------------------------------------------------

    def open(self, cursor: Cursor, *, also: str | None = None) -> Any:
        """Start appending in the cursor's transaction (which must hold the log's write lock on
        SQLite, and takes it here on PostgreSQL). `also`: a scalar subquery the caller wants
        read in the same round trip (the gateway's kill switch); its value is returned."""
        cursor.execute(self.sql.read_head if also is None else self.sql.read_head_and(also))
        row = cursor.fetchone()
        self._count("read")
        if row is None:
            raise AppendError("the ledger head row is missing")
        size, last = int(row[0]), bytes(row[1])
        if self._frontier is None or self._frontier.size != size or self._last != last:
            try:
                self._frontier = unpack_frontier(size, bytes(row[2]))
            except ValueError as exc:
                raise AppendError(str(exc)) from exc
            self._last = last
        self._flushed = self._opened = size
        self._time = format_time(self._clock())
        self._entries.clear()
        self._nodes.clear()
        self.subjects.clear()
        return None if also is None else row[3]

    @property
    def opened_size(self) -> int:
        """The log's size when this transaction began."""
        return self._opened

    @property
    def size(self) -> int:
        assert self._frontier is not None
        return self._frontier.size

    @property
    def last_leaf(self) -> bytes:
        return self._last

    @property
    def frontier(self) -> MerkleAccumulator:
        """The head as appended so far (a copy)."""
        assert self._frontier is not None
        return self._frontier.copy()

    def append(self, kind: str, actor: str, subject: str, data: EntryData) -> AppendResult:
        frontier = self._frontier
        assert frontier is not None, "append before open"
        seq = frontier.size
        try:
            body = encode_with_data(seq, self._time, kind, actor, subject, data, self._last)
        except EntryError as exc:
            raise AppendError(f"cannot record {kind!r} entry: {exc}") from exc
        leaf = merkle.leaf_hash(body)
        self._entries.append((seq, leaf, body))
        self.subjects.append(subject)
        done = frontier.append_collect(leaf)
        size = frontier.size
        for level in range(1, len(done)):
            self._nodes.append((node_key(level, (size >> level) - 1), done[level]))
        self._last = leaf
        return AppendResult(seq, leaf)

    @property
    def pending(self) -> int:
        """Entries appended and not yet flushed."""
        return len(self._entries)

    def flush(self, cursor: Cursor) -> None:
        """Write what was appended since the last flush, and the head."""
        if not self._entries:
            return
        assert self._frontier is not None
        insert_rows(cursor, self.sql.insert_entries, self._entries, self.dialect)
        self._count("write")
        if self._nodes:
            insert_rows(cursor, self.sql.insert_nodes, self._nodes, self.dialect)
            self._count("write")
        cursor.execute(self.sql.update_head, (self._frontier.size, self._last, pack_frontier(self._frontier)))
        self._count("write")
        self._flushed = self._frontier.size
        self._entries.clear()
        self._nodes.clear()

    def mark(self) -> Mark:
        """A point to `rewind` to; only between flushes (nothing pending)."""
        assert self._frontier is not None and not self._entries, "mark with appends pending"
        return Mark(self._frontier.copy(), self._last, self._flushed, len(self.subjects))

    def rewind(self, mark: Mark) -> None:
        """Forget the appends since `mark` (the caller rolled their rows back to its savepoint)."""
        self._frontier, self._last, self._flushed = mark.frontier.copy(), mark.last, mark.flushed
        self._entries.clear()
        self._nodes.clear()
        del self.subjects[mark.subjects:]

    def close(self) -> None:
        """The transaction committed: the memory is the row."""
        assert not self._entries, "close with appends not flushed"
        self._time = ""

    def forget(self) -> None:
        """The transaction did not commit (or may not have): trust only the row from now on."""
        self._frontier = None
        self._last = b""
        self._time = ""
        self._entries.clear()
        self._nodes.clear()
        self.subjects.clear()

    def _count(self, kind: str) -> None:
        if self._on_statement is not None:
            self._on_statement(kind)
