"""One process among several: a PostgreSQL advisory lock held for as long as a process lives.

Some background work needs doing once per database, not once per gateway process: re-verifying
the whole audit log every second (`gateway.runtime.tamper`) costs each process as much as the log
grows, whoever wrote it. `SessionLock.held()` takes a session-level advisory lock on a connection
the lock keeps for itself, and says whether this process holds it; the lock goes with that
connection, so when the holder dies (or its connection breaks) another process takes it at its
next try. On SQLite, where one gateway process is the supported shape, it is always held.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("warden.store")

#: The tamper watch's lock ("WARDTAMP").
TAMPER_WATCH = 0x5741_5244_5441_4D50

_TRY = text("SELECT pg_try_advisory_lock(:key)")
_ALIVE = text("SELECT 1")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


class SessionLock:
    """`held()`: does this process hold lock `key` now (taking it when it is free)?"""

    def __init__(self, engine: Engine, key: int) -> None:
        self._engine = engine
        self._key = key
        self._conn: Connection | None = None

    def held(self) -> bool:
        if self._engine.dialect.name != "postgresql":
            return True
        try:
            if self._conn is not None:
                self._conn.execute(_ALIVE)  # the lock lives as long as this session
                return True
            # Autocommit: the session holds the lock, never an open transaction (one left open
            # would hold back the cleanup of every row updated since, the log's head first).
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            taken = bool(conn.execute(_TRY, {"key": self._key}).scalar())
            if taken:
                self._conn = conn
                log.info("this process now runs the work of lock %x", self._key)
            else:
                conn.close()
            return taken
        except Exception:  # the session (and the lock with it) is gone: try afresh next time
            log.warning("lost the session holding lock %x", self._key, exc_info=True)
            self.release()
            return False

    def release(self) -> None:
        """Give the lock up: unlocked at once while the session is alive (closing alone frees it
        only once the server has noticed the disconnection, a moment later), then closed."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(_UNLOCK, {"key": self._key})
        except Exception:  # a broken session: closing it frees the lock
            log.debug("unlocking %x failed; closing its session", self._key, exc_info=True)
        try:
            conn.invalidate()  # closes the session: the lock goes with it
        except Exception:
            log.debug("closing the session of lock %x failed", self._key, exc_info=True)
