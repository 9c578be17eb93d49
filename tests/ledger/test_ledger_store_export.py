"""Export and verification of a database-backed log, and tampering with either, on both backends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, update

from ledger import merkle
from ledger.checkpoint import open_checkpoint
from ledger.checkpointer import Checkpointer, CheckpointPolicy, rotate_key
from ledger.database import make_engine, read_only
from ledger.export import ExportError, checkpoint_file_name, export_log
from ledger.note import Signer, generate_key
from ledger.report import Report
from ledger.schema import checkpoints, entries, upgrade
from ledger.store import Ledger, NewEntry
from ledger.verify import verify_export, verify_log

ORIGIN = "warden.test/log"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _grow(engine: Engine, signer: Signer, count: int, every: int = 7) -> None:
    checkpointer = Checkpointer(signer, CheckpointPolicy(every_entries=every))
    for start in range(0, count, 5):
        with engine.begin() as conn:
            Ledger().append_many(
                conn, [NewEntry("decision", "bot", f"d{i}", {"i": i}) for i in range(start, min(start + 5, count))]
            )
            checkpointer.maybe_sign(conn)
    with engine.begin() as conn:
        checkpointer.sign_now(conn)


def _verify_db(engine: Engine, key: str, trusted: str | None = None) -> Report:
    ledger = Ledger()
    with engine.connect() as conn:
        read_only(conn)
        with conn.begin():
            notes = [note for _size, note in ledger.checkpoint_notes(conn)]
            return verify_log(ledger.iter_entries(conn), notes, key, trusted)


def test_export_writes_the_layout_and_verifies(engine: Engine, tmp_path: Path) -> None:
    signer = generate_key(ORIGIN)
    _grow(engine, signer, 40)
    summary = export_log(engine, tmp_path / "export")
    out = tmp_path / "export"
    assert summary.entries == 40
    assert (out / "log.pub").read_text() == signer.verifier_key + "\n"
    lines = (out / "entries.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 41
    with engine.connect() as conn:
        assert lines[:-1] == list(Ledger().iter_entries(conn))
        sizes = [size for size, _ in Ledger().checkpoint_notes(conn)]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [checkpoint_file_name(s) for s in sizes]
    assert checkpoint_file_name(40) == "000000000040.note"
    assert "warden audit verify" in (out / "README.txt").read_text()
    report = verify_export(out, signer.verifier_key)
    assert report.ok, report.summary()
    assert report.entries == 40 and report.checkpoints == len(sizes)
    assert _verify_db(engine, signer.verifier_key).ok


def test_export_refuses_a_folder_that_is_not_empty(engine: Engine, tmp_path: Path) -> None:
    _grow(engine, generate_key(ORIGIN), 3)
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_log(engine, tmp_path)


def test_rotations_are_followed_from_the_first_key(engine: Engine, tmp_path: Path) -> None:
    first, second, third = (generate_key(ORIGIN) for _ in range(3))
    _grow(engine, first, 12)
    with engine.begin() as conn:
        rotate_key(conn, first, second)
    _grow(engine, second, 9, every=4)
    with engine.begin() as conn:
        rotate_key(conn, second, third)
    _grow(engine, third, 6, every=3)
    export_log(engine, tmp_path / "out")
    assert (tmp_path / "out" / "log.pub").read_text().strip() == first.verifier_key
    report = verify_export(tmp_path / "out", first.verifier_key)
    assert report.ok, report.summary()
    assert _verify_db(engine, first.verifier_key).ok
    assert not verify_export(tmp_path / "out", second.verifier_key).ok


def test_a_trusted_checkpoint_from_before_is_accepted_and_a_forked_one_is_not(
    engine: Engine, tmp_path: Path
) -> None:
    signer = generate_key(ORIGIN)
    _grow(engine, signer, 20)
    export_log(engine, tmp_path / "before")
    kept = sorted((tmp_path / "before" / "checkpoints").iterdir())[-1].read_text()
    _grow(engine, signer, 15)
    export_log(engine, tmp_path / "after")
    assert verify_export(tmp_path / "after", signer.verifier_key, kept).ok
    assert _verify_db(engine, signer.verifier_key, kept).ok
    # A checkpoint of a different log (a fork) signed with the same key is rejected.
    fork_engine = make_engine(f"sqlite:///{tmp_path / 'fork.db'}")
    upgrade(fork_engine)
    with fork_engine.begin() as conn:
        Ledger().append_many(conn, [NewEntry("decision", "mallory", f"x{i}", {}) for i in range(25)])
        forked = Checkpointer(signer).sign_now(conn)
    fork_engine.dispose()
    assert forked is not None
    report = verify_export(tmp_path / "after", signer.verifier_key, forked.note)
    assert not report.ok and report.failed_step == 6


def _tamper_entry_body(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    body = Ledger().entry(conn, seq)
    conn.execute(update(entries).where(entries.c.seq == seq).values(body=body.replace(b'"bot"', b'"b0t"')))


@pytest.mark.parametrize(
    ("tamper", "step"),
    [
        pytest.param(_tamper_entry_body, 3, id="entry-bytes-changed"),
        pytest.param(lambda conn, seq: conn.execute(delete(entries).where(entries.c.seq == seq)), 2, id="entry-deleted"),
        pytest.param(
            lambda conn, seq: conn.execute(delete(checkpoints).where(checkpoints.c.size > 0)), None, id="checkpoints-dropped"
        ),
    ],
)
def test_tampering_with_the_database_is_detected(engine: Engine, tamper, step: int | None) -> None:  # type: ignore[no-untyped-def]
    signer = generate_key(ORIGIN)
    _grow(engine, signer, 30)
    with engine.begin() as conn:
        tamper(conn, 11)
    report = _verify_db(engine, signer.verifier_key)
    if step is None:  # nothing signed any more: the verifier must not call it a verified log
        assert not report.ok and report.failure is not None and "no checkpoints" in report.failure
    else:
        assert not report.ok and report.failed_step == step, report.summary()
        assert report.seq in (11, 12)


def test_tampering_with_the_export_is_detected(engine: Engine, tmp_path: Path) -> None:
    signer = generate_key(ORIGIN)
    _grow(engine, signer, 30)
    out = tmp_path / "export"
    export_log(engine, out)
    lines = (out / "entries.jsonl").read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"i":4', b'"i":5')
    (out / "entries.jsonl").write_bytes(b"\n".join(lines))
    report = verify_export(out, signer.verifier_key)
    # Caught by whichever comes first: the checkpoint covering entry 4, or entry 5's prev link.
    assert not report.ok and (report.failed_step, report.seq) in {(3, 5), (4, 4)}, report.summary()


def test_a_checkpoint_replaced_by_another_key_is_detected(engine: Engine, tmp_path: Path) -> None:
    signer, other = generate_key(ORIGIN), generate_key(ORIGIN)
    _grow(engine, signer, 30)
    out = tmp_path / "export"
    export_log(engine, out)
    last = sorted((out / "checkpoints").iterdir())[-1]
    text = last.read_text().split("\n\n")[0] + "\n"
    last.write_text(other.sign(text))
    os.utime(last)
    report = verify_export(out, signer.verifier_key)
    assert not report.ok and report.failed_step == 4, report.summary()


def test_proofs_served_from_the_database_match_the_exported_checkpoints(engine: Engine, tmp_path: Path) -> None:
    signer = generate_key(ORIGIN)
    _grow(engine, signer, 50)
    with engine.connect() as conn:
        sizes = [size for size, _ in Ledger().checkpoint_notes(conn)]
        for size in sizes:
            for seq in {0, size // 2, size - 1}:
                receipt = Ledger().inclusion(conn, seq, size)
                assert receipt.checkpoint is not None
                head = open_checkpoint(receipt.checkpoint, [signer.verifier])
                merkle.verify_inclusion(receipt.leaf_hash, seq, size, receipt.proof, head.root)
