"""Offline verification of an audit log: ``warden audit verify``.

Needs nothing but the entries, the signed checkpoints and the log's first public key. One pass
over the entries, O(log n) memory for the tree (a compact range), and these numbered steps:

(1) every entry parses and is RFC 8785 canonical and well-typed;
(2) ``seq`` runs 0..n-1 without a gap;
(3) every ``prev`` is the leaf hash of the entry before (64 zeros for seq 0);
(4) every checkpoint's signature verifies under the key in force at its size (the first key,
    then each ``key_rotated`` entry's new key for sizes past the rotation's own checkpoint) and
    its root is the tree head of the entries at its size;
(5) each checkpoint is consistent with the next: a real RFC 6962 consistency proof, built from
    subtree hashes captured while streaming, checked with the RFC 9162 verifier;
(6) a checkpoint the auditor kept from before is consistent with the log now: not past its end
    (truncation), same tree head at its size (rollback or fork), and provably extended.

The first failure stops verification; the report names the step and the entry (seq and line)
or checkpoint where it happened.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ledger.checkpoint import Checkpoint, CheckpointError, open_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import GENESIS_PREV, EntryError, chain_fields, decode_entry
from ledger.merkle import EMPTY_ROOT, ProofError, verify_consistency
from ledger.note import NoteError, Verifier
from ledger.proofplan import Pair, ProofPlan
from ledger.report import STEPS, Report, StepResult, VerificationFailure

__all__ = ["PROGRESS_EVERY", "VerifyError", "verify_export", "verify_log"]

PROGRESS_EVERY = 1 << 16
"""``progress(entries_done)`` is called after every this many entries, and once at the end."""

Progress = Callable[[int], None]
_CHECKPOINT_FILE = re.compile(r"([0-9]{12})\.note")
_sha256 = hashlib.sha256


class VerifyError(ValueError):
    """The inputs cannot be verified at all (bad key, missing files): a usage error, not a verdict."""


def _b64(root: bytes) -> str:
    return base64.b64encode(root).decode()


class _Pending:
    """A checkpoint waiting for the stream to reach its size."""

    __slots__ = ("checkpoint", "name", "note")

    def __init__(self, name: str, note: str, checkpoint: Checkpoint) -> None:
        self.name = name
        self.note = note
        self.checkpoint = checkpoint


def _parse_unverified(name: str, note: str | bytes, expected_size: int | None) -> _Pending:
    """Read a checkpoint's size and root before its signature can be checked (step 4 later)."""
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
    return _Pending(name, note, cp)


class _LogVerifier:
    """State of one verification run; see the module docstring for the steps."""

    def __init__(
        self,
        key: str,
        checkpoints: Iterable[tuple[str, str | bytes, int | None]],
        trusted: str | None,
        progress: Progress | None,
    ) -> None:
        try:
            self.key = Verifier.from_string(key)
        except NoteError as exc:
            raise VerifyError(f"unusable verifier key: {exc}") from exc
        self.keys = [str(self.key)]
        self.progress = progress
        self.acc = MerkleAccumulator()
        self.pending: dict[int, list[_Pending]] = {}
        self.count = 0
        for name, note, expected in checkpoints:
            p = _parse_unverified(name, note, expected)
            self.pending.setdefault(p.checkpoint.size, []).append(p)
            self.count += 1
        self.sizes = sorted(self.pending)
        self.trusted: _Pending | None = None
        if trusted is not None:
            try:
                self.trusted = _parse_unverified("trusted", trusted, None)
            except VerificationFailure as exc:
                raise VerifyError(f"unusable trusted checkpoint: {exc.message}") from exc
        self.roots: dict[int, bytes] = {}
        trusted_size = self.trusted.checkpoint.size if self.trusted is not None else None
        self.plan = ProofPlan(self.sizes, trusted_size)
        events = set(self.pending) | self.plan.capture_sizes()
        if trusted_size is not None:
            events.add(trusted_size)
        self.events = sorted(e for e in events if e > 0)

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
        next_progress = PROGRESS_EVERY if self.progress else -1
        expected_prev = GENESIS_PREV
        n = 0
        try:
            for raw in entries:
                # (1): canonical and well-typed; None sends the entry to the exact check.
                fields = fields_of(raw)
                if fields is None:
                    fields = self._decode(raw, n)
                seq, kind, prev, data = fields
                # (2) the entry on line n+1 is seq n; (3) prev is the previous leaf hash.
                if seq != n or prev != expected_prev:
                    self._broken_chain(raw, n, seq, prev, expected_prev)
                leaf = sha256(b"\x00" + raw).digest()
                expected_prev = leaf.hex()
                n += 1
                if n == next_event:
                    acc.size = n - 1
                    self._reach(n, leaf)
                    next_event = next(events, -1)
                else:
                    carry, h = n - 1, leaf
                    while carry & 1:
                        h = sha256(b"\x01" + pop() + h).digest()
                        carry >>= 1
                    push(h)
                if kind == "key_rotated":
                    acc.size = n
                    self._rotate(n - 1, data)
                if n == next_progress:
                    self.progress(n)  # type: ignore[misc]
                    next_progress += PROGRESS_EVERY
        finally:
            acc.size = n
        if self.progress:
            self.progress(n)
        return n

    @staticmethod
    def _decode(raw: bytes, n: int) -> tuple[int, str, str, dict[str, object]]:
        """(1) by the exact check: a legitimate rarity (floats, astral keys) or an error."""
        try:
            e = decode_entry(raw)
        except EntryError as exc:
            raise VerificationFailure(1, str(exc), seq=n, line=n + 1) from exc
        return e.seq, e.kind, e.prev, e.data

    def _broken_chain(self, raw: bytes, n: int, seq: int, prev: str, expected: str) -> None:
        """Name the first failed step for an entry whose seq or prev is wrong (always raises).

        The hot path checks ``prev`` only by comparing it with a well-formed hash, so a
        malformed ``prev`` must be reported as (1) before the link is blamed.
        """
        self._decode(raw, n)
        if seq != n:
            raise VerificationFailure(2, f"expected seq {n}, found seq {seq}", seq=n, line=n + 1)
        raise VerificationFailure(
            3, f"prev is {prev}, but the previous entry's leaf hash is {expected}",
            seq=n, line=n + 1,
        )

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
                raise VerificationFailure(
                    4, f"checkpoint root {_b64(p.checkpoint.root)} is not the tree head "
                    f"{_b64(root)} of the first {n} entries", checkpoint=p.name,
                    seq=n - 1 if n else None, line=n or None,
                )
            self.roots[n] = root

    def _check_consistency(self, pair: Pair) -> None:
        # (5)/(6): a real consistency proof from the captured subtree hashes.
        size1, size2, step = pair
        proof = self.plan.proof(pair)
        root1 = self.trusted.checkpoint.root if step == 6 else self.roots[size1]  # type: ignore[union-attr]
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
        where = {"seq": seq, "line": seq + 1}
        if seq + 1 not in self.roots:
            raise VerificationFailure(
                4, f"key rotation at seq {seq} is not covered by a checkpoint of size "
                f"{seq + 1} signed with the old key", **where,  # type: ignore[arg-type]
            )
        old, new = data.get("old_key"), data.get("new_key")
        try:
            if not isinstance(old, str) or not isinstance(new, str):
                raise NoteError("old_key and new_key must be verifier key strings")
            if Verifier.from_string(old) != self.key:
                raise NoteError(f"old_key is not the key in force ({self.key})")
            self.key = Verifier.from_string(new)
        except NoteError as exc:
            raise VerificationFailure(4, f"bad key rotation: {exc}", **where) from exc  # type: ignore[arg-type]
        self.keys.append(str(self.key))

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


def _report(v: _LogVerifier, n: int, failure: VerificationFailure | None,
            warnings: list[str]) -> Report:
    steps = []
    for number, title in STEPS.items():
        if failure is not None:
            status = "failed" if number == failure.step else "not reached"
        elif number == 5 and len([s for s in v.sizes if s > 0]) < 2:
            status = "skipped"
        elif number == 6 and v.trusted is None:
            status = "skipped"
        else:
            status = "passed"
        steps.append(StepResult(number, title, status))
    last = v.sizes[-1] if v.sizes else None
    return Report(
        ok=failure is None,
        entries=n,
        checkpoints=v.count,
        tree_size=v.acc.size,
        root=v.acc.root(),
        steps=steps,
        failed_step=failure.step if failure else None,
        failure=failure.message if failure else None,
        seq=failure.seq if failure else None,
        line=failure.line if failure else None,
        checkpoint=failure.checkpoint if failure else None,
        keys=list(v.keys),
        latest_checkpoint_size=last,
        unsigned_tail=max(0, n - last) if last is not None and failure is None else 0,
        warnings=warnings,
    )


def _verify(
    entries: Iterable[bytes],
    checkpoints: Iterable[tuple[str, str | bytes, int | None]],
    key: str,
    trusted: str | None,
    progress: Progress | None,
) -> Report:
    try:
        v = _LogVerifier(key, checkpoints, trusted, progress)
    except VerificationFailure as exc:  # a malformed checkpoint, found before streaming
        v = _LogVerifier(key, [], trusted, None)
        return _report(v, 0, exc, [])
    n = 0
    try:
        n = v.run(entries)
        warnings = v.finish(n)
    except VerificationFailure as exc:
        return _report(v, v.acc.size, exc, [])
    return _report(v, n, None, warnings)


def verify_log(
    entries: Iterable[bytes],
    checkpoints: Iterable[str],
    key: str,
    trusted_checkpoint: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Verify entries (exact canonical bytes, no newline) against signed checkpoint notes.

    ``key`` is the verifier key string of the log's FIRST key; rotations are followed from
    the log itself. ``trusted_checkpoint`` is the text of a signed checkpoint kept from before.
    Raises :class:`VerifyError` only for unusable inputs; every finding is in the report.
    """
    named = ((f"#{i + 1}", note, None) for i, note in enumerate(checkpoints))
    return _verify(entries, named, key, trusted_checkpoint, progress)


def _lines(path: Path) -> Iterator[bytes]:
    """``entries.jsonl`` line by line, without the newline every line must end with.

    Read in large blocks and split in C: iterating a file object line by line costs a
    noticeable share of the per-entry budget.
    """
    count = 0
    tail = b""
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            lines = (tail + block).split(b"\n")
            tail = lines.pop()
            count += len(lines)
            yield from lines
    if tail:
        raise VerificationFailure(
            1, "the last line does not end with a newline (file cut short?)",
            seq=count, line=count + 1,
        )


def verify_export(
    directory: str | Path,
    key: str,
    trusted_checkpoint: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Verify an export directory (``entries.jsonl``, ``checkpoints/<size>.note``)."""
    root = Path(directory)
    entries = root / "entries.jsonl"
    folder = root / "checkpoints"
    if not entries.is_file():
        raise VerifyError(f"{entries} is missing: not an audit export")
    if not folder.is_dir():
        raise VerifyError(f"{folder} is missing: not an audit export")
    named: list[tuple[str, str | bytes, int | None]] = []
    for path in sorted(folder.iterdir()):
        match = _CHECKPOINT_FILE.fullmatch(path.name)
        size = int(match.group(1)) if match else None
        if match is None and path.suffix != ".note":
            continue  # not a checkpoint (e.g. an editor's backup): ignored, never trusted
        try:
            named.append((f"checkpoints/{path.name}", path.read_bytes(), size))
        except OSError as exc:
            raise VerifyError(f"cannot read {path}: {exc}") from exc
    if any(size is None for _, _, size in named):
        bad = next(name for name, _, size in named if size is None)
        v = _LogVerifier(key, [], trusted_checkpoint, None)
        return _report(v, 0, VerificationFailure(
            4, "checkpoint file names must be the 12-digit tree size + .note", checkpoint=bad
        ), [])
    try:
        return _verify(_lines(entries), named, key, trusted_checkpoint, progress)
    except OSError as exc:
        raise VerifyError(f"cannot read {entries}: {exc}") from exc
