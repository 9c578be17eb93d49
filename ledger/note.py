"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

A signed note is a text ending in a newline, a blank line, then one or more signature lines
``— <key name> base64(key ID || signature)`` (em dash U+2014). Warden signs its checkpoints
this way so that any C2SP/Go ``sumdb/note`` tool can check them, and so can we, offline.

Key formats (the Go ``sumdb/note`` forms):

* verifier key ``<name>+<hex key ID>+base64(0x01 || 32-byte public key)``
* signer key   ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 || 32-byte seed)``

where key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4], read big-endian.

Errors: everything raises :class:`NoteError` (a ``ValueError``) with a message for humans:
malformed notes and keys, unknown keys, bad signatures, and notes no known key signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "NoteError",
    "Signer",
    "Verifier",
    "format_signer_key",
    "generate_key",
    "key_id",
    "open_note",
    "parse_signer_key",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
"""Signature lines accepted per note (C2SP asks for at least 16; Go's sumdb/note uses 100)."""

_SIG_PREFIX = "\u2014 "
_PRIVATE_PREFIX = "PRIVATE+KEY+"


class NoteError(ValueError):
    """A note or key is malformed, or a note's signatures do not check out."""


def key_id(name: str, public_key: bytes) -> int:
    """The C2SP key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _valid_name(name: str) -> bool:
    """Key names are non-empty and hold neither Unicode spaces, plus signs nor control chars."""
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def _b64decode(text: str, what: str) -> bytes:
    """Strict standard base64: canonical padding, no stray characters, no spare bits."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def _split_key(text: str, what: str) -> tuple[str, int, bytes]:
    """Parse ``name+hexid+base64(0x01 || key)`` into (name, id, 32 key bytes)."""
    parts = text.strip().split("+", 2)  # base64 may itself contain "+"
    if len(parts) != 3:
        raise NoteError(f"{what} must look like name+hexid+base64key")
    name, hex_id, b64 = parts
    if not _valid_name(name):
        raise NoteError(f"{what} has an invalid key name {name!r}")
    if len(hex_id) != 8 or hex_id.lower() != hex_id:
        raise NoteError(f"{what} key ID must be 8 lowercase hex digits")
    try:
        kid = int(hex_id, 16)
    except ValueError as exc:
        raise NoteError(f"{what} key ID must be 8 lowercase hex digits") from exc
    raw = _b64decode(b64, what)
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteError(f"{what} is not an Ed25519 key (0x01 followed by 32 bytes)")
    return name, kid, raw[1:]


@dataclass(frozen=True)
class Verifier:
    """A public key that checks signatures made under one (name, key ID)."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def from_string(cls, vkey: str) -> Verifier:
        """Parse a verifier key string, checking that its key ID matches its key."""
        name, kid, pub = _split_key(vkey, "verifier key")
        if key_id(name, pub) != kid:
            raise NoteError(f"verifier key for {name!r}: key ID does not match the key")
        return cls(name, kid, pub)

    def __str__(self) -> str:
        b64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    def verify(self, text: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``text``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, text)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """An Ed25519 private key with a name; signs note texts into C2SP signed notes."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        if not _valid_name(name):
            raise NoteError(f"invalid key name {name!r}: no spaces or '+', not empty")
        self.name = name
        self._key = private_key
        self.public_key = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id(name, self.public_key)

    @property
    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return Verifier(self.name, self.key_id, self.public_key)

    @property
    def verifier_key(self) -> str:
        """The public verifier key string ``name+hexid+base64(0x01 || pub)``."""
        return str(self.verifier)

    def signature_line(self, text: str) -> str:
        """One signature line (with its newline) over ``text``."""
        _check_text(text)
        sig = self._key.sign(text.encode())
        blob = self.key_id.to_bytes(4, "big") + sig
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(blob).decode()}\n"

    def sign(self, text: str) -> str:
        """The whole signed note: ``text``, a blank line, this key's signature line."""
        return text + "\n" + self.signature_line(text)


def _check_text(text: str) -> None:
    """Note text must be non-empty, end in a newline and hold no control chars but newline."""
    if not text or not text.endswith("\n"):
        raise NoteError("note text must be non-empty and end with a newline")
    if any(c < " " and c != "\n" for c in text):
        raise NoteError("note text must not contain control characters other than newline")


def generate_key(name: str) -> Signer:
    """A fresh random Ed25519 signer for ``name``."""
    return Signer(name, Ed25519PrivateKey.generate())


def format_signer_key(signer: Signer) -> str:
    """The private key file form ``PRIVATE+KEY+name+hexid+base64(0x01 || seed)``. Keep it secret."""
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    seed = signer._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    b64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
    return f"{_PRIVATE_PREFIX}{signer.name}+{signer.key_id:08x}+{b64}"


def parse_signer_key(skey: str) -> Signer:
    """Parse a private key string; its key ID must match the key derived from the seed."""
    skey = skey.strip()
    if not skey.startswith(_PRIVATE_PREFIX):
        raise NoteError("signer key must start with PRIVATE+KEY+")
    name, kid, seed = _split_key(skey[len(_PRIVATE_PREFIX) :], "signer key")
    signer = Signer(name, Ed25519PrivateKey.from_private_bytes(seed))
    if signer.key_id != kid:
        raise NoteError(f"signer key for {name!r}: key ID does not match the key")
    return signer


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> tuple[str, list[str]]:
    """Check a signed note against known verifiers; return (text, names that verified).

    Signatures by unknown (name, key ID) pairs are ignored, as C2SP requires; a known key whose
    signature fails rejects the whole note, and so does a note no known key signed.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed note: not valid UTF-8") from exc
    try:
        note.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("malformed note: not valid UTF-8") from exc
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("malformed note: control characters other than newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, sig_block = note[: split + 1], note[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or no final newline")
    known = {(v.name, v.key_id): v for v in verifiers}
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    verified: list[str] = []
    seen: set[tuple[str, int]] = set()
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("malformed note: a signature line must start with an em dash and space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not _valid_name(name) or not b64:
            raise NoteError("malformed note: bad signature line")
        blob = _b64decode(b64, "signature")
        if len(blob) < 5:
            raise NoteError("malformed note: signature too short")
        kid = int.from_bytes(blob[:4], "big")
        verifier = known.get((name, kid))
        if verifier is None or (name, kid) in seen:
            continue
        seen.add((name, kid))
        if not verifier.verify(text.encode(), blob[4:]):
            raise NoteError(f"invalid signature by key {name!r} ({kid:08x})")
        verified.append(name)
    if not verified:
        names = ", ".join(sorted(f"{n}+{k:08x}" for n, k in known)) or "none"
        raise NoteError(f"note has no valid signature from a known key (known: {names})")
    return text, verified
