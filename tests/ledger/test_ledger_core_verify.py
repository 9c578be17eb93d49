"""The offline verifier on export directories: layout rules, rotations, reports, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import GENESIS_PREV, encode_entry
from ledger.merkle import leaf_hash
from ledger.note import generate_key
from ledger.synthetic import SyntheticLog, build_log
from ledger.verify import VerifyError, verify_export, verify_log

ORIGIN = "warden.example/audit"
TIME = "2025-01-01T00:00:00.000000Z"


def _export(log: SyntheticLog, root: Path) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    (root / "entries.jsonl").write_bytes(b"".join(e + b"\n" for e in log.entries))
    for size, note in log.checkpoints.items():
        (root / "checkpoints" / f"{size:012d}.note").write_text(note)
    (root / "log.pub").write_text(log.first_key + "\n")
    return root


@pytest.fixture(scope="module")
def log() -> SyntheticLog:
    return build_log(300, checkpoint_every=50, rotate_at=[120], origin=ORIGIN)


def test_a_clean_export_verifies_with_progress(log: SyntheticLog, tmp_path: Path) -> None:
    seen: list[int] = []
    report = verify_export(_export(log, tmp_path), log.first_key, progress=seen.append)
    assert report.ok, report.summary()
    assert (report.entries, report.tree_size, report.checkpoints) == (300, 300, 7)
    assert report.keys == [s.verifier_key for s in log.signers]
    assert seen[-1] == 300
    assert "OK: 300 entries" in report.summary()
    assert report.to_dict()["steps"][4]["status"] == "passed"


def test_file_layout_rules(log: SyntheticLog, tmp_path: Path) -> None:
    root = _export(log, tmp_path)
    data = (root / "entries.jsonl").read_bytes()
    (root / "entries.jsonl").write_bytes(data[:-1])
    report = verify_export(root, log.first_key)
    assert (report.failed_step, report.line) == (1, 300)
    assert "newline" in (report.failure or "")
    (root / "entries.jsonl").write_bytes(data)
    (root / "checkpoints" / f"{50:012d}.note").rename(root / "checkpoints" / f"{51:012d}.note")
    report = verify_export(root, log.first_key)
    assert report.failed_step == 4 and "file name says size 51" in (report.failure or "")
    (root / "checkpoints" / f"{51:012d}.note").rename(root / "checkpoints" / "fifty.note")
    report = verify_export(root, log.first_key)
    assert report.failed_step == 4 and report.checkpoint == "checkpoints/fifty.note"


def test_unusable_inputs_raise(log: SyntheticLog, tmp_path: Path) -> None:
    with pytest.raises(VerifyError, match="entries.jsonl is missing"):
        verify_export(tmp_path, log.first_key)
    root = _export(log, tmp_path / "x")
    with pytest.raises(VerifyError, match="unusable verifier key"):
        verify_export(root, "not a key")
    with pytest.raises(VerifyError, match="unusable trusted checkpoint"):
        verify_export(root, log.first_key, trusted_checkpoint="garbage")


def _manual_log(rotation_data: dict[str, str], sign_covering: bool) -> tuple[list[bytes], list[str], str]:
    """Two entries: a key rotation at seq 0, then a decision; checkpoints as asked."""
    old, new = generate_key(ORIGIN), generate_key(ORIGIN)
    data = {k: v.replace("OLD", old.verifier_key).replace("NEW", new.verifier_key)
            for k, v in rotation_data.items()}
    e0 = encode_entry(0, TIME, "key_rotated", "founder", ORIGIN, data, GENESIS_PREV)
    e1 = encode_entry(1, TIME, "decision", "bot", "d1", {}, leaf_hash(e0))
    acc = MerkleAccumulator()
    notes = []
    acc.append(leaf_hash(e0))
    if sign_covering:
        notes.append(sign_checkpoint(Checkpoint(ORIGIN, 1, acc.root()), old))
    acc.append(leaf_hash(e1))
    notes.append(sign_checkpoint(Checkpoint(ORIGIN, 2, acc.root()), new))
    return [e0, e1], notes, old.verifier_key


def test_rotation_rules() -> None:
    good = {"old_key": "OLD", "new_key": "NEW"}
    assert verify_log(*_manual_log(good, True)).ok
    report = verify_log(*_manual_log(good, False))
    assert report.failed_step == 4 and "not covered by a checkpoint of size 1" in report.failure
    report = verify_log(*_manual_log({"old_key": "NEW", "new_key": "NEW"}, True))
    assert report.failed_step == 4 and "old_key is not the key in force" in report.failure
    report = verify_log(*_manual_log({"old_key": "OLD", "new_key": "junk"}, True))
    assert report.failed_step == 4 and "bad key rotation" in report.failure
    report = verify_log(*_manual_log({"old_key": "OLD"}, True))
    assert report.failed_step == 4 and report.seq == 0 and report.line == 1


def test_unsigned_logs_and_tails(log: SyntheticLog) -> None:
    report = verify_log(log.entries[:100], [], log.first_key)
    assert report.failed_step == 4 and "no checkpoints" in (report.failure or "")
    notes = [log.checkpoints[s] for s in sorted(log.checkpoints) if s <= 250]
    report = verify_log(log.entries, notes, log.first_key)
    assert report.ok and report.unsigned_tail == 50
    assert "last 50 entries are not covered" in report.summary()


def test_empty_log_with_a_size_zero_checkpoint() -> None:
    signer = generate_key(ORIGIN)
    note = sign_checkpoint(Checkpoint(ORIGIN, 0, bytes(32)), signer)
    assert verify_log([], [note], signer.verifier_key).failed_step == 4
    from ledger.merkle import EMPTY_ROOT

    empty = sign_checkpoint(Checkpoint(ORIGIN, 0, EMPTY_ROOT), signer)
    report = verify_log([], [empty], signer.verifier_key, trusted_checkpoint=empty)
    assert report.ok, report.summary()
