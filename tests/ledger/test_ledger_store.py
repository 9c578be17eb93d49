"""The ledger store on SQLite and PostgreSQL: appends, atomicity, tree heads and proofs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select, text

from ledger import merkle
from ledger.checkpoint import open_checkpoint
from ledger.checkpointer import Checkpointer
from ledger.database import make_engine
from ledger.entry import GENESIS_PREV, decode_entry
from ledger.note import generate_key
from ledger.schema import LATEST_VERSION, SchemaError, current_version, entries, upgrade
from ledger.store import Ledger, LedgerError, NewEntry


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def _fill(engine: Engine, count: int, ledger: Ledger | None = None) -> list[bytes]:
    ledger = ledger or Ledger()
    with engine.begin() as conn:
        ledger.append_many(conn, [NewEntry("decision", "bot", f"d{i}", {"i": i}) for i in range(count)])
        return list(ledger.iter_entries(conn))


def test_upgrade_is_idempotent_and_versioned(engine: Engine) -> None:
    assert upgrade(engine) == (LATEST_VERSION, LATEST_VERSION)
    with engine.connect() as conn:
        assert current_version(conn) == LATEST_VERSION


def test_a_database_without_the_schema_is_refused(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn, pytest.raises(SchemaError, match="warden db upgrade"):
            Ledger().head(conn)
    finally:
        engine.dispose()


def test_entries_chain_and_are_stored_exactly_as_hashed(engine: Engine) -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    ledger = Ledger(clock=lambda: moment)
    with engine.begin() as conn:
        first = ledger.append(conn, "decision", "refund-bot", "dec_1", {"status": "executed"})
        second = ledger.append(conn, "approval", "alice", "dec_1", {"comment": "ok"})
    with engine.connect() as conn:
        body0, body1 = list(ledger.iter_entries(conn))
    assert (first.seq, second.seq) == (0, 1)
    e0, e1 = decode_entry(body0), decode_entry(body1)
    assert e0.prev == GENESIS_PREV and e0.time == "2025-01-02T03:04:05.678901Z"
    assert e1.prev == first.leaf_hash.hex() == merkle.leaf_hash(body0).hex()
    assert second.leaf_hash == merkle.leaf_hash(body1)
    assert (e1.kind, e1.actor, e1.subject, e1.data) == ("approval", "alice", "dec_1", {"comment": "ok"})


def test_a_rolled_back_transaction_leaves_no_entry_and_no_gap(engine: Engine) -> None:
    ledger = Ledger()
    with engine.begin() as conn:
        ledger.append(conn, "decision", "bot", "a", {})
    with pytest.raises(RuntimeError, match="state change failed"), engine.begin() as conn:
        ledger.append(conn, "decision", "bot", "b", {})
        ledger.append_many(conn, [NewEntry("execution", "bot", "b", {})])
        raise RuntimeError("state change failed")
    with engine.begin() as conn:
        assert ledger.head(conn).size == 1
        third = ledger.append(conn, "decision", "bot", "c", {})
    assert third.seq == 1
    with engine.connect() as conn:
        subjects = [decode_entry(b).subject for b in ledger.iter_entries(conn)]
        seqs = conn.execute(select(entries.c.seq).order_by(entries.c.seq)).scalars().all()
    assert subjects == ["a", "c"] and seqs == [0, 1]


def test_the_entry_commits_together_with_the_callers_state_change(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE refunds (id TEXT PRIMARY KEY)"))
    ledger = Ledger()
    with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 - any DB error
        ledger.append(conn, "decision", "bot", "r1", {})
        conn.execute(text("INSERT INTO refunds VALUES ('r1')"))
        conn.execute(text("INSERT INTO refunds VALUES ('r1')"))  # duplicate key: the change fails
    with engine.connect() as conn:
        assert ledger.head(conn).size == 0
        assert conn.execute(text("SELECT COUNT(*) FROM refunds")).scalar_one() == 0


def test_unencodable_data_is_refused_without_writing(engine: Engine) -> None:
    ledger = Ledger()
    with pytest.raises(LedgerError, match="cannot record 'decision' entry"), engine.begin() as conn:
        ledger.append(conn, "decision", "bot", "x", {"amount": float("nan")})
    with engine.connect() as conn:
        assert ledger.head(conn).size == 0


def test_tree_heads_match_a_tree_built_from_scratch(engine: Engine) -> None:
    bodies = _fill(engine, 300)
    leaves = [merkle.leaf_hash(b) for b in bodies]
    ledger = Ledger()
    with engine.connect() as conn:
        assert ledger.head(conn).root == merkle.root(leaves)
        for size in (0, 1, 2, 3, 5, 8, 100, 255, 256, 257, 299, 300):
            assert ledger.root(conn, size) == merkle.root(leaves[:size]), size
        with pytest.raises(LedgerError, match="no tree of size 301"):
            ledger.root(conn, 301)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_inclusion_and_consistency_proofs_from_the_database_verify(engine: Engine, data: st.DataObject) -> None:
    ledger = Ledger()
    with engine.connect() as conn:
        size_now = ledger.head(conn).size
    if size_now == 0:
        _fill(engine, 150)
        size_now = 150
    size = data.draw(st.integers(1, size_now), label="size")
    seq = data.draw(st.integers(0, size - 1), label="seq")
    size1 = data.draw(st.integers(1, size), label="size1")
    with engine.connect() as conn:
        inclusion = ledger.inclusion(conn, seq, size)
        consistency = ledger.consistency(conn, size1, size)
        body = ledger.entry(conn, seq)
    assert inclusion.leaf_hash == merkle.leaf_hash(body)
    merkle.verify_inclusion(inclusion.leaf_hash, seq, size, inclusion.proof, inclusion.root)
    merkle.verify_consistency(size1, size, consistency.root1, consistency.root2, consistency.proof)


def test_receipts_carry_the_checkpoint_and_verify_against_it(engine: Engine) -> None:
    signer = generate_key("warden.test/log")
    ledger = Ledger()
    _fill(engine, 37)
    with engine.begin() as conn:
        signed = Checkpointer(signer).sign_now(conn)
    assert signed is not None and signed.size == 37
    _fill(engine, 20)
    with engine.connect() as conn:
        receipt = ledger.inclusion(conn, 12)  # default: the latest checkpoint
        later = ledger.inclusion(conn, 12, 57)
        consistency = ledger.consistency(conn, 37, 57)
    assert receipt.size == 37 and receipt.checkpoint == signed.note
    checkpoint = open_checkpoint(receipt.checkpoint, [signer.verifier])
    merkle.verify_inclusion(receipt.leaf_hash, 12, checkpoint.size, receipt.proof, checkpoint.root)
    assert later.checkpoint is None
    assert consistency.checkpoint1 == signed.note and consistency.checkpoint2 is None
    merkle.verify_consistency(37, 57, checkpoint.root, consistency.root2, consistency.proof)


@pytest.mark.parametrize(
    ("seq", "size", "message"),
    [(5, 5, "entry 5 is not in a tree of size 5"), (-1, 3, "not in a tree"), (0, 99, "no tree of size 99")],
)
def test_impossible_inclusion_requests_are_refused(engine: Engine, seq: int, size: int, message: str) -> None:
    _fill(engine, 10)
    with engine.connect() as conn, pytest.raises(LedgerError, match=message):
        Ledger().inclusion(conn, seq, size)


def test_impossible_consistency_requests_are_refused(engine: Engine) -> None:
    _fill(engine, 10)
    with engine.connect() as conn:
        with pytest.raises(LedgerError, match="from size 0"):
            Ledger().consistency(conn, 0, 5)
        with pytest.raises(LedgerError, match="from size 6 to size 5"):
            Ledger().consistency(conn, 6, 5)
        with pytest.raises(LedgerError, match="no checkpoint has been signed"):
            Ledger().consistency(conn, 3)


def test_reading_an_unknown_entry_is_refused(engine: Engine) -> None:
    with engine.connect() as conn, pytest.raises(LedgerError, match="no entry 3"):
        Ledger().entry(conn, 3)
