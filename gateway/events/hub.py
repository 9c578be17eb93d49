"""The tail of the audit log for this process's event streams (`GET /v1/events`).

One task per process reads the entries after the last one it read, at once when a commit is
heard (`wake`: this process's log writer, or another process's NOTIFY) and every `interval`
seconds otherwise, and hands each subscriber a `Slice`: the events among the entries
(after, upto]. A subscriber keeps its own cursor, so it never depends on the hub for
completeness: a slice that starts past its cursor (it subscribed late, or it fell behind) is
filled by reading the log itself from its cursor. The queues are bounded: a subscriber that
falls `QUEUE` slices behind has them dropped for one empty slice at the head, and reads what it
missed from the log at its own pace. Memory stays bounded whatever a consumer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from gateway.events.model import Event
from gateway.events.reader import head, read_events
from ledger.database import read_only

log = logging.getLogger("warden.events")

#: Slices a subscriber may have waiting before it reads from the log instead.
QUEUE = 64


@dataclass(frozen=True)
class Slice:
    """The events among the entries after `after` up to `upto`."""

    after: int
    upto: int
    events: tuple[Event, ...]


class Hub:
    def __init__(self, engine: Engine, *, interval: float = 0.5) -> None:
        self.engine = engine
        self.interval = interval
        self._queues: set[asyncio.Queue[Slice]] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._last: int | None = None

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def wake(self) -> None:
        """Read the log now (a commit was heard); callable from any thread."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and self._queues:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody listens
                loop.call_soon_threadsafe(event.set)

    def head(self) -> int:
        with read_only(self.engine.connect()) as conn:
            return head(conn)

    def read(self, after: int, upto: int | None = None) -> tuple[int, list[Event]]:
        with read_only(self.engine.connect()) as conn:
            return read_events(conn, after, upto=upto)

    async def follow(self, after: int | None, keep: Callable[[Event], bool], *,
                     idle: float | None = None) -> AsyncIterator[Event | None]:
        """Every event after entry `after` (None: from now on) that `keep` accepts, in log order:
        first what the log holds, then live. With `idle`, None after each `idle` seconds without
        one (so the reader can look up from time to time)."""
        queue: asyncio.Queue[Slice] = asyncio.Queue(QUEUE)
        self._subscribe(queue)
        try:
            cursor = await asyncio.to_thread(self.head) if after is None else after
            cursor_box = [cursor]
            async for event in self._catch_up(cursor_box, None, keep):
                yield event
            while True:
                try:
                    piece = await asyncio.wait_for(queue.get(), idle)
                except TimeoutError:
                    yield None
                    continue
                if piece.upto <= cursor_box[0]:
                    continue
                if piece.after > cursor_box[0]:  # entries the hub read before we listened, or dropped
                    async for event in self._catch_up(cursor_box, piece.after, keep):
                        yield event
                for event in piece.events:
                    if event.seq > cursor_box[0] and keep(event):
                        yield event
                cursor_box[0] = max(cursor_box[0], piece.upto)
        finally:
            self._queues.discard(queue)

    async def _catch_up(self, cursor: list[int], upto: int | None, keep: Callable[[Event], bool]) -> AsyncIterator[Event]:
        """Read from the log after cursor[0] (up to `upto`, or the head), page by page."""
        while True:
            last, found = await asyncio.to_thread(self.read, cursor[0], upto)
            if last == cursor[0]:
                return
            for event in found:
                if keep(event):
                    yield event
            cursor[0] = last

    def _subscribe(self, queue: asyncio.Queue[Slice]) -> None:
        self._queues.add(queue)
        if self._task is None or self._task.done():
            self._last = None
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while self._queues:
            try:
                if self._last is None:
                    self._last = await asyncio.to_thread(self.head)
                else:
                    await self._tail()
            except Exception:  # a database hiccup: subscribers keep their cursors; try again
                log.warning("the event stream cannot read the audit log; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):  # until the next poll, or a commit sooner
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
        self._task = None

    async def _tail(self) -> None:
        assert self._last is not None
        while True:
            after = self._last
            last, found = await asyncio.to_thread(self.read, after)
            if last == after:
                return
            self._last = last
            piece = Slice(after, last, tuple(found))
            for queue in list(self._queues):
                if queue.full():  # too far behind: it reads from the log instead
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(Slice(last, last, ()))
                else:
                    queue.put_nowait(piece)
