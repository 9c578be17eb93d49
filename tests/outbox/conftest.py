"""Fixtures for the outbox tests: a migrated database, a fake clock, a recording connector."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parent))

from outbox_support import FakeClock, RecordingConnector, migrated_engine  # noqa: E402


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = migrated_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def connector() -> RecordingConnector:
    return RecordingConnector()
