"""Group commit on SQLite and PostgreSQL: shared commits, isolated failures, no gaps."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from ledger.database import make_engine
from ledger.entry import decode_entry
from ledger.group_commit import GroupCommitter, GroupCommitterClosed
from ledger.schema import upgrade
from ledger.store import AppendResult, Ledger


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE parents (id INTEGER PRIMARY KEY)"))
        conn.execute(
            text(
                "CREATE TABLE children (id INTEGER PRIMARY KEY, parent INTEGER"
                " REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield engine
    engine.dispose()


def _record(subject: str, child: int | None = None, parent: int | None = None):  # type: ignore[no-untyped-def]
    """A unit of work: a state change plus its ledger entry."""

    def work(conn: Connection) -> AppendResult:
        if child is not None:
            conn.execute(text("INSERT INTO children VALUES (:id, :parent)"), {"id": child, "parent": parent})
        return Ledger().append(conn, "decision", "bot", subject, {})

    return work


def _subjects(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [decode_entry(body).subject for body in Ledger().iter_entries(conn)]


def test_concurrent_callers_share_commits_and_get_a_gap_free_sequence(engine: Engine) -> None:
    results: list[AppendResult] = []
    lock = threading.Lock()

    def caller(name: str) -> None:
        for i in range(25):
            result = committer.run(_record(f"{name}-{i}"))
            with lock:
                results.append(result)

    with GroupCommitter(engine) as committer:
        threads = [threading.Thread(target=caller, args=(f"t{n}",)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(r.seq for r in results) == list(range(200))
    assert len(set(_subjects(engine))) == 200


def test_a_failing_unit_rolls_back_alone(engine: Engine) -> None:
    gate = threading.Event()

    def blocker(conn: Connection) -> None:
        gate.wait(timeout=30)

    def failing(conn: Connection) -> None:
        Ledger().append(conn, "decision", "bot", "doomed", {})
        raise ValueError("the connector refused")

    with GroupCommitter(engine) as committer:
        first = committer.submit(blocker)
        good1 = committer.submit(_record("good-1", child=1, parent=None))
        bad = committer.submit(failing)
        good2 = committer.submit(_record("good-2"))
        gate.set()
        first.result(timeout=30)
        assert (good1.result(timeout=30).seq, good2.result(timeout=30).seq) == (0, 1)
        with pytest.raises(ValueError, match="the connector refused"):
            bad.result(timeout=30)
    assert _subjects(engine) == ["good-1", "good-2"]


def test_a_failed_shared_commit_fails_every_caller_of_the_group(engine: Engine) -> None:
    gate, running = threading.Event(), threading.Event()

    def blocker(conn: Connection) -> None:
        running.set()
        gate.wait(timeout=30)

    with GroupCommitter(engine) as committer:
        first = committer.submit(blocker)
        assert running.wait(timeout=30)  # the writer is busy: what follows queues up as one group
        group = [
            committer.submit(_record("a")),
            committer.submit(_record("orphan", child=7, parent=999)),  # violates a deferred FK at commit
            committer.submit(_record("c")),
        ]
        gate.set()
        first.result(timeout=30)
        for future in group:
            with pytest.raises(IntegrityError):
                future.result(timeout=30)
        after = committer.run(_record("after"))
    assert after.seq == 0
    assert _subjects(engine) == ["after"]


def test_a_closed_committer_refuses_work(engine: Engine) -> None:
    committer = GroupCommitter(engine)
    committer.close()
    with pytest.raises(GroupCommitterClosed):
        committer.run(_record("late"))
