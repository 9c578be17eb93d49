"""Incremental tree heads in O(log n) memory: the compact range ``[0, size)``.

A tree of ``size`` leaves is fully described, for appending and for its root, by the hashes of
the perfect aligned subtrees matching the set bits of ``size`` (largest first). Appending a leaf
merges equal-height neighbours like a binary counter carries, so each append costs one leaf
hash plus, amortised, one node hash. Verifiers stream millions of entries through it; stores use
it to learn the aligned subtree hashes they persist for proof generation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = ["CompactRange", "MerkleAccumulator"]

_sha256 = hashlib.sha256
_EMPTY_ROOT = _sha256(b"").digest()


class MerkleAccumulator:
    """Append leaf hashes one at a time; read the RFC 6962 root at any size.

    ``hashes`` holds the compact range: one perfect-subtree hash per set bit of ``size``, from
    the largest (leftmost) subtree to the smallest.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a compact range of size {size} holds {bin(size).count('1')} hashes")
        self.size = size
        self._stack: list[bytes] = list(hashes)

    @property
    def hashes(self) -> list[bytes]:
        """The compact range's subtree hashes, largest subtree first (a copy)."""
        return list(self._stack)

    def ranges(self) -> list[tuple[int, int]]:
        """The leaf ranges ``[start, end)`` covered by :attr:`hashes`, in the same order."""
        out: list[tuple[int, int]] = []
        start = 0
        for bit in reversed(range(self.size.bit_length())):
            if self.size >> bit & 1:
                out.append((start, start + (1 << bit)))
                start += 1 << bit
        return out

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf hash (already SHA-256(0x00 || data))."""
        n = self.size
        stack = self._stack
        h = leaf_hash
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        self.size += 1

    def append_collect(self, leaf_hash: bytes) -> list[bytes]:
        """Append, returning every perfect subtree completed by this leaf.

        Element ``h`` is the hash of the aligned subtree of ``2**h`` leaves ending at the new
        size (element 0 is the leaf itself). Used to capture proof nodes while streaming.
        """
        n = self.size
        stack = self._stack
        h = leaf_hash
        done = [h]
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            done.append(h)
            n >>= 1
        stack.append(h)
        self.size += 1
        return done

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaf hashes."""
        for h in leaf_hashes:
            self.append(h)

    def root(self) -> bytes:
        """The RFC 6962 Merkle Tree Hash of the leaves appended so far."""
        stack = self._stack
        if not stack:
            return _EMPTY_ROOT
        r = stack[-1]
        for h in reversed(stack[:-1]):
            r = _sha256(b"\x01" + h + r).digest()
        return r

    def copy(self) -> MerkleAccumulator:
        """An independent accumulator at the same size."""
        return MerkleAccumulator(self.size, self._stack)


CompactRange = MerkleAccumulator
"""Alias: the compact range ``[0, size)`` is exactly what the accumulator keeps."""
