"""Commits of other gateway processes, heard at once on PostgreSQL (`LISTEN`/`NOTIFY`).

Several `warden serve` processes share one PostgreSQL database. A process hears of its own
commits from its log writer (`Writer.on_commit`); of the others' it would otherwise learn only by
polling (a long-poll's periodic re-read, the console feed's poll). So every batch of a log writer
that appended entries also sends, in its own transaction (delivered at its commit, never for a
batch that rolled back), a notification on the channel `warden_log`:

    {"process": "host:4242", "subjects": ["dec_…", "kill_switch", …]}   its entries' subjects
    {"process": "host:4242", "subjects": null}          too many to list: anything may have changed

`CommitListener` is one thread per process with a connection of its own that listens on that
channel and hands every other process's notification to `on_commit(subjects)`: the runtime wakes
the long-polls waiting on those decisions and the console feed. Polling stays as it was, so a
notification lost (a connection dropped, a listener restarting) delays nothing beyond it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger("warden.notifications")

CHANNEL = "warden_log"
#: PostgreSQL refuses a payload of 8000 bytes or more.
MAX_PAYLOAD = 7000
NOTIFY_SQL = f"SELECT pg_notify('{CHANNEL}', ?)"


def this_process() -> str:
    """Who sent a notification: host and pid (processes on several machines share a database)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def payload(subjects: Sequence[str]) -> str:
    """The notification of a batch whose entries have these subjects."""
    unique = list(dict.fromkeys(subjects))
    text = json.dumps({"process": this_process(), "subjects": unique}, separators=(",", ":"))
    if len(text.encode()) > MAX_PAYLOAD:
        text = json.dumps({"process": this_process(), "subjects": None}, separators=(",", ":"))
    return text


class CommitListener:
    """Calls `on_commit(subjects)` for every batch another process commits (`subjects` None:
    anything may have changed). `conninfo` is a libpq connection string."""

    def __init__(self, conninfo: str, on_commit: Callable[[list[str] | None], None], *,
                 timeout: float = 1.0) -> None:
        self._conninfo = conninfo
        self._on_commit = on_commit
        self._timeout = timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while a LISTEN is in place

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="warden-commit-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timeout + 5)

    def _run(self) -> None:
        import psycopg

        pause = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    pause = 0.5
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=self._timeout):
                            self._heard(note.payload)
            except Exception:  # the database went away: listen again later; polling covers the gap
                log.warning("not hearing other processes' commits; listening again in %.1f s", pause,
                            exc_info=True)
            finally:
                self.listening.clear()
            self._stop.wait(pause)
            pause = min(pause * 2, 30.0)

    def _heard(self, text: str) -> None:
        try:
            note = json.loads(text)
            sender, subjects = note["process"], note["subjects"]
        except (ValueError, KeyError, TypeError):
            log.warning("a notification on %s that is not Warden's: %.80r", CHANNEL, text)
            return
        if sender == this_process():
            return  # this process's own commit: its writer has told it already
        try:
            self._on_commit([str(s) for s in subjects] if isinstance(subjects, list) else None)
        except Exception:
            log.exception("a commit listener failed")
