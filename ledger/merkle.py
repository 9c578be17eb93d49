"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

The tree over leaves ``D[0:n]`` is the RFC 6962 Merkle Tree Hash (MTH): the empty tree hashes to
SHA-256(""), a leaf to SHA-256(0x00 || data) and an inner node to SHA-256(0x01 || left || right),
where the left subtree holds the largest power of two strictly below ``n`` leaves.

Proof generation never rebuilds the tree. It asks a ``subtree(start, end)`` callback for the MTH
of leaves ``[start, end)`` and only ever asks for *nodes of the tree of the proof's size*:

* a perfect aligned subtree ``[i * 2**h, (i + 1) * 2**h)``, or
* a right-edge node ``[i * 2**h, size)`` with ``size - i * 2**h < 2**h``.

Every such range splits, by :func:`aligned_subtrees`, into at most log2(size) perfect aligned
subtrees whose hashes folded right to left give its MTH (see :func:`fold_subtrees`), so a store
that keeps the hashes of aligned power-of-two subtrees can answer every request cheaply.
:func:`inclusion_ranges` and :func:`consistency_ranges` list the requested ranges in proof order.

Verification follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 and raises :class:`ProofError`
with a reason; a size-0 first tree in a consistency check is rejected (it proves nothing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from ledger.compact import CompactRange, MerkleAccumulator

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "MerkleAccumulator",
    "ProofError",
    "Subtree",
    "aligned_subtrees",
    "consistency_proof",
    "consistency_ranges",
    "fold_subtrees",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()

Subtree = Callable[[int, int], bytes]
"""``subtree(start, end)`` -> MTH of leaves ``[start, end)``; see the module docstring."""

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A Merkle proof does not verify, or its parameters are impossible. ``str()`` says why."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """The RFC 6962 Merkle Tree Hash of a list of leaf hashes, in O(log n) extra memory."""
    acc = MerkleAccumulator()
    for h in leaf_hashes:
        acc.append(h)
    return acc.root()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2): RFC 6962's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def aligned_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """Split ``[start, end)`` into maximal perfect aligned subtrees, left to right.

    Each piece is ``[i * 2**h, (i + 1) * 2**h)``. For the ranges proofs request (module
    docstring) the pieces shrink from left to right and the range's MTH is their right fold.
    """
    if not 0 <= start <= end:
        raise ValueError(f"invalid range [{start}, {end})")
    pieces: list[tuple[int, int]] = []
    while start < end:
        # The largest block aligned at `start` (start == 0 is aligned to everything).
        size = start & -start if start else 1 << (end.bit_length())
        while start + size > end:
            size >>= 1
        pieces.append((start, start + size))
        start += size
    return pieces


def fold_subtrees(hashes: Sequence[bytes]) -> bytes:
    """MTH of a proof range from its :func:`aligned_subtrees` pieces' hashes (right fold)."""
    if not hashes:
        raise ValueError("a range needs at least one subtree")
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs make up the inclusion proof of leaf ``index`` in a tree of ``size``.

    RFC 6962 section 2.1.1 PATH(m, D[n]), in proof order (the leaf's sibling first).
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _split(end - start)
        if index < mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((start, mid))
            start = mid
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """The ranges whose MTHs make up the consistency proof from ``size1`` to ``size2``.

    RFC 6962 section 2.1.2 SUBPROOF(m, D[n], true), in proof order. Ranges inside ``[0, size1)``
    are perfect aligned subtrees of the first tree; the others lie inside ``[size1, size2)``.
    """
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}")
    ranges: list[tuple[int, int]] = []
    start, end, m, whole = 0, size2, size1, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            break
        k = _split(n)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
            m -= k
            whole = False
    ranges.reverse()
    return ranges


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """The RFC 6962 audit path of leaf ``index`` in the tree of the first ``size`` leaves."""
    return [subtree(s, e) for s, e in inclusion_ranges(index, size)]


def consistency_proof(size1: int, size2: int, subtree: Subtree) -> list[bytes]:
    """The RFC 6962 consistency proof between the trees of ``size1`` and ``size2`` leaves.

    Empty when the sizes are equal; ``size1`` must be at least 1 (nothing is proven from 0).
    """
    return [subtree(s, e) for s, e in consistency_ranges(size1, size2)]


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        if not isinstance(p, bytes | bytearray) or len(p) != HASH_SIZE:
            raise ProofError(f"proof element {i} is not a {HASH_SIZE}-byte hash")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes] | None, root_hash: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) sits at ``index`` in the tree of ``size`` with ``root_hash``.

    RFC 9162 section 2.1.3.2. Raises :class:`ProofError` naming the failed check.
    """
    proof = list(proof or ())
    if index < 0 or size < 0:
        raise ProofError("negative leaf index or tree size")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is not {HASH_SIZE} bytes")
    _check_proof_hashes(proof)
    fn, sn, r = index, size - 1, bytes(leaf)
    for p in proof:
        if sn == 0:
            raise ProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to the root")
    if r != root_hash:
        raise ProofError("computed root does not match the tree head")


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes] | None
) -> None:
    """Check that the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    RFC 9162 section 2.1.4.2. Raises :class:`ProofError` naming the failed check.
    """
    proof = list(proof or ())
    if size1 < 0 or size2 < 0:
        raise ProofError("negative tree size")
    if size2 < size1:
        raise ProofError(f"tree size {size2} is smaller than the earlier size {size1}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError("trees of equal size need an empty consistency proof")
        if root1 != root2:
            raise ProofError("trees of equal size have different roots")
        return
    _check_proof_hashes(proof)
    path = [bytes(root1), *proof] if size1 & (size1 - 1) == 0 else proof
    if not path:
        raise ProofError("consistency proof is empty")
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != root1:
        raise ProofError("consistency proof does not reproduce the first root")
    if sr != root2:
        raise ProofError("consistency proof does not reproduce the second root")
