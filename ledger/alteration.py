"""Which entry was altered: what the verifier says when a prev link breaks (step (3)) and when a
checkpoint's root no longer matches the entries it covers (step (4)).

Every entry's ``prev`` is the leaf hash of the entry before it, and Warden signs tree heads of
that chain only. Editing any byte of entry k changes its leaf hash, so the chain breaks at entry
k+1's ``prev``; editing entry k+1's ``prev`` breaks the very same link. The entries alone cannot
tell the two apart; the signed checkpoints can, as far as they reach. When entry k+1's ``prev``
is not entry k's leaf hash and every link before it holds:

(a) at entry 0 nothing precedes the link, whose ``prev`` must be 64 zeros: entry 0 was
    altered;
(b) if a checkpoint of size k+1 matched the first k+1 entries (step (4), before entry k+1 was
    read), entry k is as signed: entry k+1's prev link was altered;
(c) otherwise the first checkpoint past k+1 that verifies under the key in force is asked: its
    tree head is recomputed with entry k+1's ``prev`` in place of entry k's leaf hash. If that
    gives the signed head, the signed log held that leaf hash at k and every other entry below
    the checkpoint's size as it is now: entry k, and only entry k, was altered. If it does not,
    entry k was not altered alone: entry k+1's prev link was, or entry k was together with
    other entries;
(d) with no checkpoint to ask (none past k+1, none that verifies, or the log ends before its
    size), either is possible, and the message says so.

A checkpoint whose root does not match the first n entries, while every prev link up to entry
n-1 holds, means entry n-1 was altered: had it not been, its ``prev`` would be the signed leaf
hash of entry n-2, so entry n-2 would be as signed, and so on down to entry 0, and the tree head
would match. Entries from the last checkpoint that did match up to n-2 may have been rewritten
with it (a chain rewritten to hide an edit); entries below that checkpoint's size are as signed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ledger.compact import MerkleAccumulator
from ledger.merkle import leaf_hash

__all__ = ["BrokenLink", "altered_under_checkpoint", "head_with_leaf"]


def _b64(root: bytes) -> str:
    return base64.b64encode(root).decode()


@dataclass(frozen=True)
class BrokenLink:
    """Entry ``seq``'s ``prev`` is not the leaf hash of entry ``seq - 1`` (``leaf``); both hex.

    Each method is the step (3) message for one case of the module docstring.
    """

    seq: int
    prev: str
    leaf: str

    def first_entry(self) -> str:
        """(a): the first entry's ``prev`` is not 64 zeros."""
        return f"entry 0 was altered: the first entry's prev is 64 zeros, not {self.prev}"

    def link_altered(self) -> str:
        """(b): a checkpoint of size ``seq`` confirmed the entry before the link."""
        k = self.seq - 1
        return (
            f"entry {self.seq}'s prev link was altered: entry {k} is as the checkpoint of size "
            f"{self.seq} signed it, and its leaf hash is {self.leaf}, not {self.prev}"
        )

    def entry_altered(self, size: int) -> str:
        """(c), the recomputed head matches: the entry before the link alone was altered."""
        k = self.seq - 1
        return (
            f"entry {k} was altered: its leaf hash is {self.leaf}, but entry {self.seq}'s prev "
            f"{self.prev} is the leaf hash the checkpoint of size {size} signed for it"
        )

    def not_entry_alone(self, size: int) -> str:
        """(c), the recomputed head does not match: not the entry before the link alone."""
        k = self.seq - 1
        return (
            f"entry {self.seq}'s prev link was altered, or entry {k} was together with other "
            f"entries (the checkpoint of size {size} rules out entry {k} alone): entry "
            f"{self.seq}'s prev is {self.prev}, but entry {k}'s leaf hash is {self.leaf}"
        )

    def undecided(self) -> str:
        """(d): no checkpoint can tell which side of the link was altered."""
        k = self.seq - 1
        return (
            f"entry {k} was altered, or entry {self.seq}'s prev link was: entry {self.seq}'s "
            f"prev is {self.prev}, but entry {k}'s leaf hash is {self.leaf} (no signed "
            "checkpoint tells which)"
        )


def head_with_leaf(
    before: Sequence[bytes], index: int, leaf: bytes, following: Iterable[bytes], size: int
) -> bytes | None:
    """The tree head at ``size`` of a log whose first ``index`` leaves have the compact range
    ``before``, whose leaf ``index`` is the hash ``leaf``, and whose later entries are
    ``following`` (raw bytes, read only as far as ``size``); None if they end before it."""
    acc = MerkleAccumulator(index, before)
    acc.append(leaf)
    entries = iter(following)
    while acc.size < size:
        raw = next(entries, None)
        if raw is None:
            return None
        acc.append(leaf_hash(raw))
    return acc.root()


def altered_under_checkpoint(size: int, signed: bytes, computed: bytes, confirmed: int) -> str:
    """Step (4)'s message for a checkpoint of ``size`` >= 1 whose root ``signed`` is not the
    tree head ``computed`` of the first ``size`` entries, every prev link up to entry size-1
    holding; ``confirmed`` is the largest size below it whose checkpoint matched (0 if none)."""
    last = size - 1
    message = (
        f"entry {last} was altered: every prev link up to it holds, but the first {size} "
        f"entries give tree head {_b64(computed)}, not the signed {_b64(signed)}"
    )
    if confirmed == last - 1:
        message += f" (entry {confirmed} may have been rewritten with it)"
    elif confirmed < last - 1:
        message += f" (entries {confirmed} to {last - 1} may have been rewritten with it)"
    return message
