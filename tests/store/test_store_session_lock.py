"""One process among several holds a session lock; when it lets go (or dies), another takes it."""

from __future__ import annotations

from sqlalchemy import text

from gateway.store.session_lock import TAMPER_WATCH, SessionLock
from ledger.database import make_engine


def test_one_holder_at_a_time_and_the_next_takes_over(postgres_url: str) -> None:
    first_engine, second_engine = make_engine(postgres_url), make_engine(postgres_url)
    first, second = SessionLock(first_engine, TAMPER_WATCH), SessionLock(second_engine, TAMPER_WATCH)
    try:
        assert first.held() is True
        assert first.held() is True  # kept, not taken again
        assert second.held() is False
        first.release()  # the holder's session ends (as when its process dies)
        assert second.held() is True
        assert first.held() is False
    finally:
        first.release()
        second.release()
        first_engine.dispose()
        second_engine.dispose()


def test_a_broken_session_loses_the_lock_and_says_so(postgres_url: str) -> None:
    engine, other = make_engine(postgres_url), make_engine(postgres_url)
    lock, rival = SessionLock(engine, TAMPER_WATCH), SessionLock(other, TAMPER_WATCH)
    try:
        assert lock.held() is True
        with other.connect() as conn:  # the holder's session is killed from outside
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                " AND classid = :high AND objid = :low AND objsubid = 1"),
                {"high": TAMPER_WATCH >> 32, "low": TAMPER_WATCH & 0xFFFFFFFF})
            conn.commit()
        assert lock.held() is False
        assert rival.held() is True
    finally:
        lock.release()
        rival.release()
        engine.dispose()
        other.dispose()


def test_on_sqlite_the_one_process_always_holds_it(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/w.db")
    try:
        assert SessionLock(engine, TAMPER_WATCH).held() is True
    finally:
        engine.dispose()


def test_the_holder_keeps_no_transaction_open(postgres_url: str) -> None:
    """An open transaction would hold back the cleanup of every row updated since (the log's
    head is updated by every batch): the session holds the lock, not a transaction."""
    engine = make_engine(postgres_url)
    lock = SessionLock(engine, TAMPER_WATCH)
    try:
        assert lock.held() and lock.held()
        with engine.connect() as conn:
            states = conn.execute(text(
                "SELECT a.state FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :high AND l.objid = :low"
                " AND a.datname = current_database()"),
                {"high": TAMPER_WATCH >> 32, "low": TAMPER_WATCH & 0xFFFFFFFF}).scalars().all()
        assert states == ["idle"], states
    finally:
        lock.release()
        engine.dispose()
