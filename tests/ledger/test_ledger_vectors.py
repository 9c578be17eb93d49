"""Every published vector in ../shared/test-vectors, one parametrised test each.

The vectors sit beside the repository (``<repo>/../shared/test-vectors``), not in it. Without
that directory every vector test is skipped with a reason that says so and names the path looked
at; a directory that is there but lacks a file the tests read is a failure: these are the
ledger's ground truth.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger import merkle
from ledger.checkpoint import Checkpoint
from ledger.note import NoteError, Verifier, format_signer_key, open_note, parse_signer_key

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "test-vectors"


class PublishedVectors:
    """The vector files under ``root``, read as pytest parameters when the tests are collected."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def missing(self) -> str | None:
        """Why no vector test can run (the directory is not there), or None."""
        if self.root.is_dir():
            return None
        return f"the published test vectors directory is missing: looked for {self.root}"

    def require(self) -> None:
        """Skip the calling test, saying why, when the directory is missing."""
        reason = self.missing()
        if reason is not None:
            pytest.skip(reason)

    def absent(self) -> list[Any]:
        """The one parameter standing for vectors that could not be read: a skip naming the
        directory when it is missing, else a case the test fails on (a file is missing)."""
        reason = self.missing()
        if reason is not None:
            return [pytest.param(None, id="vector-directory-missing", marks=pytest.mark.skip(reason=reason))]
        return [pytest.param(None, id="vector-file-missing")]

    def json_files(self, folder: str) -> list[Any]:
        base = self.root / folder
        files = sorted(base.rglob("*.json")) if base.is_dir() else []
        if not files:
            return self.absent()
        return [
            pytest.param(json.loads(f.read_text()), id=f"vector-{folder}-{f.relative_to(base)}")
            for f in files
        ]

    def load(self, name: str) -> Any:
        path = self.root / name
        return json.loads(path.read_text()) if path.is_file() else None

    def table(self, name: str, key: str, label: str) -> list[Any]:
        data = self.load(name)
        if data is None:
            return self.absent()
        return [pytest.param(item, id=f"vector-{label}-{i}") for i, item in enumerate(data[key])]


PUBLISHED = PublishedVectors(VECTORS)


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


REFERENCE = "merkle/rfc6962_reference_vectors.json"
NOTES = "signed-note/signed_note_vectors.json"


def test_vector_directory_is_complete() -> None:
    PUBLISHED.require()
    assert VECTORS.is_dir(), f"test vectors not found at {VECTORS}"
    assert len(list((VECTORS / "merkle/inclusion").rglob("*.json"))) == 98
    assert len(list((VECTORS / "merkle/consistency").rglob("*.json"))) == 98
    for name in (REFERENCE, NOTES, "ed25519/ed25519_rfc8032_7_1.json"):
        assert (VECTORS / name).is_file(), name


@pytest.mark.parametrize("case", PUBLISHED.json_files("merkle/inclusion"))
def test_inclusion_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    proof = [_b64(p) for p in case["proof"] or []]
    args = (_b64(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, _b64(case["root"]))
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("case", PUBLISHED.json_files("merkle/consistency"))
def test_consistency_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    proof = [_b64(p) for p in case["proof"] or []]
    args = (case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), proof)
    if case["wantErr"]:
        with pytest.raises(merkle.ProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def _reference_leaves() -> list[bytes]:
    data = PUBLISHED.load(REFERENCE)
    assert data is not None, f"vectors missing under {VECTORS}"
    return [merkle.leaf_hash(bytes.fromhex(x)) for x in data["leaf_inputs_hex"]]


def _subtree(leaves: list[bytes]) -> merkle.Subtree:
    return lambda start, end: merkle.root(leaves[start:end])


def _roots() -> list[Any]:
    data = PUBLISHED.load(REFERENCE)
    if data is None:
        return PUBLISHED.absent()
    return [
        pytest.param((size, want), id=f"vector-rfc6962-root-size-{size}")
        for size, want in enumerate(data["root_hash_by_size_hex"])
    ]


@pytest.mark.parametrize("case", _roots())
def test_reference_root_vector(case: tuple[int, str] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    size, want = case
    assert merkle.root(_reference_leaves()[:size]).hex() == want


@pytest.mark.parametrize("case", PUBLISHED.table(REFERENCE, "inclusion_proofs", "rfc6962-inclusion"))
def test_reference_inclusion_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    leaves = _reference_leaves()
    index, size = case["leaf_index"], case["tree_size"]
    proof = merkle.inclusion_proof(index, size, _subtree(leaves))
    assert [p.hex() for p in proof] == case["proof_hex"]
    merkle.verify_inclusion(leaves[index], index, size, proof, merkle.root(leaves[:size]))


@pytest.mark.parametrize("case", PUBLISHED.table(REFERENCE, "consistency_proofs", "rfc6962-consistency"))
def test_reference_consistency_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    leaves = _reference_leaves()
    size1, size2 = case["size1"], case["size2"]
    proof = merkle.consistency_proof(size1, size2, _subtree(leaves))
    assert [p.hex() for p in proof] == case["proof_hex"]
    merkle.verify_consistency(
        size1, size2, merkle.root(leaves[:size1]), merkle.root(leaves[:size2]), proof
    )


@pytest.mark.parametrize("case", PUBLISHED.table(REFERENCE, "hasher_vectors", "rfc6962-hasher"))
def test_reference_hasher_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    if case["op"] == "empty_root":
        got = merkle.EMPTY_ROOT
    elif case["op"] == "leaf":
        got = merkle.leaf_hash(bytes.fromhex(case["input_hex"]))
    else:
        got = merkle.node_hash(bytes.fromhex(case["left_hex"]), bytes.fromhex(case["right_hex"]))
    assert got.hex() == case["want_hex"]


@pytest.mark.parametrize("case", PUBLISHED.table("ed25519/ed25519_rfc8032_7_1.json", "vectors", "ed25519"))
def test_ed25519_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["secret_key_seed_hex"]))
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    message = bytes.fromhex(case["message_hex"])
    assert len(message) == case["message_len"]
    assert public.hex() == case["public_key_hex"]
    signature = key.sign(message)
    assert signature.hex() == case["signature_hex"]
    verifier = Verifier("rfc8032", 0, public)
    assert verifier.verify(message, signature)
    flipped = bytes([signature[0] ^ 1]) + signature[1:]
    assert not verifier.verify(message, flipped)
    assert not verifier.verify(message + b"x", signature)


@pytest.mark.parametrize("case", PUBLISHED.table(NOTES, "published", "signed-note"))
def test_signed_note_vector(case: dict[str, Any] | None) -> None:
    assert case is not None, f"vectors missing under {VECTORS}"
    if "tree_note_text" in case:
        # Go sumdb's tree note: a checkpoint body whose root is RecordHash("hello world").
        cp = Checkpoint.parse(case["tree_note_text"])
        assert (cp.origin, cp.size) == ("go.sum database tree", 123456789012)
        assert cp.root == merkle.leaf_hash(b"hello world")
        assert cp.body() == case["tree_note_text"]
        return
    verifier = Verifier.from_string(case["vkey"])
    assert str(verifier) == case["vkey"]
    text, names = open_note(case["signed_note"], [verifier])
    assert text == case["signed_text"]
    assert names == [verifier.name]
    assert case["signed_note"].encode().count("\u2014".encode()) == 1
    if "skey" in case:
        signer = parse_signer_key(case["skey"])
        assert signer.verifier_key == case["vkey"]
        assert format_signer_key(signer) == case["skey"]
        assert signer.sign(case["signed_text"]) == case["signed_note"]  # byte for byte
    tampered = case["signed_note"].replace(".", "!", 1)
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(tampered, [verifier])


# -- the loader itself --------------------------------------------------------------------------


def test_a_missing_vectors_directory_skips_every_vector_test_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "shared" / "test-vectors"
    vectors = PublishedVectors(missing)
    reason = f"the published test vectors directory is missing: looked for {missing}"
    assert vectors.missing() == reason
    for params in (vectors.json_files("merkle/inclusion"), vectors.table(REFERENCE, "hasher_vectors", "x")):
        (param,) = params
        assert param.id == "vector-directory-missing" and param.values == (None,)
        assert [(m.name, m.kwargs) for m in param.marks] == [("skip", {"reason": reason})]
    with pytest.raises(pytest.skip.Exception, match=re.escape(str(missing))):
        vectors.require()


def test_a_file_missing_from_the_vectors_directory_is_a_failure_not_a_skip(tmp_path: Path) -> None:
    vectors = PublishedVectors(tmp_path)
    assert vectors.missing() is None
    vectors.require()
    (param,) = vectors.table(NOTES, "published", "signed-note")
    assert param.id == "vector-file-missing" and param.values == (None,) and not param.marks
