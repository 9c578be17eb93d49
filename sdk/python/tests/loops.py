"""`run(coroutine)`: `asyncio.run` on a thread of its own. The suite's browser tests (Playwright's
sync API) leave an event loop running on the main thread of the worker process that ran them, and
`asyncio.run` refuses to start where a loop runs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    result: list[T] = []
    failure: list[BaseException] = []

    def main() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=main, name="sdk-test-loop")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
