"""The one way the gateway records: the log writer, one per process and database.

Every state change the audit log records (a decision, an approval, an execution's outcome, an
identity, an incident, the kill switch, a policy activation) is written with its entries, in one
transaction, by the `Writer`. (Leases on executions, which record nothing in the log, are short
transactions of their own: `gateway.execution.claims`.) It takes two kinds of work:

- **staged work** (`stage`, `stage_async`, `run_staged`): a function of a `Batch` that appends
  entries whose data was serialised beforehand (`ledger.entry.EntryData`) and queues rows as
  plain SQL parameters. It is the hot path (a decision, its outbox row, its incidents; an
  execution's outcome): parsing, deciding and serialising happen on the caller's thread, and the
  writer only assigns seq, hashes and queues rows, microseconds a job;
- **units of work** (`run`): a function of a SQLAlchemy `Connection`, for everything off the
  hot path (approvals, identities, the kill switch, sessions, reloads). Its `Ledger.append`
  calls go to the same in-memory head (`ledger.appender`).

With `background=True` (the runtime's writer) one thread takes whatever is queued, up to
`max_batch` jobs, and writes it as one transaction on its own connection:

    1. begin (SQLite: `BEGIN IMMEDIATE`); read the log's head row, locking it on PostgreSQL;
       read the kill switch: once per batch, never per request;
    2. run the jobs in order: staged ones append in memory and queue rows; before a unit of
       work the queued rows are written, and the unit runs under a SAVEPOINT of its own;
    3. write the queued rows: one `executemany` per statement, entries and subtrees included;
    4. sign a checkpoint when one is due; commit (one fsync for the batch);
    5. answer every job, and only now: nobody hears of a change that is not durable.

A job that raises gets its exception and leaves nothing behind. Staged jobs run without
savepoints; if one raises, or a queued row is refused (a duplicate agent + packet_id), the batch
is rolled back and run again "carefully", each job under its own savepoint, so that only the
culprit fails. When the commit fails, every job of the batch gets that error. Errors of the
driver are raised as SQLAlchemy's (`IntegrityError`, `OperationalError`, ...), as a unit's are.

Without `background` (a command, a test) each call is a batch of one, on the caller's thread.
One background `Writer` is built per process, by the runtime, and handed to everything that
writes; `on_commit` listeners hear of each committed batch (the console's live feed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from gateway.store.killswitch import KILL_SWITCH_SQL, KillSwitch, parse_kill_switch, read_kill_switch
from gateway.store.notifications import NOTIFY_SQL, payload as notification
from ledger.appender import insert_rows
from ledger.checkpointer import Checkpointer
from ledger.database import read_only
from ledger.entry import EntryData
from ledger.schema import entries
from ledger.store import APPENDER, AppendResult, Ledger

log = logging.getLogger("warden.writer")

T = TypeVar("T")
Unit = Callable[[Connection], T]
Staged = Callable[["Batch"], T]


#: Crash drills: `WARDEN_FAILPOINT=writer.before_commit=PATH` makes the first batch that appends
#: two entries or more stop after writing its rows and before its commit, write what it holds to
#: PATH (JSON: pid, jobs, from_seq, the entries' seq, kind and subject) and wait to be killed
#: (`kill -9`). Nothing is committed, so after a restart none of it may be in the log. PATH's
#: folder must exist when the writer starts. Unset: no cost.
FAILPOINT_ENV = "WARDEN_FAILPOINT"


def _failpoint(spec: str) -> Path | None:
    name, _, path = spec.partition("=")
    if not spec:
        return None
    if name != "writer.before_commit" or not path:
        raise ValueError(f"{FAILPOINT_ENV} must be writer.before_commit=PATH, not {spec!r}")
    if not Path(path).parent.is_dir():
        raise ValueError(f"{FAILPOINT_ENV}: the folder of {path} does not exist")
    return Path(path)


class WriterClosed(RuntimeError):
    """The writer was closed; no more work is accepted (the process is shutting down)."""


class Batch:
    """What staged work may do inside the writer's transaction."""

    def __init__(self, writer: Writer, cursor: Any, kill_switch: KillSwitch, *, careful: bool = False) -> None:
        self.cursor = cursor
        self.kill_switch = kill_switch
        self.dialect = writer.dialect
        self.careful = careful
        self._writer = writer
        self._appender = writer.appender
        self._rows: dict[str, list[tuple[Any, ...]]] = {}
        self._guarded: dict[str, int] = {}  # statement → rows it must change, in all

    def append(self, kind: str, actor: str, subject: str, data: EntryData) -> AppendResult:
        return self._appender.append(kind, actor, subject, data)

    def queue(self, sql: str, params: tuple[Any, ...]) -> None:
        """Write `sql` with `params` at the next flush (one `executemany` per statement, in the
        order the statements were first queued). `sql` uses `?` marks (see `Writer.sql`)."""
        rows = self._rows.get(sql)
        if rows is None:
            self._rows[sql] = [params]
        else:
            rows.append(params)

    def guard(self, sql: str, params: tuple[Any, ...]) -> bool:
        """An update that must change exactly one row, else the job changes nothing (an
        execution's outcome: only while the row is still leased to this claim). Optimistic: it
        is queued and `True` returned; if the flush finds fewer rows changed than guarded, the
        batch runs again carefully, where each guard runs at once and says what it found."""
        if self.careful:
            return int(self.execute(sql, params).rowcount) == 1
        self.queue(sql, params)
        self._guarded[sql] = self._guarded.get(sql, 0) + 1
        return True

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run `sql` now, after what is queued; returns the cursor (rowcount, fetch*)."""
        self.flush()
        self.cursor.execute(self._writer.sql(sql), params)
        self._writer.count(sql)
        return self.cursor

    def flush(self) -> None:
        """Write what is queued: on PostgreSQL in one pipeline, one round trip for the lot."""
        if not self._rows and not self._appender.pending:
            return
        checks: list[tuple[Any, int]] = []
        with self._writer.pipeline(self.cursor):
            self._appender.flush(self.cursor)
            rows, self._rows = self._rows, {}
            guarded, self._guarded = self._guarded, {}
            for sql, params in rows.items():
                expected = guarded.get(sql)
                # a guarded statement gets a cursor of its own: its count is known only once the
                # pipeline has synced, after the statements that follow it on PostgreSQL
                cursor = self.cursor if expected is None else self.cursor.connection.cursor()
                if expected is None and sql.startswith("INSERT INTO "):
                    insert_rows(cursor, self._writer.sql(sql), params, self.dialect)
                else:
                    cursor.executemany(self._writer.sql(sql), params)
                self._writer.count(sql)
                if expected is not None:
                    checks.append((cursor, expected))
        for cursor, expected in checks:
            if cursor.rowcount != expected:
                raise GuardFailed(f"{expected - cursor.rowcount} guarded update(s) changed nothing")

    def discard(self) -> None:
        self._rows.clear()
        self._guarded.clear()


class GuardFailed(Exception):
    """A guarded update of the batch changed nothing (see `Batch.guard`)."""


class _Job(Generic[T]):
    __slots__ = ("staged", "unit", "future", "loop", "settled")

    def __init__(self, *, staged: Staged[T] | None = None, unit: Unit[T] | None = None,
                 future: Future[T] | asyncio.Future[T], loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.staged = staged
        self.unit = unit
        self.future = future
        self.loop = loop
        self.settled: tuple[bool, Any] | None = None  # (ok, result or exception)


class _Redo(Exception):
    """Fast mode failed somewhere: run the batch again, one savepoint per job."""


class Writer:
    """Writes units of work and staged work to `engine`, appending to `ledger`'s log."""

    def __init__(
        self,
        engine: Engine,
        ledger: Ledger,
        *,
        checkpointer: Checkpointer | None = None,
        background: bool = False,
        max_batch: int = 512,
        on_statement: Callable[[str], None] | None = None,
        on_batch: Callable[[int, float, bool], None] | None = None,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.checkpointer = checkpointer
        self.dialect = engine.dialect.name
        self.max_batch = max_batch
        self._on_statement = on_statement
        self._on_batch = on_batch
        self._dbapi_error: type[Exception] = engine.dialect.loaded_dbapi.Error
        self.appender = ledger.appender(self.dialect, on_statement=self._count_kind)
        self._sql_cache: dict[str, str] = {}
        self._listeners: list[Callable[[], None]] = []
        self._subject_listeners: list[Callable[[list[str]], None]] = []
        self._committed_subjects: list[str] = []
        self._pause_before_commit = _failpoint(os.environ.get(FAILPOINT_ENV, ""))
        self._kill_switch: KillSwitch | None = None
        self._conn: Connection | None = None
        self._closed = False
        self._lock = threading.Lock()  # inline mode: one batch at a time; background: the queue
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._loop, name="warden-log-writer", daemon=True)
            self._thread.start()

    # -- what callers use ---------------------------------------------------------------------

    def on_commit(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every batch this writer commits (it must be quick and must not
        raise: the console's live feed uses it to read the log at once rather than at its next poll)."""
        self._listeners.append(listener)

    def on_subjects(self, listener: Callable[[list[str]], None]) -> None:
        """Call `listener(subjects)` after every batch this writer commits, with the subjects of
        its entries (decision ids among them): how a long-poll hears of its decision at once."""
        self._subject_listeners.append(listener)

    def committed_elsewhere(self) -> None:
        """Another process committed (`gateway.store.notifications`): tell the `on_commit`
        listeners, as for a batch of this writer."""
        self._tell_listeners([])

    def _tell_listeners(self, subjects: list[str]) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("an on_commit listener failed")
        if subjects:
            for subjects_listener in self._subject_listeners:
                try:
                    subjects_listener(subjects)
                except Exception:
                    log.exception("an on_subjects listener failed")

    @property
    def kill_switch(self) -> KillSwitch:
        """The kill switch as the last batch read it (or as read now, before the first): what
        the request path decides with. A batch that reads it otherwise decides again."""
        known = self._kill_switch
        if known is None:
            with read_only(self.engine.connect()) as conn:
                known = read_kill_switch(conn)
            self._kill_switch = known
        return known

    def run(self, work: Unit[T]) -> T:
        """Run `work(conn)` as one unit; returns its result once committed."""
        return self._wait(_Job(unit=work, future=Future()))

    def run_staged(self, work: Staged[T]) -> T:
        """Run staged `work(batch)`; returns its result once committed."""
        return self._wait(_Job(staged=work, future=Future()))

    def stage(self, work: Staged[T]) -> Future[T]:
        """Queue staged `work(batch)`; the future completes after the commit."""
        job: _Job[T] = _Job(staged=work, future=Future())
        self._submit(job)
        return job.future  # type: ignore[return-value]

    async def stage_async(self, work: Staged[T]) -> T:
        """`stage` for the event loop: awaits the commit without a thread of its own."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._submit(_Job(staged=work, future=future, loop=loop))
        return await future

    def close(self) -> None:
        """Finish what is queued, then stop the writer's thread and close its connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._thread is not None:
                self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            if self._thread.is_alive():  # a commit that hangs (or a held failpoint) must not hold shutdown
                log.error("the log writer did not finish its batch within 30 s; stopping without it")
                return
        self._drop_connection()

    def sql(self, text: str) -> str:
        """`text` with `?` marks in the driver's parameter style."""
        found = self._sql_cache.get(text)
        if found is None:
            found = text if self.dialect == "sqlite" else text.replace("%", "%%").replace("?", "%s")
            self._sql_cache[text] = found
        return found

    def pipeline(self, cursor: Any) -> AbstractContextManager[Any]:
        """psycopg's pipeline mode on PostgreSQL (statements sent without waiting for each
        answer); nothing on SQLite, which is in the process."""
        if self.dialect == "postgresql":
            return cast(AbstractContextManager[Any], cursor.connection.pipeline())
        return nullcontext()

    def count(self, sql: str) -> None:
        if self._on_statement is not None:
            head = sql.lstrip()[:6].upper()
            self._on_statement("read" if head == "SELECT" else "write")

    # -- queueing -------------------------------------------------------------------------------

    def _submit(self, job: _Job[Any]) -> None:
        if self._thread is None:
            with self._lock:
                if self._closed:
                    raise WriterClosed("the log writer is closed")
                self._write([job], inline=True)
            self._settle([job])
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("a job of the log writer may not wait for the log writer")
        with self._lock:
            if self._closed:
                raise WriterClosed("the log writer is closed")
            self._queue.put(job)

    def _wait(self, job: _Job[T]) -> T:
        self._submit(job)
        future = job.future
        assert isinstance(future, Future)
        return future.result()

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            jobs = [first]
            while len(jobs) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
            try:
                self._write(jobs, inline=False)
            except BaseException as exc:  # never leave a caller waiting
                log.exception("the log writer failed")
                for job in jobs:
                    if job.settled is None:
                        job.settled = (False, exc)
            self._settle(jobs)

    # -- one batch ------------------------------------------------------------------------------

    def _write(self, jobs: list[_Job[Any]], *, inline: bool) -> None:
        """Write `jobs` as one transaction; each job's `settled` says how it went."""
        live = [job for job in jobs if not job.future.cancelled()]
        if not live:
            return
        started = time.perf_counter()
        redone = False
        try:
            try:
                self._attempt(live, careful=False, inline=inline)
            except _Redo:
                redone = True
                self._attempt(live, careful=True, inline=inline)
        except Exception as exc:  # the transaction failed as a whole: nothing of it is durable
            error = self._translate(exc)
            for job in live:
                job.settled = (False, error)
            return
        finally:
            if self._on_batch is not None:
                self._on_batch(len(live), time.perf_counter() - started, redone)
        self._tell_listeners(self._committed_subjects)

    def _attempt(self, jobs: list[_Job[Any]], *, careful: bool, inline: bool) -> None:
        conn = self._connection(inline)
        appender = self.appender
        committed = redo = False
        try:
            with conn.begin() as transaction:
                conn.info[APPENDER] = appender
                cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
                kill_switch = parse_kill_switch(appender.open(cursor, also=KILL_SWITCH_SQL))
                batch = Batch(self, cursor, kill_switch, careful=careful)
                for job in jobs:
                    job.settled = None
                    if careful or job.unit is not None:
                        if not careful:  # what the staged jobs before it queued, before its savepoint
                            self._flush_or_redo(batch)
                        self._isolated(job, batch, conn)
                    else:
                        try:
                            assert job.staged is not None
                            job.settled = (True, job.staged(batch))
                        except Exception as exc:
                            raise _Redo from exc
                if self.dialect == "postgresql" and appender.subjects:  # other processes hear of it
                    batch.queue(NOTIFY_SQL, (notification(appender.subjects),))
                if careful:
                    batch.flush()
                else:
                    self._flush_or_redo(batch)
                if self.checkpointer is not None:
                    self.checkpointer.maybe_sign(conn)
                if self._pause_before_commit is not None and appender.size - appender.opened_size >= 2:
                    self._pause(batch, len(jobs))
                self._kill_switch = batch.kill_switch
                transaction.commit()
                committed = True
                self._committed_subjects = list(appender.subjects)
        except _Redo:
            redo = True
            raise
        finally:
            conn.info.pop(APPENDER, None)
            if committed:
                appender.close()
            else:
                appender.forget()
            if not committed and not redo:
                # The connection may be broken, or still inside a transaction whose commit
                # failed (SQLite keeps it open after a deferred constraint refuses the COMMIT):
                # it is rolled back and discarded, and the next batch starts on a fresh one.
                _roll_back_and_discard(conn)
                if not inline:
                    self._drop_connection()
            if inline:
                conn.close()

    def _flush_or_redo(self, batch: Batch) -> None:
        """Write what staged jobs queued; a refused row (or a guard that changed nothing) means
        the batch is run again carefully, where the job at fault fails alone."""
        try:
            batch.flush()
        except (self._dbapi_error, GuardFailed) as exc:
            raise _Redo from exc

    def _isolated(self, job: _Job[Any], batch: Batch, conn: Connection) -> None:
        """One job under its own savepoint: its failure is its own."""
        batch.flush()
        mark = self.appender.mark()
        savepoint = conn.begin_nested()
        try:
            result = job.unit(conn) if job.unit is not None else job.staged(batch)  # type: ignore[misc]
            batch.flush()
        except Exception as exc:
            savepoint.rollback()
            self.appender.rewind(mark)
            batch.discard()
            job.settled = (False, self._translate(exc))
            return
        savepoint.commit()
        job.settled = (True, result)
        if job.unit is not None:  # a unit may have changed it
            batch.kill_switch = self._kill_switch_of(batch.cursor)

    def _pause(self, batch: Batch, jobs: int) -> None:
        """The `writer.before_commit` failpoint (see `FAILPOINT_ENV`): say what this batch wrote,
        then wait, holding its transaction, until the process is killed."""
        path, self._pause_before_commit = self._pause_before_commit, None
        assert path is not None
        rows = batch.execute(f"SELECT body FROM {entries.name} WHERE seq >= ? ORDER BY seq",
                             (self.appender.opened_size,)).fetchall()
        held = [json.loads(bytes(row[0])) for row in rows]
        report = {"pid": os.getpid(), "jobs": jobs, "from_seq": self.appender.opened_size,
                  "entries": [{k: e[k] for k in ("seq", "kind", "subject")} for e in held]}
        partial = path.with_name(path.name + ".part")
        partial.write_text(json.dumps(report), encoding="utf-8")
        partial.replace(path)
        log.warning("failpoint writer.before_commit: batch of %d job(s) held before its commit", jobs)
        while True:
            time.sleep(3600)

    def _kill_switch_of(self, cursor: Any) -> KillSwitch:
        cursor.execute(KILL_SWITCH_SQL)
        row = cursor.fetchone()
        self._count_kind("read")
        return parse_kill_switch(None if row is None else row[0])

    # -- answers --------------------------------------------------------------------------------

    def _settle(self, jobs: Iterable[_Job[Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        for job in jobs:
            if job.settled is None:
                continue
            if job.loop is None:
                future = job.future
                assert isinstance(future, Future)
                if future.cancelled():
                    continue
                ok, value = job.settled
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            else:
                by_loop.setdefault(job.loop, []).append(job)
        for loop, waiting in by_loop.items():  # one wake-up per event loop and batch
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle_on_loop, waiting)

    # -- the connection -------------------------------------------------------------------------

    def _connection(self, inline: bool) -> Connection:
        if inline or self._conn is None:
            conn = self.engine.connect()
            if inline:
                return conn
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                log.warning("closing the log writer's connection failed", exc_info=True)

    def _translate(self, exc: Exception) -> Exception:
        """The driver's errors as SQLAlchemy's (what every caller already handles)."""
        if isinstance(exc, _Redo) and exc.__cause__ is not None:
            exc = exc.__cause__  # type: ignore[assignment]
        if isinstance(exc, self._dbapi_error) and not isinstance(exc, DBAPIError):
            return DBAPIError.instance(None, None, exc, self._dbapi_error)
        return exc

    def _count_kind(self, kind: str) -> None:
        if self._on_statement is not None:
            self._on_statement(kind)


def _roll_back_and_discard(conn: Connection) -> None:
    try:
        raw = conn.connection.dbapi_connection
        if raw is not None:
            raw.rollback()
    except Exception:  # a broken connection: nothing to roll back, it is discarded anyway
        log.debug("rolling back the log writer's failed transaction failed", exc_info=True)
    conn.invalidate()


def _settle_on_loop(jobs: list[_Job[Any]]) -> None:
    for job in jobs:
        future = job.future
        if future.done():
            continue
        assert job.settled is not None
        ok, value = job.settled
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
