"""Signing checkpoints of the live log, and rotating the key that signs them.

The rule that keeps checkpoints from ever contradicting each other: a checkpoint is only ever
signed for the *current head*, read while holding the head lock, and only when the head has grown
past the last checkpoint. Sizes therefore strictly increase and every checkpoint's tree extends
the previous one's (the tree below a locked head never changes). The checkpoint row is written in
the same transaction, so a rollback takes the checkpoint with it.

Policy: sign when at least `every_entries` entries arrived since the last checkpoint, or when
`every_seconds` passed since it was signed and anything arrived (the first entry of a log is
checkpointed at once). The gateway calls `maybe_sign(conn)` after appending, in the same
transaction, and `tick(engine)` from a timer so a quiet log still gets its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.keys import KeyMismatchError, add_key, key_id_hex, require_signer
from ledger.note import Signer
from ledger.schema import checkpoints
from ledger.store import AppendResult, Head, Ledger, LedgerError

KEY_ROTATED = "key_rotated"


@dataclass(frozen=True)
class CheckpointPolicy:
    every_entries: int = 1000
    every_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.every_entries < 1 or self.every_seconds <= 0:
            raise ValueError("checkpoint policy needs every_entries >= 1 and every_seconds > 0")


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    note: str
    key_id: str


@dataclass(frozen=True)
class _Last:
    size: int
    signed_at: float


class Checkpointer:
    """Signs the log's head with `signer` according to `policy`."""

    def __init__(
        self,
        signer: Signer,
        policy: CheckpointPolicy | None = None,
        *,
        ledger: Ledger | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.signer = signer
        self.policy = policy or CheckpointPolicy()
        self.ledger = ledger or Ledger()
        self._clock = clock
        self._seen: _Last | None = None  # the latest checkpoint this signer knows of

    def maybe_sign(self, conn: Connection) -> SignedCheckpoint | None:
        """Sign the head if the policy says it is time; None otherwise.

        Checkpoints only grow, so one older than the latest can only make signing look more due
        than it is: when even the one remembered says "not due", the database is not asked (the
        log writer calls this for every batch)."""
        current = self.ledger.lock_head(conn)
        if self._seen is not None and not self._due(current.size, self._seen):
            return None
        last = self._seen = _last_checkpoint(conn)
        if not self._due(current.size, last):
            return None
        self._seen = None  # until read again: this transaction may yet roll back
        return self._sign_locked(conn, current)

    def sign_now(self, conn: Connection) -> SignedCheckpoint | None:
        """Sign the head unless it is empty or already checkpointed."""
        current = self.ledger.lock_head(conn)
        last = _last_checkpoint(conn)
        if current.size == 0 or (last is not None and last.size >= current.size):
            return None
        return self._sign_locked(conn, current)

    def tick(self, engine: Engine) -> SignedCheckpoint | None:
        """`maybe_sign` in a transaction of its own (for a timer)."""
        with engine.begin() as conn:
            return self.maybe_sign(conn)

    def _due(self, size: int, last: _Last | None) -> bool:
        if size == 0:
            return False
        if last is None:
            return True
        grown = size - last.size
        if grown <= 0:
            return False
        return grown >= self.policy.every_entries or self._clock() - last.signed_at >= self.policy.every_seconds

    def _sign_locked(self, conn: Connection, current: Head) -> SignedCheckpoint:
        require_signer(conn, self.signer)
        return sign_head(conn, current, self.signer, self._clock())


def _last_checkpoint(conn: Connection) -> _Last | None:
    row = conn.execute(
        select(checkpoints.c.size, checkpoints.c.signed_at).order_by(checkpoints.c.size.desc()).limit(1)
    ).one_or_none()
    return None if row is None else _Last(int(row.size), float(row.signed_at))


def sign_head(conn: Connection, current: Head, signer: Signer, now: float) -> SignedCheckpoint:
    """Sign and store the checkpoint of the locked head `current` (callers hold the lock and have
    checked that `signer` may sign this size)."""
    last = _last_checkpoint(conn)
    if last is not None and last.size >= current.size:
        raise LedgerError(f"a checkpoint of size {last.size} exists; refusing to sign size {current.size}")
    root = current.root
    note = sign_checkpoint(Checkpoint(signer.name, current.size, root), signer)
    kid = key_id_hex(signer)
    conn.execute(insert(checkpoints).values(size=current.size, note=note, key_id=kid, signed_at=now))
    return SignedCheckpoint(current.size, root, note, kid)


@dataclass(frozen=True)
class Rotation:
    entry: AppendResult
    checkpoint: SignedCheckpoint


def rotate_key(
    conn: Connection,
    old: Signer,
    new: Signer,
    *,
    actor: str = "warden",
    ledger: Ledger | None = None,
    clock: Callable[[], float] = time.time,
) -> Rotation:
    """Hand the log over from `old` to `new` in the caller's transaction: append the
    `key_rotated` entry at seq s, sign the checkpoint of size s+1 with the old key, and record the
    new key as the signer of every later checkpoint."""
    ledger = ledger or Ledger()
    if new.name != old.name:
        raise KeyMismatchError(f"the new key must be named {old.name!r} (the log's origin), not {new.name!r}")
    if new.verifier_key == old.verifier_key:
        raise KeyMismatchError("the new key is the old key")
    ledger.lock_head(conn)
    require_signer(conn, old)
    data = {"new_key": new.verifier_key, "old_key": old.verifier_key}
    entry = ledger.append(conn, KEY_ROTATED, actor, key_id_hex(new), data)
    checkpoint = sign_head(conn, ledger.lock_head(conn), old, clock())
    add_key(conn, new.verifier, from_size=entry.seq + 1)
    return Rotation(entry, checkpoint)
