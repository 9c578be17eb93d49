"""Fixtures for the MCP front's tests: a real gateway on loopback (tests/gateway_server.py), one per
database for a module; the clients are in tests/mcp_front_support.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_server import Server, module_server


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def mcp_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from module_server(request, tmp_path_factory, "mcp")
