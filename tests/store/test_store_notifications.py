"""Other processes' commits are heard at once on PostgreSQL: a log writer's batch notifies the
subjects of its entries, in its own transaction, and every other process's `CommitListener`
hands them on; a process does not hear itself, and a batch that rolled back says nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from gateway.store.notifications import CommitListener, payload
from gateway.store.schema import upgrade
from gateway.store.writer import Writer
from ledger.database import make_engine
from ledger.entry import EntryData
from ledger.store import Ledger

OTHER_PROCESS = """
import sys
from gateway.store.writer import Writer
from ledger.database import make_engine
from ledger.entry import EntryData
from ledger.store import Ledger

engine = make_engine(sys.argv[1])
writer = Writer(engine, Ledger())
for subject in sys.argv[2:]:
    if subject == "fail":
        def failing(batch):
            batch.append("decision", "bot", "dec_rolled_back", EntryData.of({}))
            raise ValueError("the job gives up")
        try:
            writer.run_staged(failing)
        except ValueError as refused:
            assert "gives up" in str(refused)
    else:
        writer.run_staged(lambda batch, s=subject: batch.append("decision", "bot", s, EntryData.of({})))
"""


@pytest.fixture
def engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class Heard:
    def __init__(self) -> None:
        self.subjects: list[list[str] | None] = []
        self.changed = threading.Condition()

    def __call__(self, subjects: list[str] | None) -> None:
        with self.changed:
            self.subjects.append(subjects)
            self.changed.notify_all()

    def wait_for(self, count: int) -> list[list[str] | None]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.subjects) >= count, timeout=30), self.subjects
            return list(self.subjects)


def listening(engine: Engine, heard: Heard) -> CommitListener:
    listener = CommitListener(engine.url.set(drivername="postgresql").render_as_string(hide_password=False),
                              heard, timeout=0.2)
    listener.start()
    assert listener.listening.wait(timeout=30)
    return listener


def test_another_process_commit_is_heard_with_its_subjects(engine: Engine, postgres_url: str) -> None:
    heard = Heard()
    listener = listening(engine, heard)
    try:
        subprocess.run([sys.executable, "-c", OTHER_PROCESS, postgres_url, "dec_one", "fail", "dec_two"],
                       check=True, timeout=60)
        assert heard.wait_for(2) == [["dec_one"], ["dec_two"]]  # nothing of the batch that rolled back
    finally:
        listener.stop()


def test_a_process_does_not_hear_its_own_commits(engine: Engine) -> None:
    heard = Heard()
    listener = listening(engine, heard)
    writer = Writer(engine, Ledger(), background=True)
    try:
        writer.run_staged(lambda batch: batch.append("decision", "bot", "dec_mine", EntryData.of({})))
        with engine.connect() as conn:  # a marker another process would send, after it
            conn.exec_driver_sql("SELECT pg_notify('warden_log', %s)",
                                 (payload(["dec_marker"]).replace('"process":"', '"process":"elsewhere-'),))
            conn.commit()
        assert heard.wait_for(1) == [["dec_marker"]]
    finally:
        writer.close()
        listener.stop()


def test_a_notification_that_is_not_wardens_is_ignored(engine: Engine) -> None:
    heard = Heard()
    listener = listening(engine, heard)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_notify('warden_log', 'hello')")
            conn.exec_driver_sql("SELECT pg_notify('warden_log', %s)",
                                 ('{"process": "elsewhere:1", "subjects": null}',))
            conn.commit()
        assert heard.wait_for(1) == [None]  # too many to list: anything may have changed
    finally:
        listener.stop()


def test_a_batch_of_many_subjects_says_anything_changed() -> None:
    assert '"subjects":null' in payload([f"dec_{n:026d}" for n in range(400)])
    assert '"subjects":["dec_a","dec_b"]' in payload(["dec_a", "dec_b", "dec_a"])
