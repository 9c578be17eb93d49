"""Property: any mutation of a stored log is caught by verifying the database.

One log is built once (entries in several transactions, checkpoints every few entries, a key
rotation, a final checkpoint covering everything); each example copies the SQLite file, applies
one random mutation with SQL, and verifies the copy from the first key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, select, update

from ledger.checkpointer import Checkpointer, CheckpointPolicy, rotate_key
from ledger.database import make_engine
from ledger.note import generate_key
from ledger.schema import checkpoints, entries, upgrade
from ledger.store import Ledger, NewEntry
from ledger.verify import verify_log

ORIGIN = "warden.test/log"
SIZE = 40
FIRST = generate_key(ORIGIN)
SECOND = generate_key(ORIGIN)
OTHER = generate_key(ORIGIN)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tamper") / "base.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    ledger = Ledger()
    for start in range(0, SIZE - 1, 4):
        signer = FIRST if start < 20 else SECOND
        with engine.begin() as conn:
            ledger.append_many(conn, [NewEntry("decision", "bot", f"d{i}", {"i": i, "note": "é"}) for i in range(start, start + 4)])
            Checkpointer(signer, CheckpointPolicy(every_entries=6)).maybe_sign(conn)
        if start == 16:
            with engine.begin() as conn:
                rotate_key(conn, FIRST, SECOND)
    with engine.begin() as conn:
        Checkpointer(SECOND).sign_now(conn)
        assert ledger.head(conn).size == SIZE + 1  # the entries and the key_rotated entry
    engine.dispose()
    return path


def _verify(engine: Engine) -> bool:
    ledger = Ledger()
    with engine.connect() as conn:
        notes = [note for _size, note in ledger.checkpoint_notes(conn)]
        return verify_log(ledger.iter_entries(conn), notes, FIRST.verifier_key).ok


def _size(conn: Connection) -> int:
    return Ledger().head(conn).size


def test_the_untouched_log_verifies(base_db: Path) -> None:
    engine = make_engine(f"sqlite:///{base_db}")
    assert _verify(engine)
    engine.dispose()


mutations = st.sampled_from(["flip", "delete", "swap", "truncate", "resign", "reorder_rotation"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=mutations, data=st.data())
def test_any_mutation_of_the_database_is_detected(
    base_db: Path, tmp_path_factory: pytest.TempPathFactory, kind: str, data: st.DataObject
) -> None:
    copy = tmp_path_factory.mktemp("copy") / "log.db"
    shutil.copyfile(base_db, copy)
    engine = make_engine(f"sqlite:///{copy}")
    try:
        with engine.begin() as conn:
            size = _size(conn)
            seq = data.draw(st.integers(0, size - 1), label="seq")
            if kind == "flip":
                body = bytearray(Ledger().entry(conn, seq))
                position = data.draw(st.integers(0, len(body) - 1), label="position")
                body[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
                conn.execute(update(entries).where(entries.c.seq == seq).values(body=bytes(body)))
            elif kind == "delete":
                conn.execute(delete(entries).where(entries.c.seq == seq))
            elif kind == "swap":
                other = data.draw(st.integers(0, size - 1).filter(lambda s: s != seq), label="other")
                a, b = Ledger().entry(conn, seq), Ledger().entry(conn, other)
                conn.execute(update(entries).where(entries.c.seq == seq).values(body=b))
                conn.execute(update(entries).where(entries.c.seq == other).values(body=a))
            elif kind == "truncate":
                conn.execute(delete(entries).where(entries.c.seq >= seq))
            elif kind == "resign":
                sizes = conn.execute(select(checkpoints.c.size)).scalars().all()
                target = data.draw(st.sampled_from(sorted(sizes)), label="checkpoint")
                note = Ledger().checkpoint_note(conn, target)
                assert note is not None
                forged = OTHER.sign(note.split("\n\n")[0] + "\n")
                conn.execute(update(checkpoints).where(checkpoints.c.size == target).values(note=forged))
            else:  # the rotation entry moved after its covering checkpoint: a forged hand-over
                rows = conn.execute(select(entries.c.seq, entries.c.body)).all()
                rotation = next(s for s, body in rows if b'"kind":"key_rotated"' in body)
                conn.execute(update(entries).where(entries.c.seq == rotation).values(body=rows[rotation + 1][1]))
        assert not _verify(engine), f"{kind} at seq {seq} went unnoticed"
    finally:
        engine.dispose()
