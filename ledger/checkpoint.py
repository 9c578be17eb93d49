"""C2SP tlog-checkpoint bodies (c2sp.org/tlog-checkpoint), signed as C2SP signed notes.

A checkpoint commits the log to a tree head::

    <origin>\\n
    <tree size, decimal>\\n
    <base64 RFC 6962 root hash>\\n
    [<extension line>\\n ...]

Warden's origin is the signing key's name, so :func:`open_checkpoint` also checks that the
origin matches a key that verified the note. Parsing is strict (no leading zeros, canonical
base64, no empty lines) because two spellings of one tree head would be two things to sign.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ledger.merkle import HASH_SIZE
from ledger.note import NoteError, Signer, Verifier, open_note

__all__ = ["Checkpoint", "CheckpointError", "open_checkpoint", "sign_checkpoint"]

_SIZE = re.compile(r"(0|[1-9][0-9]{0,19})")
_MAX_SIZE = 2**64 - 1


class CheckpointError(NoteError):
    """A checkpoint body is malformed or does not match its signing key."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's ``origin``, its ``size`` and RFC 6962 ``root`` (32 bytes)."""

    origin: str
    size: int
    root: bytes
    extensions: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        if not self.origin or any(c < " " for c in self.origin):
            raise CheckpointError("checkpoint origin must be a non-empty line")
        if not 0 <= self.size <= _MAX_SIZE:
            raise CheckpointError(f"checkpoint size {self.size} is out of range")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for ext in self.extensions:
            if not ext or any(c < " " for c in ext):
                raise CheckpointError("checkpoint extension lines must be non-empty lines")

    def body(self) -> str:
        """The note text to sign: origin, size, base64 root, extension lines, each + newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "".join(line + "\n" for line in (*lines, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the text of a signed note, without signatures)."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint body must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint body needs origin, size and root lines")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text) or int(size_text) > _MAX_SIZE:
            raise CheckpointError(f"checkpoint size {size_text!r} is not a decimal tree size")
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CheckpointError("checkpoint root is not base64") from exc
        if base64.b64encode(root).decode() != root_text:
            raise CheckpointError("checkpoint root is not canonical base64")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> str:
    """The signed note for ``cp``; the signer's key name must be the checkpoint's origin."""
    if signer.name != cp.origin:
        raise CheckpointError(f"key {signer.name!r} cannot sign for origin {cp.origin!r}")
    return signer.sign(cp.body())


def open_checkpoint(note: str | bytes, verifiers: Iterable[Verifier]) -> Checkpoint:
    """Verify a signed checkpoint and parse it; its origin must name a key that signed it."""
    text, names = open_note(note, verifiers)
    cp = Checkpoint.parse(text)
    if cp.origin not in names:
        raise CheckpointError(
            f"checkpoint origin {cp.origin!r} is not the name of its signing key ({names[0]!r})"
        )
    return cp
