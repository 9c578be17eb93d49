"""The live feed: the audit log, tailed, fanned out to every open console page over SSE.

Every state change in Warden is an audit entry, appended by whichever process made it, so the log
is the one event stream that is complete and shared by every gateway process on a database. One
task per process reads the entries after the last one it saw, at once when this process commits
(`Writer.on_commit`) and every `interval` seconds for what other processes append, and hands
each to the subscribers' queues. A subscriber that
falls too far behind gets a `resync` (reload what you show) instead of an unbounded queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from console import present
from ledger.database import read_only
from ledger.schema import entries

log = logging.getLogger("warden.console")

QUEUE = 500
BATCH = 500


@dataclass(frozen=True)
class Event:
    """One audit entry as the console needs it."""

    seq: int
    kind: str
    actor: str
    subject: str
    time: str
    data: dict[str, Any]

    @property
    def decision_id(self) -> str | None:
        value = self.data.get("decision_id") or (self.subject if self.subject.startswith("dec_") else None)
        return value if isinstance(value, str) else None

    @property
    def compensates(self) -> str | None:
        """For a compensating decision's entry, the decision it undoes."""
        return present.compensates(self.data.get("packet")) if self.kind == "decision" else None


RESYNC = Event(seq=-1, kind="resync", actor="", subject="", time="", data={})


class Feed:
    """The tail of the audit log for this process's console pages."""

    def __init__(self, runtime: Any, *, interval: float = 0.25) -> None:
        self.runtime = runtime
        self.interval = interval
        self._queues: set[asyncio.Queue[Event]] = set()
        self._task: asyncio.Task[None] | None = None
        self._last: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        runtime.writer.on_commit(self.wake)

    def wake(self) -> None:
        """Read the log now (this process committed something); callable from any thread."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and self._queues:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop has closed: nobody is listening any more
                pass

    def _read(self, after: int | None) -> tuple[int, list[Event]]:
        with read_only(self.runtime.db.connect()) as conn:
            if after is None:
                size = conn.execute(select(func.max(entries.c.seq))).scalar()
                return (-1 if size is None else int(size)), []
            rows = conn.execute(select(entries.c.seq, entries.c.body).where(entries.c.seq > after)
                                .order_by(entries.c.seq).limit(BATCH)).all()
        found = []
        for seq, body in rows:
            entry = json.loads(bytes(body))
            data = entry.get("data")
            found.append(Event(seq=int(seq), kind=str(entry.get("kind", "")), actor=str(entry.get("actor", "")),
                               subject=str(entry.get("subject", "")), time=str(entry.get("time", "")),
                               data=data if isinstance(data, dict) else {}))
        return (found[-1].seq if found else after), found

    async def _run(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while self._queues:
            try:
                self._last, found = await run_in_threadpool(self._read, self._last)
            except Exception:  # a database hiccup: the pages keep what they show, and we try again
                log.warning("the console feed cannot read the audit log; retrying", exc_info=True)
                found = []
            for event in found:
                for queue in list(self._queues):
                    if queue.full():
                        _drain(queue)
                        queue.put_nowait(RESYNC)
                    else:
                        queue.put_nowait(event)
            try:  # until the next poll, or sooner when this process commits
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
        self._task = None

    def head(self) -> int:
        """The seq of the log's last entry (-1 when empty); blocking."""
        with read_only(self.runtime.db.connect()) as conn:
            size = conn.execute(select(func.max(entries.c.seq))).scalar()
        return -1 if size is None else int(size)

    def open(self, after: int | None = None) -> asyncio.Queue[Event]:
        """A new subscriber's queue, for a page that shows the log up to entry `after` (at most
        the head). It gets every entry after that one; when the feed cannot tell (it has read past
        `after` already, or `after` is not given) it starts with a `resync` instead, so the page
        fetches what it shows again. Call `close` when done."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE)
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._last = after  # None: the first read takes the head as where to start
            self._task = asyncio.create_task(self._run())
            if after is None:
                queue.put_nowait(RESYNC)
        elif after is None or self._last is None or after < self._last:
            queue.put_nowait(RESYNC)
        return queue

    def close(self, queue: asyncio.Queue[Event]) -> None:
        self._queues.discard(queue)


def _drain(queue: asyncio.Queue[Event]) -> None:
    while not queue.empty():
        queue.get_nowait()
