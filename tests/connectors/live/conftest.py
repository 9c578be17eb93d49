"""Fixtures for the live connectors' contract tests: the process's connector loop (`runner`), and
`opened`, where a test's connectors go to have their clients closed on that loop afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.live.runner import CallRunner


@pytest.fixture
def runner() -> Iterator[CallRunner]:
    loop = CallRunner()
    try:
        yield loop
    finally:
        loop.close()


@pytest.fixture
def opened(runner: CallRunner) -> Iterator[list[Any]]:
    """Live connectors made by a test; their clients are closed on the runner's loop after it."""
    connectors: list[Any] = []
    yield connectors
    for connector in connectors:
        runner.run(connector.aclose, timeout=5, what="close")
