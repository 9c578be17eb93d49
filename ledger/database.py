"""Opening Warden's database: one place that knows the URL rules and each backend's settings.

- URL: always given by the caller (the gateway takes it from its settings, `database_url`); a
  relative SQLite path is relative to the working directory, and its folder is created.
- SQLite is the embedded default. It runs in WAL mode with `synchronous=FULL`: every commit
  fsyncs the write-ahead log, so a committed decision survives a power cut, not only a crash of
  the process (`NORMAL` in WAL mode may lose the last commits on power loss, which an audit log
  must not). Every transaction starts with `BEGIN IMMEDIATE`, taking SQLite's single write lock up
  front: a deferred transaction that read the log head and then tried to write could fail with
  SQLITE_BUSY instead of waiting. Read-only work (export, verify) asks for a plain deferred `BEGIN`
  with `read_only(conn)` so it never blocks writers (WAL readers see a snapshot).
- PostgreSQL goes through psycopg 3: `postgresql+psycopg://user@host:port/db`
  (`postgresql://` is accepted and mapped to psycopg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

_READ_ONLY = "warden_read_only"
WRITE_LOCKED = "warden_write_locked"  # conn.info flag: this transaction began IMMEDIATE
_SQLITE_BUSY_TIMEOUT_S = 30.0


class DatabaseURLError(ValueError):
    """The database URL cannot be used (unknown backend, malformed)."""


def make_engine(url: str, *, create: bool = True, **engine_options: Any) -> Engine:
    """An engine with Warden's per-backend settings (see the module docstring). With
    `create=False` a missing SQLite file is an error instead of a new empty database."""
    raw = url
    try:
        parsed = make_url(raw)
    except ArgumentError as exc:
        # the URL itself is not repeated: it may hold a password
        raise DatabaseURLError("the database URL does not parse: expected sqlite:///PATH or "
                               "postgresql+psycopg://USER@HOST[:PORT]/DATABASE") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not create and not _sqlite_file_exists(parsed.database):
            raise DatabaseURLError(f"database file {parsed.database} does not exist")
        return _sqlite_engine(parsed.render_as_string(hide_password=False), parsed.database, engine_options)
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        elif parsed.drivername != "postgresql+psycopg":
            raise DatabaseURLError(
                f"PostgreSQL is supported through psycopg 3 (postgresql+psycopg://), not {parsed.drivername}"
            )
        return create_engine(parsed, pool_pre_ping=True, **engine_options)
    raise DatabaseURLError(f"unsupported database {backend!r}: use sqlite:/// or postgresql+psycopg://")


def _sqlite_file_exists(database: str | None) -> bool:
    if not database or database == ":memory:" or database.startswith("file:"):
        return True
    return Path(database).is_file()


def _sqlite_engine(url: str, database: str | None, options: dict[str, Any]) -> Engine:
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S}, **options)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (pysqlite would otherwise issue a deferred BEGIN lazily).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = not conn.get_execution_options().get(_READ_ONLY)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
        conn.info[WRITE_LOCKED] = immediate

    return engine


def read_only(conn: Connection) -> Connection:
    """Mark a connection (before its first statement) as a reader: one consistent snapshot that
    does not take SQLite's write lock; on PostgreSQL a REPEATABLE READ, read-only transaction."""
    if conn.dialect.name == "postgresql":
        return conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    return conn.execution_options(**{_READ_ONLY: True})


def describe(engine: Engine) -> str:
    """The engine's URL with any password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)
