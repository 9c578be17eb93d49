"""Checkpoint signing policy and key rotation against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from ledger import merkle
from ledger.checkpoint import open_checkpoint
from ledger.checkpointer import KEY_ROTATED, Checkpointer, CheckpointPolicy, rotate_key
from ledger.database import make_engine
from ledger.entry import decode_entry
from ledger.keys import KeyMismatchError, signing_keys
from ledger.note import NoteError, generate_key
from ledger.schema import upgrade
from ledger.store import Ledger

ORIGIN = "warden.test/log"


class FakeClock:
    """Wall time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _append_and_maybe_sign(engine: Engine, checkpointer: Checkpointer, count: int) -> list[int]:
    """Append `count` entries one transaction each, as the gateway does; sizes that got signed."""
    signed = []
    for i in range(count):
        with engine.begin() as conn:
            Ledger().append(conn, "decision", "bot", f"d{i}", {"i": i})
            result = checkpointer.maybe_sign(conn)
        if result is not None:
            signed.append(result.size)
    return signed


def test_signs_the_first_entry_then_every_n_entries(engine: Engine) -> None:
    clock = FakeClock()
    checkpointer = Checkpointer(generate_key(ORIGIN), CheckpointPolicy(every_entries=5, every_seconds=3600), clock=clock)
    assert _append_and_maybe_sign(engine, checkpointer, 23) == [1, 6, 11, 16, 21]


def test_signs_after_t_seconds_when_the_log_grew(engine: Engine) -> None:
    clock = FakeClock()
    checkpointer = Checkpointer(generate_key(ORIGIN), CheckpointPolicy(every_entries=1000, every_seconds=30), clock=clock)
    assert _append_and_maybe_sign(engine, checkpointer, 3) == [1]
    clock.now += 29
    assert checkpointer.tick(engine) is None
    clock.now += 1
    signed = checkpointer.tick(engine)
    assert signed is not None and signed.size == 3
    clock.now += 300
    assert checkpointer.tick(engine) is None  # nothing new: no second checkpoint of size 3


def test_an_empty_log_gets_no_checkpoint(engine: Engine) -> None:
    checkpointer = Checkpointer(generate_key(ORIGIN))
    with engine.begin() as conn:
        assert checkpointer.sign_now(conn) is None
        assert checkpointer.maybe_sign(conn) is None


def test_checkpoints_strictly_grow_and_each_extends_the_previous(engine: Engine) -> None:
    signer = generate_key(ORIGIN)
    checkpointer = Checkpointer(signer, CheckpointPolicy(every_entries=3))
    _append_and_maybe_sign(engine, checkpointer, 20)
    with engine.begin() as conn:
        assert checkpointer.sign_now(conn) is not None
        assert checkpointer.sign_now(conn) is None
        notes = Ledger().checkpoint_notes(conn)
        opened = [open_checkpoint(note, [signer.verifier]) for _size, note in notes]
        assert [c.size for c in opened] == sorted({c.size for c in opened})
        assert opened[-1].size == 20
        for older, newer in zip(opened, opened[1:], strict=False):
            proof = Ledger().consistency(conn, older.size, newer.size).proof
            merkle.verify_consistency(older.size, newer.size, older.root, newer.root, proof)
        assert opened[-1].root == Ledger().head(conn).root


def test_a_rolled_back_checkpoint_is_not_kept(engine: Engine) -> None:
    checkpointer = Checkpointer(generate_key(ORIGIN))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        Ledger().append(conn, "decision", "bot", "d", {})
        assert checkpointer.maybe_sign(conn) is not None
        raise RuntimeError("the decision could not be stored")
    with engine.connect() as conn:
        assert Ledger().checkpoint_notes(conn) == [] and signing_keys(conn) == []


def test_a_different_key_cannot_sign_for_the_log(engine: Engine) -> None:
    _append_and_maybe_sign(engine, Checkpointer(generate_key(ORIGIN)), 2)
    intruder = Checkpointer(generate_key(ORIGIN))
    with engine.begin() as conn, pytest.raises(KeyMismatchError, match="the log signs with key"):
        intruder.sign_now(conn)


def test_rotation_hands_over_at_the_covering_checkpoint(engine: Engine) -> None:
    old, new = generate_key(ORIGIN), generate_key(ORIGIN)
    _append_and_maybe_sign(engine, Checkpointer(old, CheckpointPolicy(every_entries=4)), 6)
    with engine.begin() as conn:
        rotation = rotate_key(conn, old, new, actor="ops@example.com")
    seq = rotation.entry.seq
    assert rotation.checkpoint.size == seq + 1
    with engine.connect() as conn, conn.begin() as transaction:
        entry = decode_entry(Ledger().entry(conn, seq))
        assert entry.kind == KEY_ROTATED and entry.actor == "ops@example.com"
        assert entry.data == {"new_key": new.verifier_key, "old_key": old.verifier_key}
        covering = Ledger().checkpoint_note(conn, seq + 1)
        assert covering is not None
        assert open_checkpoint(covering, [old.verifier]).size == seq + 1
        with pytest.raises(NoteError):
            open_checkpoint(covering, [new.verifier])
        Ledger().append(conn, "decision", "bot", "after-rotation", {})
        with pytest.raises(KeyMismatchError):
            Checkpointer(old).sign_now(conn)
        assert [k.verifier_key for k in signing_keys(conn)] == [old.verifier_key, new.verifier_key]
        assert [k.from_size for k in signing_keys(conn)] == [0, seq + 1]
        transaction.rollback()  # drop the entry appended above
    after = _append_and_maybe_sign(engine, Checkpointer(new, CheckpointPolicy(every_entries=2)), 3)
    assert after == [seq + 3]
    with engine.connect() as conn:
        note = Ledger().checkpoint_note(conn, seq + 3)
    assert note is not None and open_checkpoint(note, [new.verifier]).size == seq + 3


def test_rotation_refuses_a_new_key_with_another_origin_or_the_same_key(engine: Engine) -> None:
    old = generate_key(ORIGIN)
    _append_and_maybe_sign(engine, Checkpointer(old), 1)
    with engine.begin() as conn:
        with pytest.raises(KeyMismatchError, match="must be named"):
            rotate_key(conn, old, generate_key("other.example/log"))
        with pytest.raises(KeyMismatchError, match="the new key is the old key"):
            rotate_key(conn, old, old)
        with pytest.raises(KeyMismatchError, match="the log signs with key"):
            rotate_key(conn, generate_key(ORIGIN), generate_key(ORIGIN))


def test_policy_values_are_validated() -> None:
    with pytest.raises(ValueError, match="every_entries"):
        CheckpointPolicy(every_entries=0)
