"""A signed checkpoint the verifier has read but not yet checked.

Its signature can only be checked under the key in force at its size, which the verifier knows
once the stream of entries reaches that size (key rotations are entries). Until then it needs the
size and the root, read from the note's body without trusting them.
"""

from __future__ import annotations

from ledger.checkpoint import Checkpoint, CheckpointError
from ledger.report import VerificationFailure

__all__ = ["PendingCheckpoint", "read_pending"]


class PendingCheckpoint:
    """A checkpoint waiting for the stream to reach its size (step (4) checks it there)."""

    __slots__ = ("checkpoint", "name", "note")

    def __init__(self, name: str, note: str, checkpoint: Checkpoint) -> None:
        self.name = name
        self.note = note
        self.checkpoint = checkpoint


def read_pending(name: str, note: str | bytes, expected_size: int | None) -> PendingCheckpoint:
    """Read a checkpoint's size and root before its signature can be checked.

    ``expected_size`` is the size the checkpoint's file name gives, if it has one. A note that
    cannot be read is step (4)'s failure, named by ``name``.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise VerificationFailure(4, "checkpoint is not UTF-8", checkpoint=name) from exc
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationFailure(4, "checkpoint is not a signed note", checkpoint=name)
    try:
        cp = Checkpoint.parse(note[: split + 1])
    except CheckpointError as exc:
        raise VerificationFailure(4, f"malformed checkpoint: {exc}", checkpoint=name) from exc
    if expected_size is not None and cp.size != expected_size:
        raise VerificationFailure(
            4, f"file name says size {expected_size} but the checkpoint says {cp.size}",
            checkpoint=name,
        )
    return PendingCheckpoint(name, note, cp)
