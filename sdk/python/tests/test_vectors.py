"""The SDK's own verifiers (RFC 6962 inclusion, Ed25519, C2SP signed notes) against the
published vectors the ledger is tested with (<repository>/../shared/test-vectors), and Ed25519
against pyca/cryptography on random keys and messages."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from warden_sdk._verify import ed25519
from warden_sdk._verify.merkle import ProofError, leaf_hash, verify_inclusion
from warden_sdk._verify.note import Checkpoint, NoteError, VerifierKey, open_note

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "test-vectors"
MISSING = pytest.mark.skipif(not VECTORS.is_dir(), reason=f"the published test vectors directory is missing: {VECTORS}")


def _files(folder: str) -> list[Any]:
    base = VECTORS / folder
    if not base.is_dir():
        return [pytest.param(None, marks=MISSING, id="vectors-missing")]
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(base))) for f in sorted(base.rglob("*.json"))]


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


@MISSING
def test_every_inclusion_vector_is_here() -> None:
    assert len(_files("merkle/inclusion")) == 98


@pytest.mark.parametrize("case", _files("merkle/inclusion"))
def test_inclusion_vector(case: dict[str, Any]) -> None:
    proof = [base64.b64decode(p) for p in case["proof"] or []]
    args = (base64.b64decode(case["leafHash"]), case["leafIdx"], case["treeSize"], proof, base64.b64decode(case["root"]))
    if case["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@MISSING
def test_rfc6962_reference_inclusion_proofs() -> None:
    data = _load("merkle/rfc6962_reference_vectors.json")
    leaves = [leaf_hash(bytes.fromhex(x)) for x in data["leaf_inputs_hex"]]
    roots = [bytes.fromhex(r) for r in data["root_hash_by_size_hex"]]
    assert data["inclusion_proofs"]
    for case in data["inclusion_proofs"]:
        index, size = case["leaf_index"], case["tree_size"]
        proof = [bytes.fromhex(p) for p in case["proof_hex"]]
        verify_inclusion(leaves[index], index, size, proof, roots[size])
        if proof:
            with pytest.raises(ProofError):
                verify_inclusion(leaves[index], index, size, proof[:-1], roots[size])
        with pytest.raises(ProofError):
            verify_inclusion(leaves[(index + 1) % 8], index, size, proof, roots[size])


@MISSING
def test_rfc8032_ed25519_vectors() -> None:
    for case in _load("ed25519/ed25519_rfc8032_7_1.json")["vectors"]:
        public, message = bytes.fromhex(case["public_key_hex"]), bytes.fromhex(case["message_hex"])
        signature = bytes.fromhex(case["signature_hex"])
        assert ed25519.verify(public, message, signature), case["name"]
        assert not ed25519.verify(public, message + b"x", signature)
        assert not ed25519.verify(public, message, bytes([signature[0] ^ 1]) + signature[1:])
        assert not ed25519.verify(public, message, signature[:32] + bytes([signature[32] ^ 1]) + signature[33:])
        # S + L (non-canonical S) is refused even though it satisfies the group equation.
        s = int.from_bytes(signature[32:], "little") + 2**252 + 27742317777372353535851937790883648493
        if s < 2**256:
            assert not ed25519.verify(public, message, signature[:32] + s.to_bytes(32, "little"))


def test_ed25519_agrees_with_pyca_cryptography_on_random_keys() -> None:
    for _ in range(20):
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        message = os.urandom(int.from_bytes(os.urandom(1), "big"))
        signature = key.sign(message)
        assert ed25519.verify(public, message, signature)
        spoiled = bytearray(signature)
        spoiled[os.urandom(1)[0] % 64] ^= 1 << (os.urandom(1)[0] % 8)
        assert not ed25519.verify(public, message, bytes(spoiled))
    assert not ed25519.verify(b"\xff" * 32, b"", b"\x00" * 64)  # not a point
    assert not ed25519.verify(b"\x00" * 31, b"", b"\x00" * 64)


@MISSING
def test_signed_note_vectors() -> None:
    published = _load("signed-note/signed_note_vectors.json")["published"]
    checked = 0
    for case in published:
        if "tree_note_text" in case:
            tree = Checkpoint.parse(case["tree_note_text"])
            assert (tree.origin, tree.size) == ("go.sum database tree", 123456789012)
            continue
        key = VerifierKey.parse(case["vkey"])
        assert str(key) == case["vkey"]
        text, signers = open_note(case["signed_note"], [key])
        assert (text, signers) == (case["signed_text"], [key.name])
        altered = case["signed_note"].replace(case["signed_text"], case["signed_text"].replace("a", "A", 1))
        with pytest.raises(NoteError, match="invalid signature"):
            open_note(altered, [key])
        checked += 1
    assert checked == 2


def test_malformed_keys_and_notes_are_refused() -> None:
    good = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
    for bad, why in [("example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", "does not match"),
                     ("nothing", "looks like"), ("a b+530d903a+AA==", "invalid name"), ("x+530D903A+AA==", "hex")]:
        with pytest.raises(NoteError, match=why):
            VerifierKey.parse(bad)
    key = VerifierKey.parse(good)
    for note, why in [("no blank line\n", "no blank line"), ("text\n\nsig\n", "em dash"),
                      ("text\n\n\u2014 example.com/foo AAAA\n", "too short"),
                      ("text\n\n\u2014 other.example Uw2QOkn8\n", "no valid signature")]:
        with pytest.raises(NoteError, match=why):
            open_note(note, [key])
