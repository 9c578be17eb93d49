"""Receipts: proof that a decision was recorded in Warden's signed audit log.

`verify_receipt(client, decision, public_key)` needs nothing of Warden's but its public key
(`ledger.pub`, as `warden keys generate` prints it: `name+hexid+base64key`):

    (1) the decision was recorded: it carries its audit entry's seq and leaf hash;
    (2) the latest checkpoint is signed by the log's key (C2SP signed note, Ed25519), names
        the key as its origin, and covers the entry (else `ReceiptNotReady`, or wait for one);
    (3) the gateway's inclusion proof is for that entry in that tree, and for the decision's
        leaf hash;
    (4) the proof leads from the leaf hash to the signed root (RFC 6962).

The receipt proves that an entry with the decision's leaf hash sits at its seq in a log whose
head the key signed; an auditor holding the entry itself (`GET /v1/audit/entries`) can check
that its hash is that leaf hash. Every failure is a `ReceiptError` naming the check.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from warden_sdk._verify.merkle import ProofError, verify_inclusion
from warden_sdk._verify.note import Checkpoint, NoteError, VerifierKey, open_checkpoint
from warden_sdk.aio import AsyncWardenClient
from warden_sdk.client import WardenClient
from warden_sdk.errors import ReceiptError, ReceiptNotReady
from warden_sdk.models import AuditRef, Decision

__all__ = ["Receipt", "check_receipt", "verify_receipt", "verify_receipt_async"]

#: How often a receipt waiting for its checkpoint asks again.
POLL_SECONDS = 0.25

PublicKeys = str | Sequence[str]


@dataclass(frozen=True)
class Receipt:
    """A verified receipt: entry `seq` (leaf hash `leaf_hash`, hex) is in the tree of `size`
    whose root (hex) the log's key signed in `checkpoint` (the signed note, kept as proof)."""

    decision_id: str | None
    seq: int
    leaf_hash: str
    size: int
    root: str
    origin: str
    checkpoint: str


def _keys(public_key: PublicKeys) -> list[VerifierKey]:
    texts = [public_key] if isinstance(public_key, str) else list(public_key)
    try:
        keys = [VerifierKey.parse(text) for text in texts]
    except NoteError as exc:
        raise ReceiptError(f"the log's public key: {exc}") from None
    if not keys:
        raise ReceiptError("no public key given: a receipt is checked against the log's key")
    return keys


def _recorded(decision: Decision) -> AuditRef:
    # (1) the decision was recorded.
    if decision.audit is None:
        raise ReceiptError(f"decision {decision.decision_id or decision.packet_id} was not recorded "
                           "(a dry run has no receipt)")
    return decision.audit


def _covering(note: str, keys: list[VerifierKey], seq: int) -> Checkpoint | None:
    # (2) the checkpoint is signed by the log's key and covers the entry.
    try:
        checkpoint = open_checkpoint(note, keys)
    except NoteError as exc:
        raise ReceiptError(f"the checkpoint does not verify: {exc}") from None
    return checkpoint if checkpoint.size > seq else None


def check_receipt(decision: Decision, note: str, proof: dict[str, Any], public_key: PublicKeys) -> Receipt:
    """Check a receipt already fetched: `note` the signed checkpoint, `proof` the gateway's
    inclusion proof (`GET /v1/audit/proofs/inclusion`). No I/O."""
    return _check(decision, note, proof, _keys(public_key))


def _check(decision: Decision, note: str, proof: dict[str, Any], keys: list[VerifierKey]) -> Receipt:
    audit = _recorded(decision)
    checkpoint = _covering(note, keys, audit.seq)
    if checkpoint is None:
        raise ReceiptNotReady(f"no signed checkpoint covers entry {audit.seq} yet")
    # (3) the proof is for this entry, this tree and this leaf hash.
    if (proof.get("seq"), proof.get("size")) != (audit.seq, checkpoint.size):
        raise ReceiptError(f"the proof is for entry {proof.get('seq')} in a tree of {proof.get('size')}, "
                           f"not entry {audit.seq} in the signed tree of {checkpoint.size}")
    if proof.get("leaf_hash") != audit.leaf_hash:
        raise ReceiptError(f"the proof's leaf hash is not the decision's ({audit.leaf_hash})")
    # (4) the path leads from the leaf hash to the signed root.
    try:
        path = [bytes.fromhex(node) for node in proof.get("proof") or []]
        verify_inclusion(bytes.fromhex(audit.leaf_hash), audit.seq, checkpoint.size, path, checkpoint.root)
    except (ValueError, TypeError) as exc:
        reason = str(exc) if isinstance(exc, ProofError) else f"the proof is malformed ({exc})"
        raise ReceiptError(f"entry {audit.seq} is not proven in the signed tree of {checkpoint.size}: {reason}") from None
    return Receipt(decision.decision_id, audit.seq, audit.leaf_hash, checkpoint.size, checkpoint.root.hex(),
                   checkpoint.origin, note)


def verify_receipt(client: WardenClient, decision: Decision, public_key: PublicKeys, *,
                   wait: float = 0.0) -> Receipt:
    """Fetch and check the receipt of a recorded decision (see the module's steps). `wait`:
    seconds to wait for a checkpoint that covers the entry (the gateway signs one every
    `checkpoint_every_entries` entries or `checkpoint_every_seconds`); then `ReceiptNotReady`."""
    keys = _keys(public_key)
    audit = _recorded(decision)
    end = time.monotonic() + wait
    while True:
        note = client.checkpoint()
        checkpoint = _covering(note, keys, audit.seq)
        if checkpoint is not None:
            return _check(decision, note, client.inclusion_proof(audit.seq, checkpoint.size), keys)
        if time.monotonic() >= end:
            raise ReceiptNotReady(f"no signed checkpoint covers entry {audit.seq} yet; try again later or pass wait=")
        time.sleep(POLL_SECONDS)


async def verify_receipt_async(client: AsyncWardenClient, decision: Decision, public_key: PublicKeys, *,
                               wait: float = 0.0) -> Receipt:
    """`verify_receipt` for the asyncio client."""
    keys = _keys(public_key)
    audit = _recorded(decision)
    end = time.monotonic() + wait
    while True:
        note = await client.checkpoint()
        checkpoint = _covering(note, keys, audit.seq)
        if checkpoint is not None:
            proof = await client.inclusion_proof(audit.seq, checkpoint.size)
            return _check(decision, note, proof, keys)
        if time.monotonic() >= end:
            raise ReceiptNotReady(f"no signed checkpoint covers entry {audit.seq} yet; try again later or pass wait=")
        await asyncio.sleep(POLL_SECONDS)
