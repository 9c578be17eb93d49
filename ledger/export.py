"""`warden audit export`: the log as plain files an auditor can check with nothing but a key.

Layout (SPEC "Export dir"): see :mod:`ledger.export_layout`, shared with the offline verifier.

The export is one consistent snapshot (a single read transaction: the head, then the entries
and checkpoints up to it) streamed to disk in batches, so memory stays flat on a large log and a
concurrent append never produces a half-written tail. Files are written under a temporary name
in the target folder and renamed into place at the end: an interrupted export leaves no
`entries.jsonl` that looks complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine

from ledger.database import read_only
from ledger.export_layout import (
    CHECKPOINT_DIR,
    ENTRIES_FILE,
    KEY_FILE,
    README_FILE,
    checkpoint_file_name,
)
from ledger.keys import signing_keys
from ledger.store import Ledger

__all__ = [
    "CHECKPOINT_DIR",
    "ENTRIES_FILE",
    "KEY_FILE",
    "README_FILE",
    "ExportError",
    "ExportSummary",
    "checkpoint_file_name",
    "export_log",
    "readme_text",
]


class ExportError(Exception):
    """The export cannot be written (folder not empty, nothing to export, I/O error)."""


@dataclass(frozen=True)
class ExportSummary:
    directory: Path
    entries: int
    checkpoints: int
    first_key: str


def export_log(engine: Engine, out: Path, *, ledger: Ledger | None = None) -> ExportSummary:
    """Write the export of the database behind `engine` into the new or empty folder `out`."""
    ledger = ledger or Ledger()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; choose a new one")
    with engine.connect() as conn:
        read_only(conn)
        with conn.begin():
            keys = signing_keys(conn)
            head = ledger.head(conn)
            if not keys:
                raise ExportError(
                    "the log has no signed checkpoint yet, so nothing could be verified; "
                    "sign one first (`warden audit checkpoint --key KEYFILE`)"
                )
            try:
                (out / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
                notes = ledger.checkpoint_notes(conn, up_to=head.size)
                for size, note in notes:
                    _write_atomically(out / CHECKPOINT_DIR / checkpoint_file_name(size), note.encode())
                count = _write_entries(out / ENTRIES_FILE, ledger, conn, head.size)
                _write_atomically(out / KEY_FILE, (keys[0].verifier_key + "\n").encode())
                _write_atomically(out / README_FILE, readme_text(head.size, len(notes)).encode())
            except OSError as exc:
                raise ExportError(f"cannot write the export to {out}: {exc.strerror or exc}") from exc
    if count != head.size:
        raise ExportError(f"the log should hold {head.size} entries but {count} were read")
    return ExportSummary(out, count, len(notes), keys[0].verifier_key)


def _write_entries(path: Path, ledger: Ledger, conn: Connection, size: int) -> int:
    partial = path.with_name(path.name + ".partial")
    count = 0
    with open(partial, "wb", buffering=1 << 20) as handle:
        for body in ledger.iter_entries(conn, 0, size):
            handle.write(body)
            handle.write(b"\n")
            count += 1
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return count


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def readme_text(entries: int, checkpoints: int) -> str:
    """The auditor's guide shipped inside every export."""
    return f"""Warden audit log export
=======================

This folder holds {entries} audit log entries and {checkpoints} signed checkpoints.

Files
-----
entries.jsonl
    One log entry per line, in order (seq 0, 1, 2, ...). Each line is exactly the bytes that
    were hashed: RFC 8785 canonical JSON of
    {{"seq", "time", "kind", "actor", "subject", "data", "prev"}}, where "prev" is the hex
    SHA-256(0x00 || previous entry) (64 zeros for seq 0).
checkpoints/NNNNNNNNNNNN.note
    Signed checkpoints (C2SP tlog-checkpoint, signed as a C2SP signed note with Ed25519), one per
    file, named by tree size. Each commits to the RFC 6962 Merkle tree head of the first N entries.
log.pub
    The verifier (public) key of the log's first signing key. Obtain this key from Warden's
    operators through a channel you trust; do not rely on the copy in this folder alone.
    Key rotations are entries of kind "key_rotated": the checkpoint right after one is still
    signed by the old key, later ones by the new key, so the first key is all you need.

How to verify
-------------
    warden audit verify THIS_FOLDER --key 'KEY_YOU_TRUST'
    warden audit verify THIS_FOLDER --key 'KEY_YOU_TRUST' --trusted-checkpoint OLD.note

The verifier checks, in numbered steps: every entry parses and is canonical; seq runs 0..n-1
without a gap; every "prev" link; every checkpoint's signature (following key rotations) and
Merkle root; each checkpoint is consistent with the next; and, with --trusted-checkpoint, that a
checkpoint you kept from an earlier export is consistent with this log (which detects
truncation, rollback and forks); and that every approval signed with a passkey (an "approval"
entry with "passkey") verifies under a passkey registered earlier in the log ("passkey_registered")
to its approver, for that approval's own decision, packet and policies. It names the first bad entry and the failed step, and exits
with status 1 if anything fails (0 when everything checks out).

Keep the newest file from checkpoints/ somewhere safe: pass it as --trusted-checkpoint when you
verify the next export.

Deciding again
--------------
Every "policy_activated" entry holds the files of the policy set it activated ("sources"), and
every "decision" entry the packet and what it was decided from ("inputs"), so this folder is all
a policy author needs to decide recorded history again, offline:

    warden replay --all --export THIS_FOLDER          every decision again: identical, or what differs
    warden policy show --list --export THIS_FOLDER    the policy sets, by digest
    warden policy impact CANDIDATE_DIR --export THIS_FOLDER --since 30d
"""
