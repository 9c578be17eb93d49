"""Merkle proofs: generation from subtree callbacks vs the RFC 6962 definitions and verifiers."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.compact import MerkleAccumulator


def _leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 MTH, recursively, as the RFC writes it (the oracle)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 section 2.1.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1 << ((n - 1).bit_length() - 1)
    if m < k:
        return _path(m, leaves[:k]) + [_mth(leaves[k:])]
    return _path(m - k, leaves[k:]) + [_mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], whole: bool) -> list[bytes]:
    """RFC 6962 section 2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(leaves)
    if m == n:
        return [] if whole else [_mth(leaves)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return _subproof(m, leaves[:k], whole) + [_mth(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [_mth(leaves[:k])]


class RecordingSubtree:
    """A subtree callback over a plain list that records every range it is asked for."""

    def __init__(self, leaves: list[bytes], size: int) -> None:
        self.leaves = leaves
        self.size = size
        self.asked: list[tuple[int, int]] = []

    def __call__(self, start: int, end: int) -> bytes:
        self.asked.append((start, end))
        return merkle.root(self.leaves[start:end])

    def assert_only_tree_nodes(self) -> None:
        """Every request is a node of the tree of `size`: aligned perfect or right-edge."""
        for start, end in self.asked:
            width = end - start
            assert 0 < width and end <= self.size
            if width & (width - 1) == 0 and start % width == 0:
                continue
            assert end == self.size, (start, end)
            span = 1 << width.bit_length()
            assert start % span == 0, (start, end)


sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size=sizes)
def test_inclusion_proofs_match_rfc6962_and_verify(data: st.DataObject, size: int) -> None:
    leaves = _leaves(size)
    index = data.draw(st.integers(0, size - 1))
    subtree = RecordingSubtree(leaves, size)
    proof = merkle.inclusion_proof(index, size, subtree)
    assert proof == _path(index, leaves)
    subtree.assert_only_tree_nodes()
    head = _mth(leaves)
    merkle.verify_inclusion(leaves[index], index, size, proof, head)
    if proof:
        bad = list(proof)
        bad[data.draw(st.integers(0, len(bad) - 1))] = b"\x00" * 32
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(leaves[index], index, size, bad, head)
    with pytest.raises(merkle.ProofError):
        merkle.verify_inclusion(leaves[index], index, 2 * size + 1, proof, head)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), size2=sizes)
def test_consistency_proofs_match_rfc6962_and_verify(data: st.DataObject, size2: int) -> None:
    leaves = _leaves(size2)
    size1 = data.draw(st.integers(1, size2))
    subtree = RecordingSubtree(leaves, size2)
    proof = merkle.consistency_proof(size1, size2, subtree)
    assert proof == _subproof(size1, leaves, True)
    subtree.assert_only_tree_nodes()
    root1, root2 = _mth(leaves[:size1]), _mth(leaves)
    merkle.verify_consistency(size1, size2, root1, root2, proof)
    wrong = merkle.node_hash(root1, root1)
    with pytest.raises(merkle.ProofError):
        merkle.verify_consistency(size1, size2, wrong, root2, proof)
    if size1 < size2:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(size1, size2, root1, wrong, proof)
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(size1, size2, root1, root2, proof[:-1])


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, 300))
def test_accumulator_root_equals_mth_at_every_size(size: int) -> None:
    leaves = _leaves(size)
    acc = MerkleAccumulator()
    for i, leaf in enumerate(leaves):
        done = acc.append_collect(leaf) if i % 2 else [leaf]
        if i % 2 == 0:
            acc.append(leaf)
        n = i + 1
        # append_collect returns the aligned subtrees ending here, smallest first.
        for height, h in enumerate(done):
            assert h == _mth(leaves[n - (1 << height) : n])
        assert acc.root() == _mth(leaves[:n])
    assert acc.root() == merkle.root(leaves) == _mth(leaves)
    assert [(s, e) for s, e in acc.ranges()] == merkle.aligned_subtrees(0, size)
    assert acc.hashes == [_mth(leaves[s:e]) for s, e in acc.ranges()]
    clone = MerkleAccumulator(acc.size, acc.hashes)
    assert clone.root() == acc.root()


@given(start=st.integers(0, 1000), width=st.integers(0, 1000))
def test_aligned_subtrees_tile_the_range(start: int, width: int) -> None:
    pieces = merkle.aligned_subtrees(start, start + width)
    pos = start
    for a, b in pieces:
        size = b - a
        assert a == pos and size & (size - 1) == 0 and a % size == 0
        pos = b
    assert pos == start + width


@settings(max_examples=100, deadline=None)
@given(data=st.data(), size2=st.integers(2, 300))
def test_proof_ranges_fold_from_aligned_subtrees(data: st.DataObject, size2: int) -> None:
    """A store holding only aligned subtree hashes can answer every proof request."""
    leaves = _leaves(size2)
    size1 = data.draw(st.integers(1, size2 - 1))
    index = data.draw(st.integers(0, size2 - 1))
    ranges = merkle.consistency_ranges(size1, size2) + merkle.inclusion_ranges(index, size2)
    for start, end in ranges:
        pieces = [_mth(leaves[a:b]) for a, b in merkle.aligned_subtrees(start, end)]
        assert merkle.fold_subtrees(pieces) == _mth(leaves[start:end])


def test_invalid_proof_requests_are_refused() -> None:
    subtree = RecordingSubtree(_leaves(4), 4)
    with pytest.raises(ValueError, match="outside a tree"):
        merkle.inclusion_proof(4, 4, subtree)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(0, 4, subtree)
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(5, 4, subtree)
    assert merkle.consistency_proof(4, 4, subtree) == []
    with pytest.raises(ValueError, match="compact range"):
        MerkleAccumulator(3, [b"x" * 32])


def test_verifier_messages_say_why() -> None:
    leaves = _leaves(8)
    head = _mth(leaves)
    proof = _path(3, leaves)
    with pytest.raises(merkle.ProofError, match="not below tree size"):
        merkle.verify_inclusion(leaves[3], 8, 8, proof, head)
    with pytest.raises(merkle.ProofError, match="not a 32-byte hash"):
        merkle.verify_inclusion(leaves[3], 3, 8, [*proof[:-1], b"short"], head)
    with pytest.raises(merkle.ProofError, match="longer than the path"):
        merkle.verify_inclusion(leaves[3], 3, 8, [*proof, proof[0]], head)
    with pytest.raises(merkle.ProofError, match="shorter than the path"):
        merkle.verify_inclusion(leaves[3], 3, 8, proof[:-1], head)
    with pytest.raises(merkle.ProofError, match="does not match the tree head"):
        merkle.verify_inclusion(leaves[2], 3, 8, proof, head)
    with pytest.raises(merkle.ProofError, match="empty tree proves nothing"):
        merkle.verify_consistency(0, 8, merkle.EMPTY_ROOT, head, [])
    with pytest.raises(merkle.ProofError, match="smaller than the earlier size"):
        merkle.verify_consistency(8, 7, head, head, [])
