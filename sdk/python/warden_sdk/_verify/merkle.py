"""RFC 6962 inclusion proofs, checked as RFC 9162 section 2.1.3.2 says."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["HASH_SIZE", "ProofError", "leaf_hash", "verify_inclusion"]

HASH_SIZE = 32


class ProofError(ValueError):
    """An inclusion proof does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that the leaf hash `leaf` sits at `index` in the tree of `size` whose head is `root`."""
    if index < 0 or size < 0:
        raise ProofError("negative leaf index or tree size")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is not {HASH_SIZE} bytes")
    for i, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise ProofError(f"proof element {i} is not a {HASH_SIZE}-byte hash")
    fn, sn, computed = index, size - 1, bytes(leaf)
    for node in proof:
        if sn == 0:
            raise ProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            computed = hashlib.sha256(b"\x01" + node + computed).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            computed = hashlib.sha256(b"\x01" + computed + node).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to the root")
    if computed != root:
        raise ProofError("computed root does not match the tree head")
