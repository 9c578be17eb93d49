"""Which entry of an edited export the verifier names, and how sure it says it is.

Each test reproduces one edit of an exported log (an entry's data, an entry's prev link, the
last entry) with or without a signed checkpoint that covers it, and pins the verdict's text.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.compact import MerkleAccumulator
from ledger.entry import decode_entry, encode_entry
from ledger.merkle import leaf_hash
from ledger.report import Report
from ledger.synthetic import SyntheticLog, build_log
from gateway.cli.verification import run_verification
from ledger.verify import verify_export, verify_log

ORIGIN = "warden.example/audit"
FORGED_PREV = leaf_hash(b"not an entry of this log").hex()


def _log(size: int, *, every: int = 100, final: bool = True, rotate_at: tuple[int, ...] = ()) -> SyntheticLog:
    return build_log(size, checkpoint_every=every, rotate_at=rotate_at, origin=ORIGIN, final_checkpoint=final)


def _data_edited(raw: bytes) -> bytes:
    """The same entry, still canonical and in place (seq and prev kept), with other data."""
    e = decode_entry(raw)
    return encode_entry(e.seq, e.time, e.kind, e.actor, e.subject, {**e.data, "amount": 1}, e.prev)


def _prev_edited(raw: bytes, prev: str = FORGED_PREV) -> bytes:
    e = decode_entry(raw)
    return encode_entry(e.seq, e.time, e.kind, e.actor, e.subject, e.data, prev)


def _leaf(raw: bytes) -> str:
    return leaf_hash(raw).hex()


def _root(entries: list[bytes]) -> bytes:
    acc = MerkleAccumulator()
    acc.extend(leaf_hash(raw) for raw in entries)
    return acc.root()


def _head(entries: list[bytes]) -> str:
    return base64.b64encode(_root(entries)).decode()


def _export(root: Path, entries: list[bytes], checkpoints: dict[int, str]) -> Path:
    (root / "checkpoints").mkdir(parents=True)
    (root / "entries.jsonl").write_bytes(b"".join(raw + b"\n" for raw in entries))
    for size, note in checkpoints.items():
        (root / "checkpoints" / f"{size:012d}.note").write_text(note)
    return root


def _verify(tmp_path: Path, log: SyntheticLog, entries: list[bytes], sizes: list[int] | None = None,
            trusted: str | None = None) -> Report:
    """Verify ``entries`` exported with ``log``'s checkpoints (only ``sizes``, if given)."""
    checkpoints = {s: n for s, n in log.checkpoints.items() if sizes is None or s in sizes}
    return verify_export(_export(tmp_path / "export", entries, checkpoints), log.first_key, trusted)


def _failed(report: Report, step: int, seq: int) -> str:
    assert not report.ok, report.summary()
    assert (report.failed_step, report.seq, report.line) == (step, seq, seq + 1), report.summary()
    assert report.failure is not None
    return report.failure


# -- an edited entry in the middle of the log ---------------------------------------------------


def test_edited_middle_entry_under_a_later_checkpoint_is_named_for_sure(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 3, 301) == (
        f"entry 300 was altered: its leaf hash is {_leaf(entries[300])}, but entry 301's prev "
        f"{_leaf(log.entries[300])} is the leaf hash the checkpoint of size 400 signed for it"
    )
    # Reading on to that checkpoint is not verifying: the report stops at the broken link.
    assert (report.entries, report.tree_size) == (301, 301)


def test_edited_middle_entry_without_a_later_checkpoint_is_it_or_the_next_link(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    report = _verify(tmp_path, log, entries, sizes=[100, 200, 300])
    assert _failed(report, 3, 301) == (
        f"entry 300 was altered, or entry 301's prev link was: entry 301's prev is "
        f"{_leaf(log.entries[300])}, but entry 300's leaf hash is {_leaf(entries[300])} "
        "(no signed checkpoint tells which)"
    )


def test_edited_middle_entry_under_a_checkpoint_ending_at_it_is_named_by_its_root(tmp_path: Path) -> None:
    log = _log(600)
    signed = dict(log.checkpoints)
    signed[301] = sign_checkpoint(Checkpoint(ORIGIN, 301, _root(log.entries[:301])), log.signers[0])
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    report = verify_export(_export(tmp_path / "export", entries, signed), log.first_key)
    assert _failed(report, 4, 300) == (
        f"entry 300 was altered: every prev link up to it holds, but the first 301 entries give "
        f"tree head {_head(entries[:301])}, not the signed {_head(log.entries[:301])}"
    )
    assert report.checkpoint == "checkpoints/000000000301.note"


def test_edited_entry_behind_a_rewritten_chain_is_bounded_by_the_last_matching_checkpoint(
    tmp_path: Path,
) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[250] = _data_edited(entries[250])
    for seq in range(251, 300):  # every later link rewritten, up to the checkpoint of size 300
        entries[seq] = _prev_edited(entries[seq], _leaf(entries[seq - 1]))
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 4, 299) == (
        f"entry 299 was altered: every prev link up to it holds, but the first 300 entries give "
        f"tree head {_head(entries[:300])}, not the signed {_head(log.entries[:300])} "
        "(entries 200 to 298 may have been rewritten with it)"
    )


def test_edited_entry_before_a_key_rotation_is_named_by_the_old_keys_checkpoint(tmp_path: Path) -> None:
    log = _log(600, rotate_at=(350,))
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    failure = _failed(_verify(tmp_path, log, entries), 3, 301)
    assert failure.startswith("entry 300 was altered: its leaf hash is ")
    assert failure.endswith("the checkpoint of size 351 signed for it")


def test_edited_middle_entry_under_a_trusted_checkpoint_is_named_for_sure(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    report = _verify(tmp_path, log, entries, sizes=[100, 200, 300], trusted=log.checkpoints[500])
    assert _failed(report, 3, 301).endswith("the checkpoint of size 500 signed for it")


def test_edited_middle_entry_of_a_log_cut_short_before_the_checkpoint_stays_undecided(
    tmp_path: Path,
) -> None:
    log = _log(600)
    entries = list(log.entries[:350])
    entries[300] = _data_edited(entries[300])
    report = _verify(tmp_path, log, entries)  # the checkpoints of size 400 to 600 stay
    assert _failed(report, 3, 301).endswith("(no signed checkpoint tells which)")


# -- an edited last entry -----------------------------------------------------------------------


def test_edited_last_entry_under_a_checkpoint_is_named_by_its_root(tmp_path: Path) -> None:
    log = _log(301)  # checkpoints of size 100, 200, 300 and 301
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 4, 300) == (
        f"entry 300 was altered: every prev link up to it holds, but the first 301 entries give "
        f"tree head {_head(entries)}, not the signed {_head(log.entries)}"
    )


def test_edited_last_entry_without_a_checkpoint_is_reported_as_an_unsigned_tail(tmp_path: Path) -> None:
    log = _log(301, final=False)  # checkpoints of size 100, 200 and 300: entry 300 is unsigned
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    report = _verify(tmp_path, log, entries)
    assert report.ok and report.unsigned_tail == 1, report.summary()
    assert report.warnings == ["the last 1 entries are not covered by any checkpoint yet"]


# -- an edited prev link ------------------------------------------------------------------------


def test_edited_prev_link_after_a_checkpoint_is_named_for_sure(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[300] = _prev_edited(entries[300])
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 3, 300) == (
        f"entry 300's prev link was altered: entry 299 is as the checkpoint of size 300 signed "
        f"it, and its leaf hash is {_leaf(log.entries[299])}, not {FORGED_PREV}"
    )


def test_edited_prev_link_under_a_later_checkpoint_rules_out_the_entry_before(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[301] = _prev_edited(entries[301])
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 3, 301) == (
        f"entry 301's prev link was altered, or entry 300 was together with other entries (the "
        f"checkpoint of size 400 rules out entry 300 alone): entry 301's prev is {FORGED_PREV}, "
        f"but entry 300's leaf hash is {_leaf(log.entries[300])}"
    )


def test_edited_prev_link_without_a_checkpoint_is_it_or_the_entry_before(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[301] = _prev_edited(entries[301])
    report = _verify(tmp_path, log, entries, sizes=[100, 200, 300])
    assert _failed(report, 3, 301) == (
        f"entry 300 was altered, or entry 301's prev link was: entry 301's prev is {FORGED_PREV}, "
        f"but entry 300's leaf hash is {_leaf(log.entries[300])} (no signed checkpoint tells which)"
    )


def test_edited_prev_link_of_the_last_entry_under_a_checkpoint(tmp_path: Path) -> None:
    log = _log(302)  # checkpoints of size 100, 200, 300 and 302
    entries = list(log.entries)
    entries[301] = _prev_edited(entries[301])
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 3, 301).startswith(
        "entry 301's prev link was altered, or entry 300 was together with other entries (the "
        "checkpoint of size 302 rules out entry 300 alone)"
    )


def test_edited_prev_link_of_the_first_entry(tmp_path: Path) -> None:
    log = _log(10, every=5)
    entries = list(log.entries)
    entries[0] = _prev_edited(entries[0])
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 3, 0) == f"entry 0 was altered: the first entry's prev is 64 zeros, not {FORGED_PREV}"


def test_edited_entry_and_its_next_link_are_not_blamed_on_one_entry(tmp_path: Path) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    entries[301] = _prev_edited(entries[301], _leaf(entries[300]))  # the chain now breaks at 302
    report = _verify(tmp_path, log, entries)
    assert _failed(report, 3, 302).startswith(
        "entry 302's prev link was altered, or entry 301 was together with other entries (the "
        "checkpoint of size 400 rules out entry 301 alone)"
    )


# -- what `warden audit verify` prints ----------------------------------------------------------


def test_audit_verify_names_the_edited_entry_of_an_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _log(600)
    entries = list(log.entries)
    entries[300] = _data_edited(entries[300])
    folder = _export(tmp_path / "export", entries, log.checkpoints)
    assert run_verification(folder, None, log.first_key, None) == 1
    out = capsys.readouterr().out
    assert f"seq 301, line 302: entry 300 was altered: its leaf hash is {_leaf(entries[300])}" in out
    assert "FAILED at step (3)" in out


# -- for every log and every single edit ------------------------------------------------------


@st.composite
def _edited_logs(draw: st.DrawFn) -> tuple[SyntheticLog, int, str]:
    size = draw(st.integers(2, 40))
    rotations = draw(st.lists(st.integers(0, size - 1), max_size=2, unique=True))
    log = _log(size, every=draw(st.integers(1, 7)), rotate_at=tuple(rotations))
    return log, draw(st.integers(0, size - 1)), draw(st.sampled_from(["data", "prev"]))


@settings(max_examples=150, deadline=None)
@given(case=_edited_logs())
def test_a_single_edit_is_named_and_never_blamed_on_the_wrong_entry(case: tuple[SyntheticLog, int, str]) -> None:
    log, i, what = case
    entries = list(log.entries)
    entries[i] = _data_edited(entries[i]) if what == "data" else _prev_edited(entries[i])
    report = verify_log(entries, [log.checkpoints[s] for s in sorted(log.checkpoints)], log.first_key)
    assert not report.ok and report.failure is not None
    if what == "data" and i + 1 in log.checkpoints:
        assert (report.failed_step, report.seq) == (4, i), report.summary()
        assert report.failure.startswith(f"entry {i} was altered: every prev link")
        return
    if what == "data":  # the final checkpoint lies past the broken link and settles it
        assert (report.failed_step, report.seq) == (3, i + 1), report.summary()
        assert report.failure.startswith(f"entry {i} was altered: its leaf hash is")
        return
    assert (report.failed_step, report.seq) == (3, i), report.summary()
    if i == 0:
        assert report.failure.startswith("entry 0 was altered: the first entry's prev is 64 zeros")
    elif i in log.checkpoints:
        assert report.failure.startswith(f"entry {i}'s prev link was altered: entry {i - 1} is as")
    else:
        assert report.failure.startswith(f"entry {i}'s prev link was altered, or entry {i - 1} was together")
