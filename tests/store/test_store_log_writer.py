"""The log writer on SQLite and PostgreSQL: batches of staged work and units of work share one
commit, one failing job fails alone, a failed commit fails the whole batch, the head in memory
never drifts from the row, and the sequence stays gap-free."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from gateway.store.killswitch import set_kill_switch
from gateway.store.schema import upgrade
from gateway.store.writer import Batch, Writer, WriterClosed
from ledger.database import make_engine
from ledger.entry import EntryData, decode_entry
from ledger.merkle import root as merkle_root
from ledger.store import AppendResult, Ledger

THINGS = "CREATE TABLE things (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES things (id) DEFERRABLE INITIALLY DEFERRED)"
INSERT_THING = "INSERT INTO things (id, parent) VALUES (?, ?)"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text(THINGS))
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[Writer]:
    writer = Writer(engine, Ledger(), background=True)
    yield writer
    writer.close()


def staged(subject: str, thing: int | None = None, parent: int | None = None) -> Any:
    """Staged work: an entry and, maybe, a row."""
    data = EntryData.of({"subject": subject})

    def work(batch: Batch) -> AppendResult:
        if thing is not None:
            batch.queue(INSERT_THING, (thing, parent))
        return batch.append("decision", "bot", subject, data)

    return work


def unit(subject: str) -> Any:
    def work(conn: Connection) -> AppendResult:
        return Ledger().append(conn, "decision", "bot", subject, {"subject": subject})

    return work


def log_of(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(e.seq, e.subject) for e in map(decode_entry, Ledger().iter_entries(conn))]


def head_is_consistent(engine: Engine) -> None:
    """The stored head (size, last leaf, root) is the tree of the stored entries."""
    with engine.connect() as conn:
        ledger = Ledger()
        head = ledger.head(conn)
        bodies = list(ledger.iter_entries(conn))
    leaves = [decode_entry(b).leaf_hash for b in bodies]
    assert head.size == len(leaves)
    assert head.root == merkle_root(leaves)
    if leaves:
        assert head.last_leaf == leaves[-1]
    for before, body in zip(bodies, bodies[1:]):
        assert decode_entry(body).prev == decode_entry(before).leaf_hash.hex()


def test_concurrent_staged_work_and_units_get_one_gap_free_sequence(writer: Writer, engine: Engine) -> None:
    results: list[AppendResult] = []
    lock = threading.Lock()

    def caller(name: str) -> None:
        for i in range(20):
            work = staged(f"{name}-{i}") if i % 3 else None
            result = writer.run_staged(work) if work is not None else writer.run(unit(f"{name}-{i}"))
            with lock:
                results.append(result)

    threads = [threading.Thread(target=caller, args=(f"t{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.seq for r in results) == list(range(160))
    assert len({subject for _seq, subject in log_of(engine)}) == 160
    head_is_consistent(engine)


def test_a_failing_job_fails_alone(writer: Writer, engine: Engine) -> None:
    gate, running = threading.Event(), threading.Event()

    def blocker(_conn: Connection) -> None:
        running.set()
        gate.wait(timeout=30)

    def failing_unit(conn: Connection) -> None:
        Ledger().append(conn, "decision", "bot", "doomed unit", {})
        raise ValueError("the unit gives up")

    def failing_staged(batch: Batch) -> None:
        batch.append("decision", "bot", "doomed staged", EntryData.of({}))
        batch.queue(INSERT_THING, (99, None))
        raise ValueError("the staged work gives up")

    first = writer.stage(lambda batch: None)
    held = threading.Thread(target=writer.run, args=(blocker,))
    held.start()
    assert running.wait(timeout=30)  # the writer is busy: what follows queues up as one batch
    jobs = [writer.stage(staged("good-1", thing=1)), writer.stage(failing_staged),
            writer.stage(staged("good-2", thing=2)), writer.stage(lambda b: writer.run(unit("x")))]
    bad_unit: list[BaseException] = []
    late = threading.Thread(target=lambda: bad_unit.append(pytest.raises(ValueError, writer.run, failing_unit).value))
    late.start()
    gate.set()
    held.join()
    late.join()
    first.result(timeout=30)
    assert jobs[0].result(timeout=30).seq == 0
    with pytest.raises(ValueError, match="staged work gives up"):
        jobs[1].result(timeout=30)
    assert jobs[2].result(timeout=30).seq == 1
    with pytest.raises(RuntimeError, match="may not wait for the log writer"):
        jobs[3].result(timeout=30)
    assert "unit gives up" in str(bad_unit[0])
    assert log_of(engine) == [(0, "good-1"), (1, "good-2")]
    with engine.connect() as conn:
        assert sorted(conn.execute(text("SELECT id FROM things")).scalars()) == [1, 2]
    head_is_consistent(engine)


def test_a_refused_row_fails_only_its_job(writer: Writer, engine: Engine) -> None:
    gate, running = threading.Event(), threading.Event()

    def blocker(_conn: Connection) -> None:
        running.set()
        gate.wait(timeout=30)

    held = threading.Thread(target=writer.run, args=(blocker,))
    held.start()
    assert running.wait(timeout=30)
    jobs = [writer.stage(staged("a", thing=1)), writer.stage(staged("twin", thing=1)), writer.stage(staged("c", thing=3))]
    gate.set()
    held.join()
    assert jobs[0].result(timeout=30).seq == 0
    with pytest.raises(IntegrityError):  # the driver's error, as SQLAlchemy's, like a unit's
        jobs[1].result(timeout=30)
    assert jobs[2].result(timeout=30).seq == 1
    assert log_of(engine) == [(0, "a"), (1, "c")]
    head_is_consistent(engine)


def test_a_failed_commit_fails_the_whole_batch_and_the_head_is_read_again(writer: Writer, engine: Engine) -> None:
    gate, running = threading.Event(), threading.Event()

    def blocker(_conn: Connection) -> None:
        running.set()
        gate.wait(timeout=30)

    writer.run_staged(staged("before"))
    held = threading.Thread(target=writer.run, args=(blocker,))
    held.start()
    assert running.wait(timeout=30)
    batch = [writer.stage(staged("a")), writer.stage(staged("orphan", thing=7, parent=999)),  # deferred FK
             writer.stage(staged("c"))]
    gate.set()
    held.join()
    for future in batch:
        with pytest.raises(IntegrityError):
            future.result(timeout=30)
    assert writer.run_staged(staged("after")).seq == 1
    assert log_of(engine) == [(0, "before"), (1, "after")]
    head_is_consistent(engine)


def test_appends_by_another_writer_between_batches_are_picked_up(writer: Writer, engine: Engine) -> None:
    assert writer.run_staged(staged("mine-0")).seq == 0
    with engine.begin() as conn:  # a command beside the server: its own transaction, the row's head
        Ledger().append(conn, "agent_added", "ops", "theirs", {})
    assert writer.run_staged(staged("mine-1")).seq == 2
    assert writer.run(unit("mine-2")).seq == 3
    assert [s for _seq, s in log_of(engine)] == ["mine-0", "theirs", "mine-1", "mine-2"]
    head_is_consistent(engine)


def test_the_kill_switch_is_read_with_the_batch_and_after_each_unit(writer: Writer) -> None:
    seen: list[bool] = []
    assert writer.kill_switch.engaged is False
    writer.run(lambda conn: set_kill_switch(conn, writer.ledger, engaged=True, reason="drill", by="ops", now=0.0))
    writer.run_staged(lambda batch: seen.append(batch.kill_switch.engaged))
    assert seen == [True]
    assert writer.kill_switch.engaged is True


def test_a_guarded_update_that_changes_nothing_is_reported_to_its_job(writer: Writer, engine: Engine) -> None:
    writer.run_staged(staged("thing", thing=1))

    def move(thing: int) -> Any:
        def work(batch: Batch) -> bool:
            moved = batch.guard("UPDATE things SET parent = NULL WHERE id = ?", (thing,))
            if moved:
                batch.append("execution", "warden", str(thing), EntryData.of({}))
            return moved

        return work

    assert writer.run_staged(move(1)) is True
    assert writer.run_staged(move(2)) is False  # no such row: nothing of the job is written
    assert [s for _seq, s in log_of(engine)] == ["thing", "1"]
    head_is_consistent(engine)


def test_a_closed_writer_refuses_work(engine: Engine) -> None:
    writer = Writer(engine, Ledger(), background=True)
    writer.close()
    with pytest.raises(WriterClosed):
        writer.run_staged(staged("late"))


def test_refused_rows_among_many_batches_never_fail_their_neighbours(writer: Writer, engine: Engine) -> None:
    """A refused row in a batch, again and again (twins of one agent + packet_id arriving
    together, as concurrent retries do): each time only the twin fails, and the jobs beside it,
    units of work included, are written."""
    gate = threading.Event()

    def blocker(_conn: Connection) -> None:
        gate.wait(timeout=30)

    for round_ in range(30):
        gate.clear()
        held = threading.Thread(target=writer.run, args=(blocker,))
        held.start()
        thing = 1000 + round_
        jobs = [writer.stage(staged(f"a{round_}", thing=thing)), writer.stage(staged(f"twin{round_}", thing=thing)),
                writer.stage(staged(f"c{round_}", thing=thing + 100))]
        unit_result: list[AppendResult] = []
        later = threading.Thread(target=lambda r=round_: unit_result.append(writer.run(unit(f"u{r}"))))
        later.start()
        gate.set()
        held.join()
        later.join()
        assert jobs[0].result(timeout=30) is not None
        with pytest.raises(IntegrityError):
            jobs[1].result(timeout=30)
        assert jobs[2].result(timeout=30) is not None and unit_result
    head_is_consistent(engine)
