"""Any mutation of a signed log is detected, at the step that explains it.

A random valid log (entries, checkpoints every few entries, maybe a key rotation) gets one
random mutation; verification must fail and name the step (and entry) an auditor would expect.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.entry import EntryError, decode_entry, encode_entry
from ledger.merkle import leaf_hash
from ledger.note import Signer, generate_key
from ledger.report import Report
from ledger.synthetic import SyntheticLog, build_log
from ledger.verify import verify_log

ORIGIN = "warden.example/audit"


@dataclass
class Case:
    """A mutated log and what the verifier must say about it."""

    entries: list[bytes]
    checkpoints: dict[int, str]
    key: str
    trusted: str | None
    step: int
    line: int | None = None  # 1-based line of the first bad entry, when it is an entry
    kind: str = ""


def _signer_at(log: SyntheticLog, size: int, rotations: list[int]) -> Signer:
    """The key in force for a checkpoint of ``size`` (SPEC: rotation at s hands over after s+1)."""
    index = sum(1 for s in rotations if size > s + 1)
    return log.signers[index]


@st.composite
def logs(draw: st.DrawFn) -> tuple[SyntheticLog, list[int]]:
    size = draw(st.integers(2, 40))
    every = draw(st.integers(1, 7))
    rotations = draw(st.lists(st.integers(0, size - 1), max_size=2, unique=True))
    return build_log(size, checkpoint_every=every, rotate_at=rotations, origin=ORIGIN), sorted(
        rotations
    )


def _expected_for_changed_entry(
    original: list[bytes], checkpoints: dict[int, str], mutated: bytes, i: int
) -> tuple[int, int]:
    """Step and line for entry ``i`` replaced by ``mutated`` (all else intact)."""
    try:
        entry = decode_entry(mutated)
    except EntryError:
        return 1, i + 1
    if entry.seq != i:
        return 2, i + 1
    if entry.prev != decode_entry(original[i]).prev:
        return 3, i + 1
    if i + 1 in checkpoints or i + 1 == len(original):
        return 4, i + 1  # a checkpoint at this very size sees the new tree head first
    return 3, i + 2  # otherwise the next entry's prev no longer matches


def _case(kind: str, *args: object) -> Case:
    case = Case(*args)  # type: ignore[arg-type]
    case.kind = kind
    return case


@st.composite
def mutations(draw: st.DrawFn) -> Case:
    log, rotations = draw(logs())
    entries = list(log.entries)
    cps = dict(log.checkpoints)
    n = len(entries)
    key = log.first_key
    kind = draw(
        st.sampled_from(
            ["byte", "char", "delete", "swap", "insert_copy", "insert_forged", "truncate", "fork",
             "resign", "replace"]
        )
    )
    if kind in ("byte", "char"):
        # "byte": any byte anywhere; "char": a hex digit inside a value, which mostly keeps
        # the entry well-formed and so exercises the later steps.
        # Positions are drawn as plain integers and reduced here: the logs carry fresh random
        # keys, so how many bytes (or hex digits) an entry holds varies between replays, and
        # a draw whose bounds depended on it would make Hypothesis's replay inconsistent.
        i = draw(st.integers(0, n - 1))
        raw = bytearray(entries[i])
        if kind == "byte":
            pos = draw(st.integers(0, 1 << 16)) % len(raw)
            raw[pos] = draw(st.integers(0, 255).filter(lambda b: b != raw[pos]))
        else:
            spots = [p for p, b in enumerate(raw) if chr(b) in "0123456789abcdef"]
            pos = spots[draw(st.integers(0, 1 << 16)) % len(spots)]
            raw[pos] = draw(st.sampled_from(b"0123456789abcdef").filter(lambda b: b != raw[pos]))
        step, line = _expected_for_changed_entry(entries, cps, bytes(raw), i)
        entries[i] = bytes(raw)
        return _case(kind, entries, cps, key, None, step, line)
    if kind == "delete":
        i = draw(st.integers(0, n - 1))
        del entries[i]
        if i < n - 1:
            return _case(kind, entries, cps, key, None, 2, i + 1)
        return _case(kind, entries, cps, key, None, 4)  # the last checkpoint is past the end
    if kind == "swap":
        i = draw(st.integers(0, n - 2))
        j = draw(st.integers(i + 1, n - 1))
        entries[i], entries[j] = entries[j], entries[i]
        return _case(kind, entries, cps, key, None, 2, i + 1)
    if kind == "insert_copy":
        i = draw(st.integers(0, n))
        k = draw(st.integers(0, n - 1))
        entries.insert(i, entries[k])
        return _case(kind, entries, cps, key, None, 2, i + 2 if k == i else i + 1)
    if kind == "insert_forged":
        # A well-formed entry with the right seq and prev, slipped in before entry i.
        i = draw(st.integers(0, n - 1))
        prev = decode_entry(entries[i]).prev
        forged = encode_entry(
            i, "2025-01-01T00:00:00.000000Z", "decision", "mallory", "dec_x", {"ok": True}, prev
        )
        entries.insert(i, forged)
        if i + 1 in cps:
            return _case(kind, entries, cps, key, None, 4, i + 1)  # the checkpoint there sees it
        return _case(kind, entries, cps, key, None, 2, i + 2)
    if kind == "truncate":
        # The attacker drops the tail and every checkpoint past it; the auditor kept the last.
        trusted = cps[n]
        k = draw(st.integers(1, n - 1))
        return _case(kind, entries[:k], {s: c for s, c in cps.items() if s <= k}, key, trusted, 6)
    if kind == "fork":
        # The auditor kept a checkpoint, properly signed, of a different history at size t.
        t = draw(st.integers(1, n))
        other = leaf_hash(draw(st.binary(min_size=1, max_size=8)) + b"fork")
        forked = sign_checkpoint(Checkpoint(ORIGIN, t, other), _signer_at(log, t, rotations))
        return _case(kind, entries, cps, key, forked, 6)
    size = draw(st.sampled_from(sorted(cps)))
    good = _signer_at(log, size, rotations)
    if kind == "resign":
        # Same tree head, signed by a key that is not the one in force at that size.
        wrong = draw(st.sampled_from([*[s for s in log.signers if s is not good], None]))
        signer = wrong or generate_key(ORIGIN)
        cps[size] = sign_checkpoint(Checkpoint(ORIGIN, size, _root_of(cps[size])), signer)
        return _case(kind, entries, cps, key, None, 4)
    # replace: a checkpoint for a different root, signed with the right key.
    other = leaf_hash(draw(st.binary(max_size=8)) + b"other")
    cps[size] = sign_checkpoint(Checkpoint(ORIGIN, size, other), good)
    return _case(kind, entries, cps, key, None, 4)


def _root_of(note: str) -> bytes:
    return Checkpoint.parse(note[: note.rfind("\n\n") + 1]).root


def _verify(case: Case) -> Report:
    notes = [case.checkpoints[s] for s in sorted(case.checkpoints)]
    return verify_log(case.entries, notes, case.key, trusted_checkpoint=case.trusted)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutations())
def test_every_mutation_is_detected_at_the_right_step(case: Case) -> None:
    event(f"{case.kind} -> step {case.step}")
    report = _verify(case)
    assert not report.ok
    assert report.failed_step == case.step, report.summary()
    if case.line is not None:
        assert report.line == case.line, report.summary()
    failed = [s for s in report.steps if s.status == "failed"]
    assert [s.number for s in failed] == [case.step]


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_and_rotations=logs(), data=st.data())
def test_untouched_logs_verify(log_and_rotations: tuple[SyntheticLog, list[int]],
                               data: st.DataObject) -> None:
    log, rotations = log_and_rotations
    sizes = sorted(log.checkpoints)
    trusted = log.checkpoints[data.draw(st.sampled_from(sizes))]
    report = verify_log(
        log.entries, [log.checkpoints[s] for s in sizes], log.first_key, trusted_checkpoint=trusted
    )
    assert report.ok, report.summary()
    assert report.entries == len(log.entries)
    assert len(report.keys) == len(rotations) + 1
    assert all(s.status in ("passed", "skipped") for s in report.steps)
