"""Stored subtree hashes: how the database answers Merkle questions without recomputing the tree.

Two pieces:

- the frontier: the compact range of the whole log (`ledger.compact.MerkleAccumulator`), i.e. the
  roots of the perfect subtrees that make up a tree of `size` leaves (one per set bit of `size`,
  largest first). It lives in the head row. Pushing a leaf merges equal-height neighbours, and
  every merge is a newly *complete* aligned subtree, which the caller stores in `ledger_nodes`. Appending is O(1) amortised; the tree head
  is a fold of at most 64 hashes.
- `SubtreeReader`: answers "Merkle tree hash of leaves [start, end)" for the proof builders in
  `ledger.merkle` (`inclusion_ranges`, `consistency_ranges`). Any range splits (RFC 6962's "largest power of two smaller than n" rule) into
  aligned perfect subtrees that are stored, so a proof at any size costs one indexed query for
  about 2·log2(n) hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from sqlalchemy import Connection, bindparam, select

from ledger.compact import MerkleAccumulator
from ledger.merkle import EMPTY_ROOT, node_hash
from ledger.schema import NODE_LEVEL_SHIFT, entries, node_key, nodes

HASH_SIZE = 32

NodeKey = tuple[int, int]  # (level, index): leaves [index << level, (index + 1) << level)

# Built once: statements with an expanding IN are compiled once and cached, so a proof costs two
# indexed queries and no per-call SQL construction.
_LEAVES = select(entries.c.seq, entries.c.leaf_hash).where(entries.c.seq.in_(bindparam("seqs", expanding=True)))
_NODES = select(nodes.c.node, nodes.c.hash).where(nodes.c.node.in_(bindparam("nodes", expanding=True)))


def unpack_frontier(size: int, packed: bytes) -> MerkleAccumulator:
    """The head row's compact range; its length must match the number of set bits of `size`."""
    if len(packed) != HASH_SIZE * size.bit_count():
        raise ValueError(f"corrupt ledger head: frontier of {len(packed)} bytes for size {size}")
    return MerkleAccumulator(size, [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)])


def pack_frontier(frontier: MerkleAccumulator) -> bytes:
    return b"".join(frontier.hashes)


def push_leaf(frontier: MerkleAccumulator, leaf: bytes, completed: list[dict[str, object]]) -> None:
    """Append `leaf` to `frontier`, adding every inner subtree it completes to `completed` as
    `ledger_nodes` rows."""
    done = frontier.append_collect(leaf)
    size = frontier.size
    for level in range(1, len(done)):
        completed.append({"node": node_key(level, (size >> level) - 1), "hash": done[level]})


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def plan_range(start: int, end: int, out: set[NodeKey]) -> None:
    """Add to `out` the stored nodes whose hashes determine MTH(leaves[start:end])."""
    n = end - start
    if n <= 0:
        return
    if n & (n - 1) == 0 and start % n == 0:
        out.add((n.bit_length() - 1, start // n))
        return
    k = _largest_power_of_two_below(n)
    plan_range(start, start + k, out)
    plan_range(start + k, end, out)


def hash_range(start: int, end: int, known: dict[NodeKey, bytes]) -> bytes:
    """MTH(leaves[start:end]) from the nodes `plan_range` asked for."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return known[(n.bit_length() - 1, start // n)]
    k = _largest_power_of_two_below(n)
    return node_hash(hash_range(start, start + k, known), hash_range(start + k, end, known))


class SubtreeReader:
    """Fetches stored subtree hashes in one query per call and serves `subtree(start, end)`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def fetch(self, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
        wanted = set(keys)
        found: dict[NodeKey, bytes] = {}
        leaves = sorted(index for level, index in wanted if level == 0)
        inner = sorted(node_key(level, index) for level, index in wanted if level > 0)
        if leaves:
            rows = self._conn.execute(_LEAVES, {"seqs": leaves})
            found.update(((0, int(seq)), bytes(h)) for seq, h in rows)
        if inner:
            mask = (1 << NODE_LEVEL_SHIFT) - 1
            rows = self._conn.execute(_NODES, {"nodes": inner})
            found.update(((int(n) >> NODE_LEVEL_SHIFT, int(n) & mask), bytes(h)) for n, h in rows)
        missing = wanted - found.keys()
        if missing:
            raise LookupError(f"ledger tree is missing stored subtree hashes {sorted(missing)[:5]}")
        return found

    def ranges(self, spans: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """MTH of each [start, end) span, from one round trip to the database."""
        keys: set[NodeKey] = set()
        for start, end in spans:
            plan_range(start, end, keys)
        known = self.fetch(keys)
        return {(start, end): hash_range(start, end, known) for start, end in spans}
