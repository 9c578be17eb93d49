"""Synthetic signed logs built in memory, following every ledger rule.

For benchmarks, demos and property tests: the verifier needs realistic logs (decision entries,
periodic checkpoints, key rotations exactly as the gateway orders them) without a database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import GENESIS_PREV, encode_entry, format_time
from ledger.merkle import leaf_hash
from ledger.note import Signer, generate_key

__all__ = ["SyntheticLog", "build_log", "decision_data"]

_START = datetime(2025, 1, 1, tzinfo=UTC)


def decision_data(seq: int) -> dict[str, Any]:
    """A decision-shaped payload of realistic size (about 300 bytes of entry)."""
    return {
        "decision_id": f"dec_{seq:010d}",
        "status": "executed" if seq % 3 else "pending_approval",
        "risk": "L1" if seq % 3 else "L2",
        "tool": "stripe.refund",
        "amount": 1000 + seq % 90000,
        "reasons": [{"policy": "refunds", "rule": "large_refund"}] if seq % 3 == 0 else [],
    }


@dataclass
class SyntheticLog:
    """Entries (exact bytes), signed checkpoint notes by size, and the keys used, in order."""

    entries: list[bytes] = field(default_factory=list)
    checkpoints: dict[int, str] = field(default_factory=dict)
    signers: list[Signer] = field(default_factory=list)

    @property
    def first_key(self) -> str:
        """The verifier key an auditor starts from (``log.pub``)."""
        return self.signers[0].verifier_key


def build_log(
    size: int,
    *,
    checkpoint_every: int = 1000,
    rotate_at: Iterable[int] = (),
    origin: str = "warden.example/audit",
    signer: Signer | None = None,
    final_checkpoint: bool = True,
) -> SyntheticLog:
    """A valid log of ``size`` entries; a ``key_rotated`` entry at each seq in ``rotate_at``.

    Checkpoints are signed every ``checkpoint_every`` entries, right after each rotation (with
    the old key, as the rotation rule demands) and, if ``final_checkpoint``, at the end.
    """
    rotations = set(rotate_at)
    log = SyntheticLog(signers=[signer or generate_key(origin)])
    acc = MerkleAccumulator()
    prev = GENESIS_PREV
    for seq in range(size):
        when = format_time(_START + timedelta(milliseconds=seq))
        if seq in rotations:
            new = generate_key(origin)
            data = {"new_key": new.verifier_key, "old_key": log.signers[-1].verifier_key}
            raw = encode_entry(seq, when, "key_rotated", "founder@example.com", origin, data, prev)
        else:
            raw = encode_entry(
                seq, when, "decision", "refund-bot", f"dec_{seq:010d}", decision_data(seq), prev
            )
        h = leaf_hash(raw)
        acc.append(h)
        prev = h.hex()
        log.entries.append(raw)
        n = seq + 1
        if seq in rotations or n % checkpoint_every == 0 or (final_checkpoint and n == size):
            cp = Checkpoint(origin, n, acc.root())
            log.checkpoints[n] = sign_checkpoint(cp, log.signers[-1])
        if seq in rotations:
            log.signers.append(new)
    return log
