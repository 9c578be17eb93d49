"""`on_own_thread(main)`: call `main` on a thread of its own and hand back its result or its
exception. The suite's browser tests (Playwright's sync API) leave an event loop running on the
main thread of the worker process that ran them, and `asyncio.run` / `anyio.run` refuse to start
where a loop runs, so a test that runs a loop of its own starts it through here."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_own_thread(main: Callable[[], T]) -> T:
    outcome: dict[str, object] = {}

    def body() -> None:
        try:
            outcome["result"] = main()
        except BaseException as exc:  # raised again on the caller's thread
            outcome["failure"] = exc

    thread = threading.Thread(target=body, name="test-own-loop")
    thread.start()
    thread.join()
    if "failure" in outcome:
        raise outcome["failure"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]
