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
    (truncation), same tree head at its size (rollback or fork), and provably extended;
(7) every approval signed with a passkey verifies under a passkey registered earlier in the log to
    its approver and not revoked since, for that approval's own challenge
    (:mod:`ledger.passkeys`; memory: one record per registered passkey).

The first failure stops verification; the report names the step and the entry (seq and line)
or checkpoint where it happened, and for an altered entry which one, as far as the signed
checkpoints can tell (:mod:`ledger.alteration`).

The run itself is :class:`ledger.log_verifier.LogVerifier`; this module gathers its inputs (a
stream of entries and checkpoint notes, or an export folder, :mod:`ledger.export_layout`) and
turns its outcome into a :class:`ledger.report.Report`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ledger.export_layout import CHECKPOINT_DIR, ENTRIES_FILE, checkpoint_files, entry_lines
from ledger.log_verifier import PROGRESS_EVERY, LogVerifier, Progress
from ledger.report import STEPS, Report, StepResult, VerificationFailure, VerifyError

__all__ = ["PROGRESS_EVERY", "VerifyError", "verify_export", "verify_log"]


def _report(v: LogVerifier, n: int, failure: VerificationFailure | None,
            warnings: list[str]) -> Report:
    steps = []
    for number, title in STEPS.items():
        if failure is not None:
            status = "failed" if number == failure.step else "not reached"
        elif number == 5 and len([s for s in v.sizes if s > 0]) < 2:
            status = "skipped"
        elif number == 6 and v.trusted is None:
            status = "skipped"
        elif number == 7 and not v.signed.credentials:
            status = "skipped"
        else:
            status = "passed"
        detail = ""
        if number == 7 and status == "passed":
            plural = "" if v.signed.verified == 1 else "s"
            detail = f"{v.signed.verified} passkey-signed approval{plural} verified"
        steps.append(StepResult(number, title, status, detail))
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
        passkey_approvals=v.signed.verified,
    )


def _verify(
    entries: Iterable[bytes],
    checkpoints: Iterable[tuple[str, str | bytes, int | None]],
    key: str,
    trusted: str | None,
    progress: Progress | None,
) -> Report:
    try:
        v = LogVerifier(key, checkpoints, trusted, progress)
    except VerificationFailure as exc:  # a malformed checkpoint, found before streaming
        v = LogVerifier(key, [], trusted, None)
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


def verify_export(
    directory: str | Path,
    key: str,
    trusted_checkpoint: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Verify an export directory (``entries.jsonl``, ``checkpoints/<size>.note``)."""
    root = Path(directory)
    entries = root / ENTRIES_FILE
    folder = root / CHECKPOINT_DIR
    if not entries.is_file():
        raise VerifyError(f"{entries} is missing: not an audit export")
    if not folder.is_dir():
        raise VerifyError(f"{folder} is missing: not an audit export")
    named: list[tuple[str, str | bytes, int | None]] = []
    for path, size in checkpoint_files(folder):
        try:
            named.append((f"{CHECKPOINT_DIR}/{path.name}", path.read_bytes(), size))
        except OSError as exc:
            raise VerifyError(f"cannot read {path}: {exc}") from exc
    if any(size is None for _, _, size in named):
        bad = next(name for name, _, size in named if size is None)
        v = LogVerifier(key, [], trusted_checkpoint, None)
        return _report(v, 0, VerificationFailure(
            4, "checkpoint file names must be the 12-digit tree size + .note", checkpoint=bad
        ), [])
    try:
        return _verify(entry_lines(entries), named, key, trusted_checkpoint, progress)
    except OSError as exc:
        raise VerifyError(f"cannot read {entries}: {exc}") from exc
