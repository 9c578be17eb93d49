"""The one event loop on which a process's live calls run, and the deadline around each call.

Live connectors are written once, as coroutines over `httpx.AsyncClient` (Stripe's SDK through
its httpx client). Their clients, connection pools and rate limiters belong to one event loop:
`CallRunner` keeps that loop on a thread of its own, started on first use, so that the outbox's
threads (`run`) and the request path's event loop (`run_async`) share one pool and one limiter
per provider, and a call has a hard deadline wherever it came from.

    runner = CallRunner()
    result = runner.run(lambda: connector.call(...), timeout=30, what="stripe.refund")

A call that outlives its deadline is cancelled and raises `UnknownOutcomeError(code="timeout")`:
the request may have left, so the outbox reconciles before it sends anything again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from connectors.base import UnknownOutcomeError

T = TypeVar("T")


class CallRunner:
    """An event loop on a daemon thread; safe to share between threads."""

    def __init__(self, name: str = "warden-connectors") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's loop, started on first use (and again in a forked child)."""
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                ready = threading.Event()
                loop = asyncio.new_event_loop()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                self._thread = threading.Thread(target=serve, name=self.name, daemon=True)
                self._thread.start()
                ready.wait()
                self._loop, self._pid = loop, os.getpid()
            return self._loop

    def on_loop(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def run(self, make: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
        """Run `make()` on the runner's loop and wait for it, at most `timeout` seconds."""
        if self.on_loop():
            raise RuntimeError("CallRunner.run called from its own loop: await the call instead")
        future = asyncio.run_coroutine_threadsafe(deadline(make, timeout, what), self.loop)
        return future.result()

    async def run_async(self, make: Callable[[], Awaitable[T]], *, timeout: float, what: str) -> T:
        """`run` for a caller on another event loop: awaited without blocking it."""
        if self.on_loop():
            return await deadline(make, timeout, what)
        future = asyncio.run_coroutine_threadsafe(deadline(make, timeout, what), self.loop)
        return await asyncio.wrap_future(future)

    def close(self, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Run `cleanup` (closing the clients) on the loop, then stop it."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if cleanup is not None:  # closing: a client that cannot close cleanly is dropped
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(_call(cleanup), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()


async def _call(make: Callable[[], Awaitable[None]]) -> None:
    await make()


async def deadline(make: Callable[[], Awaitable[T]], timeout: float, what: str) -> T:
    """`await make()`, cancelled after `timeout` seconds: then `UnknownOutcomeError`."""
    try:
        async with asyncio.timeout(timeout):
            return await make()
    except TimeoutError:
        raise UnknownOutcomeError(
            f"{what}: no answer within {timeout:g} s; whether it took effect is unknown, "
            "so it is reconciled before anything is sent again", code="timeout") from None
