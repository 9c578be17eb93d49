"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 verifier keys, and the C2SP checkpoint
(c2sp.org/tlog-checkpoint) they carry.

    verifier key  <name>+<8 hex key ID>+base64(0x01 || 32-byte Ed25519 public key)
    key ID        SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian
    note          text ending in a newline, a blank line, lines "— <name> base64(key ID || sig)"
    checkpoint    origin, decimal tree size, base64 root hash, [extension lines], each + newline

Signatures by keys not given are ignored, as C2SP requires; a given key whose signature fails
rejects the note, and so does a note no given key signed. A checkpoint's origin must be the name
of a key that signed it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from warden_sdk._verify import ed25519

__all__ = ["Checkpoint", "NoteError", "VerifierKey", "open_checkpoint", "open_note"]

_ED25519 = 0x01
_SIGNATURE_PREFIX = "\u2014 "
_MAX_SIGNATURES = 100
_SIZE = re.compile(r"(0|[1-9][0-9]{0,19})")


class NoteError(ValueError):
    """A note, checkpoint or key is malformed, or its signatures do not check out."""


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def _b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class VerifierKey:
    """A log's public key as `warden keys generate` prints it (and `ledger.pub` holds it)."""

    name: str
    key_id: int
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key looks like name+hexid+base64key")
        name, hex_id, encoded = parts
        if not _valid_name(name):
            raise NoteError(f"verifier key has an invalid name {name!r}")
        if not re.fullmatch(r"[0-9a-f]{8}", hex_id):
            raise NoteError("verifier key ID must be 8 lowercase hex digits")
        raw = _b64(encoded, "verifier key")
        if len(raw) != 33 or raw[0] != _ED25519:
            raise NoteError("verifier key is not an Ed25519 key (0x01 and 32 bytes)")
        if key_id(name, raw[1:]) != int(hex_id, 16):
            raise NoteError(f"verifier key for {name!r}: its key ID does not match the key")
        return cls(name, int(hex_id, 16), raw[1:])

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id:08x}+{base64.b64encode(bytes([_ED25519]) + self.public_key).decode()}"


def open_note(note: str, keys: Iterable[VerifierKey]) -> tuple[str, list[str]]:
    """The note's text and the names of the given keys that signed it."""
    if any(c < " " and c != "\n" for c in note):
        raise NoteError("malformed note: control characters other than newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = note[: split + 1], note[split + 2:]
    if not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or no final newline")
    lines = block[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {_MAX_SIGNATURES} signatures")
    known = {(k.name, k.key_id): k for k in keys}
    signed: list[str] = []
    seen: set[tuple[str, int]] = set()
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise NoteError("malformed note: a signature line must start with an em dash and a space")
        name, sep, encoded = line[len(_SIGNATURE_PREFIX):].partition(" ")
        if not sep or not _valid_name(name) or not encoded:
            raise NoteError("malformed note: bad signature line")
        blob = _b64(encoded, "signature")
        if len(blob) < 5:
            raise NoteError("malformed note: signature too short")
        kid = int.from_bytes(blob[:4], "big")
        key = known.get((name, kid))
        if key is None or (name, kid) in seen:
            continue
        seen.add((name, kid))
        if not ed25519.verify(key.public_key, text.encode(), blob[4:]):
            raise NoteError(f"invalid signature by key {name!r} ({kid:08x})")
        signed.append(name)
    if not signed:
        names = ", ".join(sorted(f"{k.name}+{k.key_id:08x}" for k in known.values())) or "none"
        raise NoteError(f"note has no valid signature from a known key (known: {names})")
    return text, signed


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: the log's `origin`, its `size` and RFC 6962 `root`."""

    origin: str
    size: int
    root: bytes

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        if not text.endswith("\n"):
            raise NoteError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not lines[0]:
            raise NoteError("checkpoint body needs origin, size and root lines")
        origin, size, root = lines[:3]
        if not _SIZE.fullmatch(size) or int(size) > 2**64 - 1:
            raise NoteError(f"checkpoint size {size!r} is not a decimal tree size")
        raw = _b64(root, "checkpoint root")
        if len(raw) != 32:
            raise NoteError("checkpoint root is not 32 bytes")
        return cls(origin, int(size), raw)


def open_checkpoint(note: str, keys: Iterable[VerifierKey]) -> Checkpoint:
    """Verify a signed checkpoint and parse it; its origin must name a key that signed it."""
    text, signed = open_note(note, keys)
    checkpoint = Checkpoint.parse(text)
    if checkpoint.origin not in signed:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not the name of its signing key ({signed[0]!r})")
    return checkpoint
