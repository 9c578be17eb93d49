"""Fixtures for the live connectors' contract tests: the process's connector loop, and the fakes
(tests/fakes) on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.live.runner import CallRunner


@pytest.fixture
def runner() -> Iterator[CallRunner]:
    loop = CallRunner()
    try:
        yield loop
    finally:
        loop.close()
