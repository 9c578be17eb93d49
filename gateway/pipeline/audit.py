"""Reads of the audit log for auditors and agents: pages of entries and the receipts that prove
them (inclusion of one entry, consistency between two tree sizes).

Each read sees one snapshot of the log. A request for what the log does not hold (a `from` beyond
its size, an unknown seq, a tree size it never reached) is `OutOfRange`; the bytes of an entry are
returned exactly as hashed, so a caller can recompute every leaf hash.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from gateway.pipeline.errors import OutOfRange
from ledger.database import read_only
from ledger.store import ConsistencyReceipt, InclusionReceipt, Ledger, LedgerError

T = TypeVar("T")

#: At most this many entries in one page.
MAX_ENTRIES_PER_CALL = 1000


@dataclass(frozen=True)
class EntryPage:
    """`entries` as (seq, exact bytes), read when the log held `size` entries."""

    size: int
    entries: list[tuple[int, bytes]]


class AuditReader:
    """Read-only views of the audit log over one database."""

    def __init__(self, db: Engine, ledger: Ledger, *, page_limit: int = MAX_ENTRIES_PER_CALL) -> None:
        self.db = db
        self.ledger = ledger
        self.page_limit = page_limit

    def entries(self, start: int, stop: int | None) -> EntryPage:
        """Entries `start` up to `stop` (exclusive; default: the end), at most `page_limit`."""
        with read_only(self.db.connect()) as conn:
            size = self.ledger.head(conn).size
            if start > size:
                raise OutOfRange(f"from={start} is beyond the log's size {size}")
            end = min(size, stop if stop is not None else size, start + self.page_limit)
            found = list(enumerate(self.ledger.iter_entries(conn, start, end), start)) if end > start else []
        return EntryPage(size, found)

    def inclusion(self, seq: int, size: int | None) -> InclusionReceipt:
        """Proof that entry `seq` is in the tree of `size` (default: the latest checkpoint)."""
        return self._read(lambda conn: self.ledger.inclusion(conn, seq, size))

    def consistency(self, size1: int, size2: int | None) -> ConsistencyReceipt:
        """Proof that the tree of `size2` (default: the latest checkpoint) extends `size1`."""
        return self._read(lambda conn: self.ledger.consistency(conn, size1, size2))

    def _read(self, read: Callable[[Connection], T]) -> T:
        try:
            with read_only(self.db.connect()) as conn:
                return read(conn)
        except LedgerError as exc:
            raise OutOfRange(str(exc)) from None


# -- receipts as JSON (hashes as lowercase hex) ---------------------------------------------

def inclusion_proof(receipt: InclusionReceipt) -> dict[str, Any]:
    return {
        "seq": receipt.seq, "size": receipt.size, "leaf_hash": receipt.leaf_hash.hex(),
        "root": receipt.root.hex(), "proof": [p.hex() for p in receipt.proof],
        "checkpoint": receipt.checkpoint,
    }


def consistency_proof(receipt: ConsistencyReceipt) -> dict[str, Any]:
    return {
        "from": receipt.size1, "to": receipt.size2, "root1": receipt.root1.hex(),
        "root2": receipt.root2.hex(), "proof": [p.hex() for p in receipt.proof],
        "checkpoint1": receipt.checkpoint1, "checkpoint2": receipt.checkpoint2,
    }
