"""C2SP signed notes, keys and tlog checkpoints: the format rules and their error messages."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import (
    Checkpoint,
    CheckpointError,
    open_checkpoint,
    sign_checkpoint,
)
from ledger.merkle import leaf_hash
from ledger.note import (
    MAX_SIGNATURES,
    NoteError,
    Signer,
    Verifier,
    format_signer_key,
    generate_key,
    key_id,
    open_note,
    parse_signer_key,
)

ORIGIN = "warden.example/audit"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return generate_key(ORIGIN)


def test_key_strings_round_trip(signer: Signer) -> None:
    vkey = signer.verifier_key
    name, hex_id, b64 = vkey.split("+", 2)
    assert name == ORIGIN and hex_id == f"{signer.key_id:08x}"
    assert base64.b64decode(b64) == b"\x01" + signer.public_key
    assert signer.key_id == key_id(ORIGIN, signer.public_key)
    assert Verifier.from_string(vkey) == signer.verifier
    again = parse_signer_key(format_signer_key(signer))
    assert again.verifier_key == vkey
    assert format_signer_key(signer).startswith("PRIVATE+KEY+" + ORIGIN + "+")


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("nokey", "name\\+hexid\\+base64key"),
        ("a b+01234567+AQ==", "invalid key name"),
        ("name+0123456+AQ==", "8 lowercase hex"),
        ("name+0123456G+AQ==", "8 lowercase hex"),
        ("name+ABCDEF01+AQ==", "8 lowercase hex"),
        ("name+01234567+!!!", "not valid base64"),
        ("name+01234567+AQ", "not valid base64"),
        ("name+01234567+" + base64.b64encode(b"\x02" + b"k" * 32).decode(), "not an Ed25519"),
        ("name+01234567+" + base64.b64encode(b"\x01" + b"k" * 31).decode(), "not an Ed25519"),
        ("name+01234567+" + base64.b64encode(b"\x01" + b"k" * 32).decode(), "does not match"),
    ],
)
def test_bad_verifier_keys_are_refused(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        Verifier.from_string(vkey)


def test_bad_signer_keys_are_refused(signer: Signer) -> None:
    with pytest.raises(NoteError, match="PRIVATE\\+KEY"):
        parse_signer_key(signer.verifier_key)
    other = generate_key(ORIGIN)
    seed_b64 = format_signer_key(other).split("+", 4)[4]
    forged = f"PRIVATE+KEY+{ORIGIN}+{signer.key_id:08x}+{seed_b64}"
    with pytest.raises(NoteError, match="does not match"):
        parse_signer_key(forged)
    with pytest.raises(NoteError, match="invalid key name"):
        generate_key("has+plus")


def test_signing_rules(signer: Signer) -> None:
    note = signer.sign("hello\n")
    assert note.startswith("hello\n\n\u2014 " + ORIGIN + " ")
    assert note.endswith("\n")
    with pytest.raises(NoteError, match="end with a newline"):
        signer.sign("hello")
    with pytest.raises(NoteError, match="control characters"):
        signer.sign("tab\there\n")


def test_open_note_accepts_extra_unknown_signatures_and_text_with_blank_lines(
    signer: Signer,
) -> None:
    other = generate_key("witness.example/w1")
    text = "line one\n\nline three\n"
    note = signer.sign(text) + other.signature_line(text)
    assert open_note(note, [signer.verifier]) == (text, [ORIGIN])
    assert open_note(note, [other.verifier]) == (text, ["witness.example/w1"])
    both = open_note(note, [signer.verifier, other.verifier])
    assert both == (text, [ORIGIN, "witness.example/w1"])
    # The same signature twice counts once.
    twice = note + signer.signature_line(text)
    assert open_note(twice, [signer.verifier])[1] == [ORIGIN]


def _sig_line(name: str, blob: bytes) -> str:
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda n: n.replace("\n\n", "\n"), "no blank line"),
        (lambda n: n[:-1], "final newline"),
        (lambda n: n.replace("\u2014", "-"), "em dash"),
        (lambda n: n.replace("\u2014 ", "\u2014"), "bad signature line|em dash"),
        (lambda n: n + "\n", "no signature lines"),
        (lambda n: n.replace("hello", "hel\rlo"), "control characters"),
        (lambda n: n.rsplit(" ", 1)[0] + " ???\n", "not valid base64"),
        (lambda n: n.rsplit(" ", 1)[0] + " AAAA\n", "too short"),
        (lambda n: n.replace("hello", "hullo"), "invalid signature"),
        (lambda n: n.encode()[:-3] + b"\xff\n", "UTF-8"),
    ],
)
def test_malformed_notes_are_refused(signer: Signer, mangle, message: str) -> None:  # type: ignore[no-untyped-def]
    note = signer.sign("hello\n")
    with pytest.raises(NoteError, match=message):
        open_note(mangle(note), [signer.verifier])


def test_notes_without_a_known_signature_are_refused(signer: Signer) -> None:
    stranger = generate_key(ORIGIN)  # same name, other key: a different key ID
    note = stranger.sign("hello\n")
    with pytest.raises(NoteError, match="no valid signature from a known key"):
        open_note(note, [signer.verifier])
    # Same name and key ID but the wrong key: must be verified, and fails.
    blob = signer.key_id.to_bytes(4, "big") + base64.b64decode(note.rsplit(" ", 1)[1])[4:]
    forged = "hello\n\n" + _sig_line(ORIGIN, blob)
    with pytest.raises(NoteError, match="invalid signature"):
        open_note(forged, [signer.verifier])


def test_signature_count_is_capped(signer: Signer) -> None:
    text = "hello\n"
    junk = "".join(_sig_line(f"k{i}", b"\x00" * 68) for i in range(MAX_SIGNATURES))
    with pytest.raises(NoteError, match="more than"):
        open_note(text + "\n" + junk + signer.signature_line(text), [signer.verifier])
    fifteen = "".join(_sig_line(f"k{i}", b"\x00" * 68) for i in range(15))
    assert open_note(text + "\n" + fifteen + signer.signature_line(text), [signer.verifier])


def test_checkpoint_round_trip(signer: Signer) -> None:
    cp = Checkpoint(ORIGIN, 42, leaf_hash(b"x"), ("ext one",))
    assert cp.body() == f"{ORIGIN}\n42\n{base64.b64encode(cp.root).decode()}\next one\n"
    assert Checkpoint.parse(cp.body()) == cp
    note = sign_checkpoint(cp, signer)
    assert open_checkpoint(note, [signer.verifier]) == cp


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("o\n1\n", "needs origin, size and root"),
        ("o\n01\n" + base64.b64encode(b"r" * 32).decode() + "\n", "not a decimal tree size"),
        ("o\n-1\n" + base64.b64encode(b"r" * 32).decode() + "\n", "not a decimal tree size"),
        ("o\n1\n" + base64.b64encode(b"r" * 31).decode() + "\n", "32 bytes"),
        ("o\n1\n!!!\n", "not base64"),
        ("o\n1\n" + base64.b64encode(b"r" * 32).decode(), "end with a newline"),
        ("o\n1\n" + base64.b64encode(b"r" * 32).decode() + "\n\n", "extension lines"),
        ("\n1\n" + base64.b64encode(b"r" * 32).decode() + "\n", "origin"),
    ],
)
def test_malformed_checkpoints_are_refused(body: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.parse(body)


def test_checkpoint_origin_must_be_the_signing_key(signer: Signer) -> None:
    cp = Checkpoint("other.example/log", 1, leaf_hash(b"x"))
    with pytest.raises(CheckpointError, match="cannot sign for origin"):
        sign_checkpoint(cp, signer)
    note = signer.sign(cp.body())  # signed anyway, bypassing sign_checkpoint
    with pytest.raises(CheckpointError, match="not the name of its signing key"):
        open_checkpoint(note, [signer.verifier])


@settings(max_examples=50, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x10FFFF,
                                           exclude_categories=("Cs",)), min_size=1))
def test_any_valid_text_signs_and_opens(signer: Signer, text: str) -> None:
    body = text.replace("\n", "") + "\n"
    assert open_note(signer.sign(body), [signer.verifier]) == (body, [ORIGIN])
