"""Fixtures for the HTTP API tests: a real gateway on loopback over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import Settings
from gateway_server import Server, start_server, server_config


@pytest.fixture
def server_settings(db_url: str, tmp_path: Path) -> Settings:
    return server_config(db_url, tmp_path)


@pytest.fixture
def warden_server(server_settings: Settings) -> Iterator[Server]:
    handle, stop = start_server(server_settings)
    try:
        yield handle
    finally:
        stop()
