"""One run of the offline verifier over a stream of entries: the numbered steps of
:mod:`ledger.verify`, in one pass, with O(log n) memory for the tree (a compact range).

Steps (1)-(3) run per entry; (4)-(6) run as the stream reaches the size of each checkpoint (and of
each subtree a consistency proof needs, see :mod:`ledger.proofplan`). The first failure raises a
:class:`ledger.report.VerificationFailure` naming the step and the entry or checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import NoReturn

from ledger.alteration import BrokenLink, altered_under_checkpoint, head_with_leaf
from ledger.checkpoint import open_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import GENESIS_PREV, EntryError, chain_fields, decode_entry
from ledger.merkle import EMPTY_ROOT, ProofError, verify_consistency
from ledger.note import NoteError, Verifier
from ledger.passkeys import KINDS as PASSKEY_KINDS
from ledger.passkeys import PasskeyFailure, SignedApprovals
from ledger.pending_checkpoint import PendingCheckpoint, read_pending
from ledger.proofplan import Pair, ProofPlan
from ledger.report import VerificationFailure, VerifyError

__all__ = ["PROGRESS_EVERY", "LogVerifier", "Progress"]

PROGRESS_EVERY = 1 << 16
"""``progress(entries_done)`` is called after every this many entries, and once at the end."""

Progress = Callable[[int], None]
_sha256 = hashlib.sha256


def _b64(root: bytes) -> str:
    return base64.b64encode(root).decode()


class LogVerifier:
    """State of one verification run; see :mod:`ledger.verify` for the steps."""

    def __init__(
        self,
        key: str,
        checkpoints: Iterable[tuple[str, str | bytes, int | None]],
        trusted: str | None,
        progress: Progress | None,
    ) -> None:
        """``key``: the log's first verifier key; ``checkpoints``: (name, note, the size its
        file name gives or None); ``trusted``: a checkpoint note kept from before."""
        try:
            self.key = Verifier.from_string(key)
        except NoteError as exc:
            raise VerifyError(f"unusable verifier key: {exc}") from exc
        self.keys = [str(self.key)]
        self.progress = progress
        self.acc = MerkleAccumulator()
        self.pending: dict[int, list[PendingCheckpoint]] = {}
        self.count = 0
        for name, note, expected in checkpoints:
            p = read_pending(name, note, expected)
            self.pending.setdefault(p.checkpoint.size, []).append(p)
            self.count += 1
        self.sizes = sorted(self.pending)
        self.trusted: PendingCheckpoint | None = None
        if trusted is not None:
            try:
                self.trusted = read_pending("trusted", trusted, None)
            except VerificationFailure as exc:
                raise VerifyError(f"unusable trusted checkpoint: {exc.message}") from exc
        self.roots: dict[int, bytes] = {}
        trusted_size = self.trusted.checkpoint.size if self.trusted is not None else None
        self.plan = ProofPlan(self.sizes, trusted_size)
        events = set(self.pending) | self.plan.capture_sizes()
        if trusted_size is not None:
            events.add(trusted_size)
        self.events = sorted(e for e in events if e > 0)
        self.signed = SignedApprovals()

    # -- the stream -------------------------------------------------------------------------

    def run(self, entries: Iterable[bytes]) -> int:
        """Steps (1)-(3) per entry, (4)-(6) as the stream reaches each size; returns n."""
        self._check_checkpoints(0)
        # This loop runs once per entry: the compact range is updated inline (see
        # MerkleAccumulator.append) and everything it calls is bound to a local first.
        acc = self.acc
        stack = acc._stack
        pop, push = stack.pop, stack.append
        sha256, fields_of = _sha256, chain_fields
        events = iter(self.events)
        next_event = next(events, -1)
        progress = self.progress
        next_progress = PROGRESS_EVERY if progress else -1
        expected_prev = GENESIS_PREV
        # The compact range as it was before the last leaf that merged subtrees (an odd index)
        # or reached an event: a prev link broken right after that leaf needs it to tell which
        # side was altered (step (3)). After an even index the range is the stack minus its top.
        merged: list[bytes] = []
        stream = iter(entries)
        n = 0
        try:
            for raw in stream:
                # (1): canonical and well-typed; None sends the entry to the exact check.
                fields = fields_of(raw)
                if fields is None:
                    fields = self._decode(raw, n)
                seq, kind, prev, data = fields
                # (2) the entry on line n+1 is seq n; (3) prev is the previous leaf hash.
                if seq != n or prev != expected_prev:
                    before = merged if n & 1 == 0 else stack[:-1]  # the range of size n-1
                    self._broken_chain(raw, n, seq, prev, expected_prev, before, stream)
                leaf = sha256(b"\x00" + raw).digest()
                expected_prev = leaf.hex()
                n += 1
                if n == next_event:
                    acc.size = n - 1
                    merged = stack[:]
                    self._reach(n, leaf)
                    next_event = next(events, -1)
                else:
                    carry, h = n - 1, leaf
                    if carry & 1:
                        merged = stack[:]
                        while carry & 1:
                            h = sha256(b"\x01" + pop() + h).digest()
                            carry >>= 1
                    push(h)
                if kind == "key_rotated":
                    acc.size = n
                    self._rotate(n - 1, data)
                elif kind in PASSKEY_KINDS and (kind != "approval" or "passkey" in data):
                    self._passkey(n - 1, kind, data)
                if n == next_progress and progress is not None:
                    progress(n)
                    next_progress += PROGRESS_EVERY
        finally:
            acc.size = n
        if progress:
            progress(n)
        return n

    @staticmethod
    def _decode(raw: bytes, n: int) -> tuple[int, str, str, dict[str, object]]:
        """(1) by the exact check: a legitimate rarity (floats, astral keys) or an error."""
        try:
            e = decode_entry(raw)
        except EntryError as exc:
            raise VerificationFailure(1, str(exc), seq=n, line=n + 1) from exc
        return e.seq, e.kind, e.prev, e.data

    def _broken_chain(
        self, raw: bytes, n: int, seq: int, prev: str, expected: str, before: list[bytes],
        rest: Iterator[bytes],
    ) -> NoReturn:
        """Name the first failed step for entry ``n`` whose seq or prev is wrong (always raises).

        The hot path checks ``prev`` only by comparing it with a well-formed hash, so a
        malformed ``prev`` must be reported as (1) before the link is blamed. ``before`` is the
        compact range of the first n-1 entries and ``rest`` the entries after this one: a
        checkpoint further on may tell which side of the link was altered.
        """
        self._decode(raw, n)
        if seq != n:
            raise VerificationFailure(2, f"expected seq {n}, found seq {seq}", seq=n, line=n + 1)
        link = BrokenLink(n, prev, expected)
        if n == 0:
            # (3a): the first entry links to nothing.
            message = link.first_entry()
        elif n in self.roots:
            # (3b): a checkpoint of size n matched, so entry n-1 is as signed.
            message = link.link_altered()
        else:
            # (3c)/(3d): ask the next signed checkpoint, reading on as far as its size.
            message = self._ask_checkpoint_past(link, before, itertools.chain((raw,), rest))
        raise VerificationFailure(3, message, seq=n, line=n + 1)

    def _ask_checkpoint_past(
        self, link: BrokenLink, before: list[bytes], following: Iterable[bytes]
    ) -> str:
        """Recompute the first signed checkpoint past the broken link with entry n's prev as
        entry n-1's leaf hash (:mod:`ledger.alteration` (c)); undecided if none can be asked."""
        witness = self._signed_checkpoint_past(link.seq)
        if witness is None:
            return link.undecided()
        size, signed = witness
        try:
            head = head_with_leaf(before, link.seq - 1, bytes.fromhex(link.prev), following, size)
        except (VerificationFailure, OSError):  # the rest of the export cannot be read
            head = None
        if head is None:
            return link.undecided()
        return link.entry_altered(size) if head == signed else link.not_entry_alone(size)

    def _signed_checkpoint_past(self, n: int) -> tuple[int, bytes] | None:
        """(size, root) of the smallest checkpoint larger than ``n`` that verifies under the key
        in force at ``n``. A rotation after ``n`` hands over only past a checkpoint signed with
        the old key, so the first checkpoint past ``n`` is signed with this key."""
        candidates = [p for size, notes in self.pending.items() if size > n for p in notes]
        if self.trusted is not None and self.trusted.checkpoint.size > n:
            candidates.append(self.trusted)
        for p in sorted(candidates, key=lambda c: c.checkpoint.size):
            try:
                checkpoint = open_checkpoint(p.note, [self.key])
            except NoteError:
                continue
            return checkpoint.size, checkpoint.root
        return None

    def _reach(self, n: int, leaf: bytes) -> None:
        """The stream just reached size ``n``: capture proof nodes, check what ends here."""
        if self.plan.wants(n):
            self.plan.keep(n, self.acc.append_collect(leaf))
        else:
            self.acc.append(leaf)
        if n in self.pending:
            self._check_checkpoints(n)
        if self.trusted is not None and self.trusted.checkpoint.size == n:
            self._check_trusted_root(n)
        for pair in self.plan.ending_at(n):
            self._check_consistency(pair)

    # -- steps (4), (5), (6) ----------------------------------------------------------------

    def _check_checkpoints(self, n: int) -> None:
        # (4): signature under the key in force at size n, and root == tree head at n.
        root = self.acc.root() if n else EMPTY_ROOT
        for p in self.pending.pop(n, ()):
            try:
                open_checkpoint(p.note, [self.key])
            except NoteError as exc:
                raise VerificationFailure(
                    4, f"signature does not verify under {self.key.name}+{self.key.key_id:08x}"
                    f" (the key in force at size {n}): {exc}", checkpoint=p.name,
                ) from exc
            if p.checkpoint.root != root:
                if not n:
                    raise VerificationFailure(
                        4, f"checkpoint root {_b64(p.checkpoint.root)} is not the tree head "
                        f"{_b64(root)} of the first 0 entries", checkpoint=p.name,
                    )
                # Every prev link up to entry n-1 held on the way here: entry n-1 was altered.
                confirmed = max((size for size in self.roots if size < n), default=0)
                raise VerificationFailure(
                    4, altered_under_checkpoint(n, p.checkpoint.root, root, confirmed),
                    checkpoint=p.name, seq=n - 1, line=n,
                )
            self.roots[n] = root

    def _check_consistency(self, pair: Pair) -> None:
        # (5)/(6): a real consistency proof from the captured subtree hashes.
        size1, size2, step = pair
        proof = self.plan.proof(pair)
        if step == 6:
            assert self.trusted is not None  # a step (6) pair is planned only with one
            root1 = self.trusted.checkpoint.root
        else:
            root1 = self.roots[size1]
        try:
            verify_consistency(size1, size2, root1, self.roots[size2], proof)
        except ProofError as exc:
            raise VerificationFailure(
                step, f"tree at size {size1} is not consistent with size {size2}: {exc}",
                checkpoint=f"size {size2}",
            ) from exc

    def _check_trusted_root(self, n: int) -> None:
        # (6): the kept checkpoint is signed by the key in force then, and names today's head.
        assert self.trusted is not None
        try:
            open_checkpoint(self.trusted.note, [self.key])
        except NoteError as exc:
            raise VerificationFailure(
                6, f"trusted checkpoint does not verify under the key in force at size {n}: "
                f"{exc}", checkpoint="trusted",
            ) from exc
        root = self.acc.root() if n else EMPTY_ROOT
        if self.trusted.checkpoint.root != root:
            raise VerificationFailure(
                6, f"fork or rollback: the trusted checkpoint's root at size {n} is "
                f"{_b64(self.trusted.checkpoint.root)} but the log's is {_b64(root)}",
                checkpoint="trusted", seq=n - 1 if n else None, line=n or None,
            )
        self.roots.setdefault(n, root)

    def _rotate(self, seq: int, data: dict[str, object]) -> None:
        # (4): follow a key rotation; the old key must have signed the checkpoint covering it.
        if seq + 1 not in self.roots:
            raise VerificationFailure(
                4, f"key rotation at seq {seq} is not covered by a checkpoint of size "
                f"{seq + 1} signed with the old key", seq=seq, line=seq + 1,
            )
        old, new = data.get("old_key"), data.get("new_key")
        try:
            if not isinstance(old, str) or not isinstance(new, str):
                raise NoteError("old_key and new_key must be verifier key strings")
            if Verifier.from_string(old) != self.key:
                raise NoteError(f"old_key is not the key in force ({self.key})")
            self.key = Verifier.from_string(new)
        except NoteError as exc:
            raise VerificationFailure(
                4, f"bad key rotation: {exc}", seq=seq, line=seq + 1
            ) from exc
        self.keys.append(str(self.key))

    # -- step (7) ----------------------------------------------------------------------------

    def _passkey(self, seq: int, kind: str, data: dict[str, object]) -> None:
        # (7): a passkey registration, revocation or signed approval (ledger.passkeys).
        try:
            self.signed.observe(seq, kind, data)
        except PasskeyFailure as exc:
            raise VerificationFailure(7, f"{kind}: {exc}", seq=seq, line=seq + 1) from exc

    def finish(self, n: int) -> list[str]:
        """Checks that need the whole log: truncation (6), checkpoints past its end (4)."""
        if self.trusted is not None and self.trusted.checkpoint.size > n:
            verifiers = [Verifier.from_string(k) for k in self.keys]
            try:
                open_checkpoint(self.trusted.note, verifiers)
            except NoteError as exc:
                raise VerificationFailure(
                    6, f"trusted checkpoint does not verify under any of the log's keys: {exc}",
                    checkpoint="trusted",
                ) from exc
            raise VerificationFailure(
                6, f"log truncated: the trusted checkpoint has size "
                f"{self.trusted.checkpoint.size} but the log holds only {n} entries",
                checkpoint="trusted",
            )
        if self.pending:  # every checkpoint the stream reached was checked and removed
            size = min(self.pending)
            raise VerificationFailure(
                4, f"checkpoint of size {size} but the log holds only {n} entries "
                "(entries were removed)", checkpoint=self.pending[size][0].name,
            )
        if not self.count:
            raise VerificationFailure(4, "no checkpoints: nothing in the log is signed")
        warnings = []
        tail = n - self.sizes[-1]
        if tail > 0:
            warnings.append(f"the last {tail} entries are not covered by any checkpoint yet")
        return warnings
