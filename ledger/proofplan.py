"""Consistency proofs built while streaming a log once, for the verifier's steps (5) and (6).

An offline verifier holds only a compact range, never the tree, yet must check a real RFC 6962
consistency proof between each checkpoint and the next (and from a trusted checkpoint kept from
before to the newest one). Every node such a proof needs is the MTH of a leaf range that splits
into perfect aligned subtrees (:func:`ledger.merkle.aligned_subtrees`), and each of those is
completed at a known size of the stream: the moment its last leaf is appended. So the plan,
made before streaming, says at which sizes which subtree hashes to keep; when the stream
reaches the larger size of a pair, the kept hashes fold into the proof.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ledger.merkle import aligned_subtrees, consistency_ranges, fold_subtrees

__all__ = ["Pair", "ProofPlan"]

Pair = tuple[int, int, int]
"""``(size1, size2, step)``: a consistency proof from ``size1`` to ``size2``, for ``step``."""


class ProofPlan:
    """Which subtree hashes to capture at which stream sizes, and the proofs they make."""

    def __init__(self, sizes: Iterable[int], trusted_size: int | None) -> None:
        """``sizes``: the checkpoint sizes; ``trusted_size``: the trusted checkpoint's, if any."""
        real = sorted({s for s in sizes if s > 0})
        self.pairs: list[Pair] = [(a, b, 5) for a, b in zip(real, real[1:], strict=False)]
        if trusted_size is not None and real and 0 < trusted_size < real[-1]:
            self.pairs.append((trusted_size, real[-1], 6))
        # size -> [(pair, start, height)]: at this size, keep the 2**height subtree from start.
        self._capture: dict[int, list[tuple[Pair, int, int]]] = {}
        self._captured: dict[Pair, dict[tuple[int, int], bytes]] = {}
        self._ending: dict[int, list[Pair]] = {}
        for pair in self.pairs:
            size1, size2, _ = pair
            self._captured[pair] = {}
            self._ending.setdefault(size2, []).append(pair)
            for start, end in consistency_ranges(size1, size2):
                for a, b in aligned_subtrees(start, end):
                    self._capture.setdefault(b, []).append((pair, a, (b - a).bit_length() - 1))

    def capture_sizes(self) -> set[int]:
        """Stream sizes at which :meth:`keep` must be given the subtrees just completed."""
        return set(self._capture)

    def wants(self, size: int) -> bool:
        """Whether subtree hashes completed at ``size`` are needed."""
        return size in self._capture

    def keep(self, size: int, completed: Sequence[bytes]) -> None:
        """Record the subtrees completed by the leaf that made the stream ``size`` long.

        ``completed[h]`` is the hash of the aligned ``2**h``-leaf subtree ending at ``size``
        (as :meth:`ledger.compact.MerkleAccumulator.append_collect` returns them).
        """
        for pair, start, height in self._capture.pop(size, ()):
            self._captured[pair][(start, size)] = completed[height]

    def ending_at(self, size: int) -> list[Pair]:
        """The pairs whose proof is complete once the stream is ``size`` long (popped)."""
        return self._ending.pop(size, [])

    def proof(self, pair: Pair) -> list[bytes]:
        """The RFC 6962 consistency proof for ``pair`` from the captured hashes (once)."""
        size1, size2, _ = pair
        nodes = self._captured.pop(pair)
        return [
            fold_subtrees([nodes[piece] for piece in aligned_subtrees(start, end)])
            for start, end in consistency_ranges(size1, size2)
        ]
